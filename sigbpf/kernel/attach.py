"""Attaching loaded programs the way libbpf's section-name auto-attach does.

:func:`plan_attach` reads a program's ELF section name (and the options that
name a target) and decides, without touching the kernel, how the program
attaches; :func:`attach_program` does it and returns an :class:`Attachment`;
:func:`attach_loaded` attaches every program of a
:class:`~sigbpf.kernel.loader.LoadedArtifact`, all or nothing.

What each section attaches to (libbpf's ``attach_*`` functions in
src/libbpf.c, on a kernel with BPF links):

==============================================  =================================================
section                                         attachment
==============================================  =================================================
``kprobe/FUNC[+OFF]``, ``kretprobe/FUNC``       perf event of the ``kprobe`` PMU, then
                                                ``BPF_LINK_CREATE`` (``BPF_PERF_EVENT``)
``ksyscall/NAME``, ``kretsyscall/NAME``         the same on the syscall's wrapper
                                                (``__x64_sys_NAME``)
``kprobe.multi/GLOB``, ``kretprobe.multi/GLOB``  ``BPF_LINK_CREATE`` ``kprobe_multi``: one name as
``kprobe.session/GLOB``                         ``syms``, a glob resolved to addresses through
                                                tracefs ``available_filter_functions[_addrs]``
``uprobe/BIN:FUNC[+OFF]``, ``uretprobe/...``    perf event of the ``uprobe`` PMU at the function's
                                                file offset, then a perf link
``uprobe.multi/BIN:GLOB`` (and variants)        ``BPF_LINK_CREATE`` ``uprobe_multi``
``tp/CAT/NAME``, ``tracepoint/CAT/NAME``        ``PERF_TYPE_TRACEPOINT`` event (id from tracefs),
                                                then a perf link
``raw_tp/NAME``, ``raw_tracepoint/NAME``        ``BPF_RAW_TRACEPOINT_OPEN``
``tp_btf/``, ``fentry/``, ``fexit/``,           ``BPF_LINK_CREATE`` with the program's
``fmod_ret/``, ``lsm/``, ``freplace/``          expected_attach_type; on ``EINVAL``
                                                ``BPF_RAW_TRACEPOINT_OPEN`` with no name
``iter/NAME``                                   ``BPF_LINK_CREATE`` ``BPF_TRACE_ITER``
``xdp``, ``tc/…``, ``tcx/…``, ``netkit/…``      ``BPF_LINK_CREATE``, ``target_ifindex`` (--iface)
``cgroup/…``, ``cgroup_skb/…``, ``sockops``,    ``BPF_LINK_CREATE``, target = the cgroup directory's
``lsm_cgroup/…``                                fd (--cgroup)
``sk_lookup``, ``flow_dissector``               ``BPF_LINK_CREATE``, target = a netns fd (--netns)
``sk_msg``, ``sk_skb/…``                        ``BPF_LINK_CREATE``, target = a sockmap of the
                                                object (--sockmap NAME)
``perf_event``                                  a sampling event per online CPU (--perf-event),
                                                each with a perf link
==============================================  =================================================

Sections libbpf does not auto-attach and that no option can target (a bare
``kprobe`` or ``tp``, ``syscall``, ``socket``, ``lwt_*``, ``xdp/devmap`` …)
are left alone, with the reason (:attr:`AttachPlan.reason`), as libbpf's
skeleton attach skips them.  ``struct_ops`` and ``usdt`` programs are
refused.  A program that needs a target option the caller did not give is
a :class:`~sigbpf.errors.UsageError` naming the program and the option.

Every :class:`Attachment` holds BPF links (a perf-event attachment holds
the perf event too), so it can be pinned on bpffs; :meth:`Attachment.close`
releases this process's references (which detaches it unless it is
pinned), :meth:`Attachment.detach` detaches it even when pinned.
"""

from __future__ import annotations

import dataclasses
import errno as errno_mod
import os
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from sigbpf.elf.progtypes import AttachType, ProgType, section_def
from sigbpf.errors import KernelError, NotFoundError, SigbpfError, UsageError
from sigbpf.kernel.links import LinkInfo, link_create, link_detach, link_info, raw_tracepoint_open
from sigbpf.kernel.syscall import Fd

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Program
    from sigbpf.kernel.loader import LoadedArtifact
    from sigbpf.kernel.perf_event import PerfSample

__all__ = ["AttachKind", "AttachOptions", "AttachPlan", "Link", "Attachment", "AttachResult",
           "plan_attach", "attach_program", "attach_loaded", "BPF_F_KPROBE_MULTI_RETURN",
           "BPF_F_UPROBE_MULTI_RETURN"]

BPF_F_KPROBE_MULTI_RETURN = 1
BPF_F_UPROBE_MULTI_RETURN = 1


class AttachKind(str, Enum):
    """How a program is attached (the ``kind`` of an attachment in reports)."""

    KPROBE = "kprobe"
    KPROBE_MULTI = "kprobe_multi"
    UPROBE = "uprobe"
    UPROBE_MULTI = "uprobe_multi"
    TRACEPOINT = "tracepoint"
    RAW_TRACEPOINT = "raw_tracepoint"
    TRACING = "tracing"
    LSM = "lsm"
    ITER = "iter"
    XDP = "xdp"
    TCX = "tcx"
    NETKIT = "netkit"
    CGROUP = "cgroup"
    NETNS = "netns"
    SOCKMAP = "sockmap"
    PERF_EVENT = "perf_event"


@dataclass(frozen=True, slots=True)
class AttachOptions:
    """Targets given by the caller (the CLI's ``--iface``, ``--cgroup``, ...)."""

    iface: str | None = None
    cgroup: str | None = None
    netns: str | None = None
    sockmap: str | None = None
    perf_event: str | None = None


@dataclass(frozen=True, slots=True)
class AttachPlan:
    """How one program attaches, decided from its section and the options alone.

    ``kind`` None means "left alone" and ``reason`` says why.  ``args`` are the
    parsed target (function name and offset, tracepoint category and name, ...).
    """

    program: str
    section: str
    kind: AttachKind | None
    target: str = ""
    reason: str = ""
    args: tuple = ()

    @property
    def attaches(self) -> bool:
        return self.kind is not None

    def where(self) -> str:
        return f"program {self.program!r} (section {self.section})"


@dataclass
class Link:
    """One BPF link of an attachment, and the perf event behind it (perf links)."""

    fd: Fd
    info: LinkInfo | None = None
    perf_fd: Fd | None = None
    #: Appended to the program name when pinned (``_cpu3`` for per-CPU perf events).
    suffix: str = ""
    pin_path: str | None = None

    def close(self) -> None:
        if self.perf_fd is not None and self.pin_path is None:
            from sigbpf.kernel.perf_event import disable

            if not self.perf_fd.closed:
                disable(self.perf_fd)
        self.fd.close()
        if self.perf_fd is not None:
            self.perf_fd.close()


class Attachment:
    """A program attached by this process: its links, and where they are pinned."""

    def __init__(self, plan: AttachPlan, links: Sequence[Link]) -> None:
        self.plan = plan
        self.links = list(links)

    @property
    def program(self) -> str:
        return self.plan.program

    @property
    def section(self) -> str:
        return self.plan.section

    @property
    def kind(self) -> AttachKind:
        assert self.plan.kind is not None
        return self.plan.kind

    @property
    def target(self) -> str:
        return self.plan.target

    @property
    def link_ids(self) -> list[int]:
        return [link.info.id for link in self.links if link.info is not None]

    @property
    def pinned(self) -> list[str]:
        return [link.pin_path for link in self.links if link.pin_path is not None]

    def pin(self, directory: str) -> list[str]:
        """Pin each link at ``directory/PROGRAM`` (plus the link's suffix); the paths."""
        from sigbpf.kernel.bpffs import obj_pin, pin_name

        paths = []
        for link in self.links:
            path = os.path.join(directory, pin_name(self.program + link.suffix))
            obj_pin(link.fd, path)
            link.pin_path = path
            paths.append(path)
        return paths

    def unpin(self) -> None:
        """Remove the pins (the links stay attached while this process holds their fds)."""
        for link in self.links:
            if link.pin_path is not None:
                try:
                    os.unlink(link.pin_path)
                except FileNotFoundError:
                    pass
                link.pin_path = None

    def close(self) -> None:
        """Release this process's references: detaches unless the links are pinned."""
        while self.links:
            self.links.pop().close()

    def detach(self) -> None:
        """Detach now, pinned or not: ``BPF_LINK_DETACH`` where the link type has it, unpin,
        close (a perf event is disabled first)."""
        for link in self.links:
            if not link.fd.closed:
                try:
                    link_detach(link.fd)
                except KernelError:
                    pass  # closing and unpinning below release it anyway
        self.unpin()
        self.close()

    def as_json(self) -> dict[str, object]:
        return {"program": self.program, "section": self.section, "kind": self.kind.value,
                "target": self.target,
                "links": [{"id": link.info.id if link.info else None,
                           "type": link.info.type_name if link.info else None,
                           "pinned": link.pin_path} for link in self.links]}

    def describe(self) -> str:
        ids = ", ".join(str(i) for i in self.link_ids)
        text = f"program {self.program} ({self.section}) attached to {self.target}"
        if ids:
            text += f": link id{'s' if len(self.link_ids) > 1 else ''} {ids}"
        if self.pinned:
            text += f", pinned at {', '.join(self.pinned)}"
        return text

    def __repr__(self) -> str:
        return f"Attachment({self.program!r}, {self.kind.value}, {self.target!r}, ids={self.link_ids})"


@dataclass
class AttachResult:
    """What :func:`attach_loaded` did: the attachments made and the programs left alone."""

    attachments: list[Attachment] = field(default_factory=list)
    skipped: list[AttachPlan] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {"attached": [a.as_json() for a in self.attachments],
                "not_attached": [{"program": p.program, "section": p.section, "reason": p.reason}
                                 for p in self.skipped]}


# --------------------------------------------------------------------------------------------
# Planning: section name + options -> AttachPlan (no kernel calls, only lookups of targets).
# --------------------------------------------------------------------------------------------

_KPROBE_FUNC = re.compile(r"([a-zA-Z0-9_.]+)(?:\+(-?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)))?")
_MULTI_PATTERN = re.compile(r"[a-zA-Z0-9_.*?]+")


def _prefix_match(section: str, prefixes: Sequence[str]) -> str | None:
    """libbpf's ``sec_name_match_prefix``: the text after ``PREFIX/``, "" for a bare
    ``PREFIX``, None when no prefix matches."""
    for prefix in prefixes:
        if not section.startswith(prefix):
            continue
        rest = section[len(prefix):]
        if rest == "":
            return ""
        if rest.startswith("/") and len(rest) > 1:
            return rest[1:]
    return None


def _skip(program: "Program", reason: str) -> AttachPlan:
    return AttachPlan(program.name, program.section, None, reason=reason)


def _bare(program: "Program") -> AttachPlan:
    return _skip(program, f"SEC(\"{program.section}\") names no target; libbpf does not "
                          f"auto-attach it either")


def _needs(program: "Program", option: str, what: str) -> UsageError:
    return UsageError(f"program {program.name!r} (section {program.section}) needs {option} "
                      f"({what})")


def _bad_section(program: "Program", why: str) -> UsageError:
    return UsageError(f"program {program.name!r}: section {program.section!r}: {why}")


def _int(text: str) -> int:
    """strtol with base 0 (libbpf's ``%li``): ``0x..`` hex, ``0..`` octal, else decimal."""
    negative = text.startswith("-")
    body = text[1:] if negative else text
    value = int(body, 8) if len(body) > 1 and body[0] == "0" and body[1] not in "xX" else int(body, 0)
    return -value if negative else value


def _plan_kprobe(program: "Program") -> AttachPlan:
    sec = program.section
    if sec in ("kprobe", "kretprobe"):
        return _bare(program)
    retprobe = sec.startswith("kretprobe/")
    spec = sec.split("/", 1)[1] if "/" in sec else ""
    match = _KPROBE_FUNC.match(spec)
    if match is None:
        raise _bad_section(program, f"kprobe name {spec!r} is invalid")
    func, offset = match.group(1), _int(match.group(2)) if match.group(2) else 0
    if offset < 0:
        raise _bad_section(program, f"kprobe offset must be a non-negative integer: {offset}")
    if retprobe and offset:
        raise _bad_section(program, "kretprobes do not support offset specification")
    target = f"{'kretprobe' if retprobe else 'kprobe'} {func}" + (f"+{offset:#x}" if offset else "")
    return AttachPlan(program.name, sec, AttachKind.KPROBE, target, args=(func, offset, retprobe))


def _syscall_prefix() -> str | None:
    return {"x86_64": "x64", "aarch64": "arm64", "s390x": "s390x", "riscv64": "riscv",
            "ppc64le": "powerpc64"}.get(os.uname().machine)


def _plan_ksyscall(program: "Program") -> AttachPlan:
    sec = program.section
    if sec in ("ksyscall", "kretsyscall"):
        return _bare(program)
    retprobe = sec.startswith("kretsyscall/")
    name = sec.split("/", 1)[1]
    pfx = _syscall_prefix()
    func = f"__{pfx}_sys_{name}" if pfx and _has_syscall_wrapper(pfx) else f"__se_sys_{name}"
    target = f"{'kretprobe' if retprobe else 'kprobe'} {func} (syscall {name})"
    return AttachPlan(program.name, sec, AttachKind.KPROBE, target, args=(func, 0, retprobe))


def _has_syscall_wrapper(pfx: str) -> bool:
    """Whether syscalls go through ``__<arch>_sys_*`` wrappers (libbpf probes ``__<arch>_sys_bpf``)."""
    wanted = f" __{pfx}_sys_bpf"
    try:
        with open("/proc/kallsyms") as f:
            return any(line.rstrip("\n").endswith(wanted) for line in f)
    except OSError:
        return True


def _plan_kprobe_multi(program: "Program") -> AttachPlan:
    sec = program.section
    stem = sec.split("/", 1)[0]
    if sec == stem:
        return _bare(program)
    spec = sec.split("/", 1)[1]
    match = _MULTI_PATTERN.match(spec)
    if match is None:
        raise _bad_section(program, f"kprobe multi pattern {spec!r} is invalid")
    pattern = match.group(0)
    retprobe = stem == "kretprobe.multi"
    session = stem == "kprobe.session"
    target = f"{'kretprobe' if retprobe else 'kprobe'}.{'session' if session else 'multi'} {pattern}"
    return AttachPlan(program.name, sec, AttachKind.KPROBE_MULTI, target,
                      args=(pattern, retprobe, session))


def _split_probe(program: "Program") -> tuple[str, str, str] | None:
    """``TYPE/BINARY:FUNC`` as libbpf's ``sscanf("%m[^/]/%m[^:]:%m[^\\n]")``; None when bare."""
    probe_type, slash, rest = program.section.partition("/")
    if not slash or not rest:
        return None
    binary, colon, func = rest.partition(":")
    if not colon or not func or not binary:
        raise _bad_section(program, "missing ':function[+offset]' specification "
                                    "(expected u[ret]probe/BINARY:FUNCTION)")
    return probe_type, binary, func


def _binary(program: "Program", binary: str) -> str:
    """The path of a uprobe's binary (libbpf's search for a bare name); UsageError if none."""
    from sigbpf.kernel.uprobes import resolve_binary

    try:
        path = resolve_binary(binary)
    except NotFoundError as err:
        raise UsageError(f"program {program.name!r} (section {program.section}): {err.message}",
                         errno=err.errno) from None
    if not os.path.isfile(path):
        raise UsageError(f"program {program.name!r} (section {program.section}): no file "
                         f"{path}", errno=errno_mod.ENOENT)
    return path


def _plan_uprobe(program: "Program") -> AttachPlan:
    parts = _split_probe(program)
    if parts is None:
        return _bare(program)
    probe_type, binary, func = parts
    offset = 0
    plus = func.rfind("+")
    if plus >= 0:
        try:
            offset = _int(func[plus + 1:])
            func = func[:plus]
        except ValueError:
            offset = 0
    retprobe = probe_type in ("uretprobe", "uretprobe.s")
    if retprobe and offset:
        raise _bad_section(program, "uretprobes do not support offset specification")
    path = _binary(program, binary)
    target = f"{'uretprobe' if retprobe else 'uprobe'} {path}:{func}" + (f"+{offset:#x}" if offset else "")
    return AttachPlan(program.name, program.section, AttachKind.UPROBE, target,
                      args=(path, func, offset, retprobe))


def _plan_uprobe_multi(program: "Program") -> AttachPlan:
    parts = _split_probe(program)
    if parts is None:
        return _bare(program)
    probe_type, binary, pattern = parts
    path = _binary(program, binary)
    retprobe = probe_type.startswith("uretprobe.multi")
    session = probe_type.startswith("uprobe.session")
    return AttachPlan(program.name, program.section, AttachKind.UPROBE_MULTI,
                      f"{probe_type} {path}:{pattern}",
                      args=(path, pattern, retprobe, session))


def _plan_tracepoint(program: "Program") -> AttachPlan:
    rest = _prefix_match(program.section, ("tp.s", "tp", "tracepoint.s", "tracepoint"))
    if rest is None:
        raise _bad_section(program, "invalid tracepoint section name")
    if rest == "":
        return _bare(program)
    category, slash, name = rest.partition("/")
    if not slash or not name:
        raise _bad_section(program, "expected tp/CATEGORY/NAME")
    return AttachPlan(program.name, program.section, AttachKind.TRACEPOINT,
                      f"tracepoint {category}/{name}", args=(category, name))


def _plan_raw_tp(program: "Program") -> AttachPlan:
    rest = _prefix_match(program.section, ("raw_tp", "raw_tracepoint", "raw_tp.w",
                                           "raw_tracepoint.w", "raw_tp.s", "raw_tracepoint.s"))
    if rest is None:
        raise _bad_section(program, "invalid raw tracepoint section name")
    if rest == "":
        return _bare(program)
    return AttachPlan(program.name, program.section, AttachKind.RAW_TRACEPOINT,
                      f"raw tracepoint {rest}", args=(rest,))


def _plan_tracing(program: "Program", kind: AttachKind) -> AttachPlan:
    what = {AttachType.TRACE_RAW_TP: "BTF tracepoint", AttachType.TRACE_FENTRY: "fentry",
            AttachType.TRACE_FEXIT: "fexit", AttachType.MODIFY_RETURN: "fmod_ret",
            AttachType.LSM_MAC: "LSM hook", AttachType.TRACE_ITER: "iterator"}
    try:
        label = what.get(AttachType(program.expected_attach_type), "target")
    except ValueError:
        label = "target"
    if program.prog_type == ProgType.EXT:
        label = "freplace target"
    name = program.attach_to or "(set at load)"
    return AttachPlan(program.name, program.section, kind, f"{label} {name}")


def _ifindex(program: "Program", iface: str | None, kind: str) -> tuple[str, int]:
    if not iface:
        raise _needs(program, "--iface", f"the network interface to attach {kind} to")
    try:
        import socket

        return iface, socket.if_nametoindex(iface)
    except OSError:
        raise UsageError(f"program {program.name!r} (section {program.section}): no network "
                         f"interface {iface!r} (--iface) in this network namespace",
                         errno=errno_mod.ENODEV) from None


def _cgroup(program: "Program", path: str | None) -> str:
    if not path:
        raise _needs(program, "--cgroup", "the cgroup (v2) directory to attach to")
    if not os.path.isdir(path):
        why = "does not exist" if not os.path.exists(path) else "is not a directory"
        raise UsageError(f"program {program.name!r} (section {program.section}): cgroup "
                         f"{path} (--cgroup) {why}", errno=errno_mod.ENOENT)
    return path


def _netns(program: "Program", path: str | None) -> str:
    if not path:
        raise _needs(program, "--netns", "a network namespace file, e.g. /proc/self/ns/net "
                                         "or /run/netns/NAME")
    if not os.path.exists(path):
        raise UsageError(f"program {program.name!r} (section {program.section}): network "
                         f"namespace {path} (--netns) does not exist", errno=errno_mod.ENOENT)
    return path


_TARGET_ATTACH = {  # attach types that go to an interface
    AttachType.XDP: AttachKind.XDP, AttachType.TCX_INGRESS: AttachKind.TCX,
    AttachType.TCX_EGRESS: AttachKind.TCX, AttachType.NETKIT_PRIMARY: AttachKind.NETKIT,
    AttachType.NETKIT_PEER: AttachKind.NETKIT,
}

_SKIPPED = {
    "syscall": "syscall programs are run (--run), not attached",
    "socket": "socket filters attach to a socket (SO_ATTACH_BPF), not from a section name",
    "sk_reuseport": "reuseport programs attach to a socket (SO_ATTACH_REUSEPORT_EBPF)",
    "lwt": "lightweight tunnel programs attach to a route (ip route ... encap bpf)",
    "lirc_mode2": "lirc programs attach to a lirc device (BPF_PROG_ATTACH)",
    "netfilter": "netfilter programs need a hook (pf, hooknum, priority) a section does not name",
    "devmap": "devmap/cpumap programs run from a map entry, not attached",
    "tc": ("legacy tc sections name no direction; libbpf does not auto-attach them "
           "(use SEC(\"tc/ingress\") or SEC(\"tcx/egress\") ...)"),
    "cgroup_skb": ("SEC(\"cgroup/skb\") names no direction; use cgroup_skb/ingress or "
                   "cgroup_skb/egress"),
    "sk_skb": "SEC(\"sk_skb\") names no attach point; use sk_skb/stream_verdict ...",
    "unknown": "libbpf does not know this section, so it does not attach it either",
}


def plan_attach(program: "Program", options: AttachOptions = AttachOptions()) -> AttachPlan:
    """How *program* attaches (UsageError when its section needs an option not given, or
    asks for something sigbpf does not do: struct_ops, usdt)."""
    if program.section.startswith("?"):
        # libbpf forgets the '?' once it has set autoload off; a program loaded anyway
        # (--programs) attaches as its section without it.
        program = dataclasses.replace(program, section=program.section[1:])
    sec = program.section
    sdef = section_def(sec)
    if sdef is None:
        return _skip(program, _SKIPPED["unknown"])
    pat = sdef.pattern.rstrip("+/")
    ptype, atype = sdef.prog_type, sdef.attach_type
    if ptype == ProgType.STRUCT_OPS:
        raise UsageError(f"program {program.name!r} (section {sec}): struct_ops programs are "
                         f"registered through a struct_ops map (BPF_MAP_UPDATE_ELEM + a "
                         f"struct_ops link), which sigbpf does not create; refusing to attach")
    if pat in ("usdt", "usdt.s"):
        if sec == pat:
            return _bare(program)
        raise UsageError(f"program {program.name!r} (section {sec}): USDT programs need "
                         f"libbpf's USDT spec maps, which sigbpf does not fill; refusing to attach")
    if pat in ("kprobe", "kretprobe"):
        return _plan_kprobe(program)
    if pat in ("ksyscall", "kretsyscall"):
        return _plan_ksyscall(program)
    if pat in ("kprobe.multi", "kretprobe.multi", "kprobe.session"):
        return _plan_kprobe_multi(program)
    if pat in ("uprobe", "uretprobe", "uprobe.s", "uretprobe.s"):
        return _plan_uprobe(program)
    if pat.startswith(("uprobe.multi", "uretprobe.multi", "uprobe.session")):
        return _plan_uprobe_multi(program)
    if ptype == ProgType.TRACEPOINT:
        return _plan_tracepoint(program)
    if ptype in (ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE):
        return _plan_raw_tp(program)
    if ptype in (ProgType.TRACING, ProgType.EXT) and atype != AttachType.TRACE_ITER:
        return _plan_tracing(program, AttachKind.TRACING)
    if ptype == ProgType.TRACING:
        return _plan_tracing(program, AttachKind.ITER)
    if ptype == ProgType.LSM and atype == AttachType.LSM_MAC:
        return _plan_tracing(program, AttachKind.LSM)
    if ptype == ProgType.SYSCALL:
        return _skip(program, _SKIPPED["syscall"])
    if ptype in (ProgType.SOCKET_FILTER,):
        return _skip(program, _SKIPPED["socket"])
    if ptype == ProgType.SK_REUSEPORT:
        return _skip(program, _SKIPPED["sk_reuseport"])
    if ptype in (ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT, ProgType.LWT_SEG6LOCAL):
        return _skip(program, _SKIPPED["lwt"])
    if ptype == ProgType.LIRC_MODE2:
        return _skip(program, _SKIPPED["lirc_mode2"])
    if ptype == ProgType.NETFILTER:
        return _skip(program, _SKIPPED["netfilter"])
    if atype in (AttachType.XDP_DEVMAP, AttachType.XDP_CPUMAP):
        return _skip(program, _SKIPPED["devmap"])
    if atype in _TARGET_ATTACH:
        kind = _TARGET_ATTACH[atype]
        label = {AttachKind.XDP: "XDP", AttachKind.TCX: "tcx", AttachKind.NETKIT: "netkit"}[kind]
        iface, index = _ifindex(program, options.iface, f"the {label} program")
        where = {AttachType.TCX_INGRESS: " ingress", AttachType.TCX_EGRESS: " egress",
                 AttachType.NETKIT_PRIMARY: " primary", AttachType.NETKIT_PEER: " peer"}
        return AttachPlan(program.name, sec, kind,
                          f"{label}{where.get(atype, '')} on {iface} (ifindex {index})",
                          args=(iface, index, int(atype)))
    if ptype in (ProgType.SCHED_CLS, ProgType.SCHED_ACT):
        return _skip(program, _SKIPPED["tc"])
    if ptype == ProgType.PERF_EVENT:
        if not options.perf_event:
            raise _needs(program, "--perf-event", "the event to sample, e.g. cpu-clock:freq=99")
        from sigbpf.kernel.perf_event import PerfSample, online_cpus

        sample = PerfSample.parse(options.perf_event)
        cpus = online_cpus()
        return AttachPlan(program.name, sec, AttachKind.PERF_EVENT,
                          f"perf event {sample.name} on {len(cpus)} CPUs", args=(sample, tuple(cpus)))
    if atype is None and ptype == ProgType.CGROUP_SKB:
        return _skip(program, _SKIPPED["cgroup_skb"])
    if atype is None and ptype == ProgType.SK_SKB:
        return _skip(program, _SKIPPED["sk_skb"])
    if ptype in (ProgType.CGROUP_SKB, ProgType.CGROUP_SOCK, ProgType.CGROUP_SOCK_ADDR,
                 ProgType.CGROUP_SYSCTL, ProgType.CGROUP_SOCKOPT, ProgType.CGROUP_DEVICE,
                 ProgType.SOCK_OPS) or (ptype == ProgType.LSM and atype == AttachType.LSM_CGROUP):
        assert atype is not None
        path = _cgroup(program, options.cgroup)
        return AttachPlan(program.name, sec, AttachKind.CGROUP,
                          f"cgroup {path} ({AttachType(atype).name.lower()})",
                          args=(path, int(atype)))
    if ptype in (ProgType.SK_LOOKUP, ProgType.FLOW_DISSECTOR):
        assert atype is not None
        path = _netns(program, options.netns)
        return AttachPlan(program.name, sec, AttachKind.NETNS, f"netns {path}",
                          args=(path, int(atype)))
    if ptype in (ProgType.SK_SKB, ProgType.SK_MSG):
        assert atype is not None
        if not options.sockmap:
            raise _needs(program, "--sockmap", "the name of a sockmap or sockhash map of the object")
        return AttachPlan(program.name, sec, AttachKind.SOCKMAP, f"map {options.sockmap}",
                          args=(options.sockmap, int(atype)))
    return _skip(program, _SKIPPED["unknown"])


# --------------------------------------------------------------------------------------------
# Attaching.
# --------------------------------------------------------------------------------------------

def _attach_error(plan: AttachPlan, err: SigbpfError, step: str = "") -> SigbpfError:
    """*err* re-worded as one line naming the program, the target and the errno."""
    text = err.message
    hint = ""
    if type(err) is KernelError:  # the kernel's answer (not sigbpf's own checks)
        hint = _HINTS.get((plan.kind, err.errno)) or _HINTS.get((None, err.errno), "")
    step = f" ({step})" if step else ""
    message = f"{plan.where()}: attaching to {plan.target}{step}: {text}{hint}"
    cls = type(err) if isinstance(err, (KernelError, NotFoundError, UsageError)) else KernelError
    return cls(message, errno=err.errno)


_HINTS: dict[tuple[AttachKind | None, int | None], str] = {
    (None, errno_mod.EPERM): ("; no permission to attach (root, or CAP_BPF with CAP_NET_ADMIN for "
                              "network and cgroup attachments, CAP_PERFMON for tracing)"),
    (None, errno_mod.EACCES): "; permission denied",
    (AttachKind.XDP, errno_mod.EBUSY): "; another XDP program is already attached to the interface",
    (AttachKind.XDP, errno_mod.EEXIST): "; another XDP program is already attached to the interface",
    (AttachKind.KPROBE, errno_mod.ENOENT): "; no such kernel function (is it traceable?)",
    (AttachKind.KPROBE_MULTI, errno_mod.EOPNOTSUPP): ("; this kernel has no kprobe_multi links "
                                                      "(CONFIG_FPROBE off?)"),
    (AttachKind.KPROBE_MULTI, 524): "; this kernel has no kprobe_multi links (CONFIG_FPROBE off?)",
}


def _perf_link(prog_fd: Fd | int, plan: AttachPlan, open_event: Callable[[], Fd],
               suffix: str = "") -> Link:
    """Open a perf event, attach the program to it with a perf link, enable it."""
    from sigbpf.kernel.perf_event import enable

    try:
        pfd = open_event()
    except SigbpfError as err:
        raise _attach_error(plan, err, "perf_event_open") from None
    try:
        fd = link_create(prog_fd, pfd.fileno(), AttachType.PERF_EVENT,
                         extra={"perf_event.bpf_cookie": 0},
                         what="BPF_LINK_CREATE(BPF_PERF_EVENT)")
    except KernelError as err:
        pfd.close()
        raise _attach_error(plan, err) from None
    link = Link(fd, perf_fd=pfd, suffix=suffix)
    try:
        enable(pfd)
        link.info = link_info(fd)
    except KernelError as err:
        link.close()
        raise _attach_error(plan, err) from None
    return link


def _simple_link(plan: AttachPlan, make: Callable[[], Fd]) -> Link:
    try:
        fd = make()
    except KernelError as err:
        raise _attach_error(plan, err) from None
    try:
        return Link(fd, info=link_info(fd))
    except KernelError as err:
        fd.close()
        raise _attach_error(plan, err) from None


def _kprobe_multi_addrs(pattern: str) -> list[int]:
    """Addresses of the functions matching *pattern*, as libbpf resolves a kprobe.multi glob:
    tracefs ``available_filter_functions_addrs`` when readable, else the names in
    ``available_filter_functions`` looked up in /proc/kallsyms."""
    from sigbpf.kernel.perf_event import tracefs
    from sigbpf.kernel.uprobes import glob_match

    base = tracefs()
    with_addrs = base / "available_filter_functions_addrs"
    addrs: list[int] = []
    if os.access(with_addrs, os.R_OK):
        with open(with_addrs) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and glob_match(parts[1], pattern):
                    addrs.append(int(parts[0], 16))
    else:
        with open(base / "available_filter_functions") as f:
            names = {line.split()[0] for line in f if line.strip()}
        names = {n for n in names if glob_match(n, pattern)}
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1].lower() == "t" and parts[2] in names:
                    addrs.append(int(parts[0], 16))
    if not addrs:
        raise NotFoundError(f"no traceable kernel function matches {pattern!r} "
                            f"({base}/available_filter_functions)", errno=errno_mod.ENOENT)
    return addrs


def _attach_kprobe_multi(prog_fd: Fd | int, plan: AttachPlan, attach_type: int) -> Link:
    import array

    from sigbpf.kernel.attr import Buffers

    pattern, retprobe, session = plan.args
    keep = Buffers()
    extra = {"kprobe_multi.flags": BPF_F_KPROBE_MULTI_RETURN if retprobe else 0}
    if "*" not in pattern and "?" not in pattern:
        name = keep.cstr(pattern)
        syms = array.array("Q", [name])
        extra.update({"kprobe_multi.syms": keep.ptr(syms.tobytes()), "kprobe_multi.cnt": 1})
    else:
        try:
            addrs = _kprobe_multi_addrs(pattern)
        except (SigbpfError, OSError) as err:
            if isinstance(err, OSError):
                err = NotFoundError(f"{err.filename}: {err.strerror}", errno=err.errno)
            raise _attach_error(plan, err) from None
        table = array.array("Q", addrs)
        extra.update({"kprobe_multi.addrs": keep.ptr(table.tobytes()),
                      "kprobe_multi.cnt": len(addrs)})
    attach_type = _multi_attach_type(attach_type, session, AttachType.TRACE_KPROBE_MULTI,
                                     AttachType.TRACE_KPROBE_SESSION)
    return _simple_link(plan, lambda: link_create(prog_fd, 0, attach_type, extra=extra,
                                                  what="BPF_LINK_CREATE(kprobe_multi)"))


def _multi_attach_type(attach_type: int, session: bool, multi: AttachType,
                       session_type: AttachType) -> int:
    """The link's attach type for a ``.multi``/``.session`` section: the session type for a
    session, else the program's own when it is one of the two, else the multi type."""
    if session:
        return session_type
    return attach_type if attach_type in (multi, session_type) else multi


def _attach_uprobe_multi(prog_fd: Fd | int, plan: AttachPlan, attach_type: int) -> Link:
    import array

    from sigbpf.kernel.attr import Buffers
    from sigbpf.kernel.uprobes import pattern_offsets

    path, pattern, retprobe, session = plan.args
    try:
        offsets = pattern_offsets(path, pattern)
    except SigbpfError as err:
        raise _attach_error(plan, err) from None
    keep = Buffers()
    table = array.array("Q", offsets)
    extra = {"uprobe_multi.path": keep.cstr(path),
             "uprobe_multi.offsets": keep.ptr(table.tobytes()),
             "uprobe_multi.cnt": len(offsets),
             "uprobe_multi.flags": BPF_F_UPROBE_MULTI_RETURN if retprobe else 0}
    attach_type = _multi_attach_type(attach_type, session, AttachType.TRACE_UPROBE_MULTI,
                                     AttachType.TRACE_UPROBE_SESSION)
    return _simple_link(plan, lambda: link_create(prog_fd, 0, attach_type, extra=extra,
                                                  what="BPF_LINK_CREATE(uprobe_multi)"))


def _attach_tracing(prog_fd: Fd | int, plan: AttachPlan, attach_type: int) -> Link:
    """libbpf's ``bpf_program__attach_btf_id``: BPF_LINK_CREATE with the program's expected
    attach type; on EINVAL (kernels before tracing links) BPF_RAW_TRACEPOINT_OPEN, no name."""
    def make() -> Fd:
        try:
            return link_create(prog_fd, 0, attach_type, what="BPF_LINK_CREATE")
        except KernelError as err:
            if err.errno != errno_mod.EINVAL or attach_type not in _RAW_TP_FALLBACK:
                raise
            return raw_tracepoint_open(prog_fd, None,
                                       what="BPF_RAW_TRACEPOINT_OPEN (after BPF_LINK_CREATE: EINVAL)")

    return _simple_link(plan, make)


_RAW_TP_FALLBACK = frozenset({AttachType.TRACE_RAW_TP, AttachType.LSM_MAC, AttachType.TRACE_FENTRY,
                              AttachType.TRACE_FEXIT, AttachType.MODIFY_RETURN})


def _attach_fd_target(prog_fd: Fd | int, plan: AttachPlan, path: str, attach_type: int,
                      flags: int) -> Link:
    """Open *path* (a cgroup directory or a netns file) and link the program to it."""
    try:
        target = os.open(path, flags | os.O_CLOEXEC)
    except OSError as err:
        raise _attach_error(plan, UsageError(f"cannot open {path}: {err.strerror}",
                                             errno=err.errno)) from None
    try:
        return _simple_link(plan, lambda: link_create(prog_fd, target, attach_type,
                                                      what="BPF_LINK_CREATE"))
    finally:
        os.close(target)


def attach_program(prog_fd: Fd | int, program: "Program",
                   options: AttachOptions = AttachOptions(), *,
                   maps: Mapping[str, Fd] | None = None,
                   plan: AttachPlan | None = None) -> Attachment:
    """Attach the loaded program *prog_fd* as its section says (see the module docstring).

    *maps* (name -> fd) are the object's maps, for ``--sockmap``.  *plan* is a plan made
    before (:func:`plan_attach`); a program the plan leaves alone is a UsageError here.
    """
    plan = plan or plan_attach(program, options)
    if plan.kind is None:
        raise UsageError(f"{plan.where()} cannot be attached: {plan.reason}")
    kind = plan.kind
    atype = program.expected_attach_type
    if kind is AttachKind.KPROBE:
        from sigbpf.kernel.perf_event import kprobe_event

        func, offset, retprobe = plan.args
        links = [_perf_link(prog_fd, plan, lambda: kprobe_event(func, offset, retprobe=retprobe))]
    elif kind is AttachKind.UPROBE:
        from sigbpf.kernel.perf_event import uprobe_event
        from sigbpf.kernel.uprobes import func_offset

        path, func, offset, retprobe = plan.args
        try:
            where = func_offset(path, func) + offset
        except SigbpfError as err:
            raise _attach_error(plan, err) from None
        links = [_perf_link(prog_fd, plan, lambda: uprobe_event(path, where, retprobe=retprobe))]
    elif kind is AttachKind.TRACEPOINT:
        from sigbpf.kernel.perf_event import tracepoint_event

        category, name = plan.args
        links = [_perf_link(prog_fd, plan, lambda: tracepoint_event(category, name))]
    elif kind is AttachKind.PERF_EVENT:
        from sigbpf.kernel.perf_event import sample_event

        sample, cpus = plan.args
        links = []
        try:
            for cpu in cpus:
                links.append(_perf_link(prog_fd, plan, lambda cpu=cpu: sample_event(sample, cpu),
                                        suffix=f"_cpu{cpu}"))
        except BaseException:
            for link in links:
                link.close()
            raise
    elif kind is AttachKind.KPROBE_MULTI:
        links = [_attach_kprobe_multi(prog_fd, plan, atype)]
    elif kind is AttachKind.UPROBE_MULTI:
        links = [_attach_uprobe_multi(prog_fd, plan, atype)]
    elif kind is AttachKind.RAW_TRACEPOINT:
        (name,) = plan.args
        links = [_simple_link(plan, lambda: raw_tracepoint_open(prog_fd, name))]
    elif kind in (AttachKind.TRACING, AttachKind.LSM):
        links = [_attach_tracing(prog_fd, plan, atype)]
    elif kind is AttachKind.ITER:
        links = [_simple_link(plan, lambda: link_create(prog_fd, 0, AttachType.TRACE_ITER,
                                                        what="BPF_LINK_CREATE(BPF_TRACE_ITER)"))]
    elif kind in (AttachKind.XDP, AttachKind.TCX, AttachKind.NETKIT):
        _, index, target_type = plan.args
        links = [_simple_link(plan, lambda: link_create(prog_fd, index, target_type,
                                                        what="BPF_LINK_CREATE"))]
    elif kind is AttachKind.CGROUP:
        path, target_type = plan.args
        links = [_attach_fd_target(prog_fd, plan, path, target_type,
                                   os.O_RDONLY | os.O_DIRECTORY)]
    elif kind is AttachKind.NETNS:
        path, target_type = plan.args
        links = [_attach_fd_target(prog_fd, plan, path, target_type, os.O_RDONLY)]
    elif kind is AttachKind.SOCKMAP:
        name, target_type = plan.args
        if not maps or name not in maps:
            known = ", ".join(sorted(maps or ())) or "none"
            raise UsageError(f"{plan.where()}: no map {name!r} in the object (--sockmap; "
                             f"maps: {known})")
        map_fd = maps[name]
        links = [_simple_link(plan, lambda: link_create(prog_fd, map_fd.fileno(), target_type,
                                                        what="BPF_LINK_CREATE"))]
    else:  # pragma: no cover - every kind is handled above
        raise UsageError(f"{plan.where()}: attach kind {kind.value} not handled")
    return Attachment(plan, links)


def plan_loaded(loaded: "LoadedArtifact", options: AttachOptions = AttachOptions(),
                programs: Sequence["Program"] | None = None) -> list[AttachPlan]:
    """The plan of every program (of *programs*, default: those *loaded* has an fd for)."""
    assert loaded.artifact is not None, "LoadedArtifact without its artifact"
    if programs is None:
        programs = [p for p in loaded.artifact.programs if p.name in loaded.prog_fds]
    return [plan_attach(p, options) for p in programs]


def attach_loaded(loaded: "LoadedArtifact", options: AttachOptions = AttachOptions(), *,
                  plans: Sequence[AttachPlan] | None = None) -> AttachResult:
    """Attach every loaded program of *loaded*, all or nothing.

    Each attachment is appended to ``loaded.links`` (closed first by
    ``loaded.close()``).  When one fails, those made before are detached and
    removed from ``loaded.links``, and the error (naming the program, the
    target and the errno) is raised.
    """
    assert loaded.artifact is not None, "LoadedArtifact without its artifact"
    if plans is None:
        plans = plan_loaded(loaded, options)
    by_name = {p.name: p for p in loaded.artifact.programs}
    maps = {m.name: fd for m, fd in zip(loaded.artifact.maps, loaded.map_fds)}
    result = AttachResult()
    try:
        for plan in plans:
            if not plan.attaches:
                result.skipped.append(plan)
                continue
            attachment = attach_program(loaded.prog_fds[plan.program], by_name[plan.program],
                                        options, maps=maps, plan=plan)
            result.attachments.append(attachment)
            loaded.links.append(attachment)
    except BaseException:
        for attachment in reversed(result.attachments):
            attachment.detach()
            if attachment in loaded.links:
                loaded.links.remove(attachment)
        raise
    return result


def wait_for_signal(duration: float | None) -> str:
    """Block until SIGINT or SIGTERM (or *duration* seconds); what ended the wait."""
    import signal

    wanted = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    try:
        if duration is None:
            info = signal.sigwaitinfo(wanted)
            return signal.Signals(info.si_signo).name
        info = signal.sigtimedwait(wanted, duration)
        return signal.Signals(info.si_signo).name if info is not None else f"{duration:g}s elapsed"
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
