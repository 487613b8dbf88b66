"""A portable artifact into the running kernel: BTF, maps, programs, runs.

:func:`load_artifact` does what a loader must, in this order:

1. **Probe** once whether the kernel resolves ``src_reg = 3`` kfunc calls
   itself (:mod:`.probe`).  If it does, resolution is ``"kernel"`` and the
   instructions go to the kernel as the artifact has them; if not,
   resolution is ``"userspace"``: the seed's pass runs here against the
   running kernel's BTF (/sys/kernel/btf/vmlinux) and the kernel gets normal
   kfunc calls (``src_reg = 2``, ``imm`` = vmlinux id).  Either way the loader
   first binds kfunc addresses and absent weak kfuncs
   (:mod:`sigbpf.resolve.binding`), then
   runs :func:`sigbpf.resolve.report.analyze` (the seed's pass plus sigbpf's
   prototype, is-it-a-kfunc and module checks, the last against the loaded
   modules' BTF in /sys/kernel/btf): a program it rejects never reaches
   the kernel, in either path.
2. **Program BTF** (``BPF_BTF_LOAD``): maps, func_info, line_info and CO-RE
   relocations refer to it; the kernel applies CO-RE itself from ``core_relos``.
3. **Maps** (``BPF_MAP_CREATE`` with their BTF key/value ids), initial data
   written at key 0 (global data), ``.rodata`` frozen.  Instructions refer to
   maps by index (``ld_imm64`` src_reg ``MAP_IDX`` / ``MAP_IDX_VALUE``, imm =
   index in the artifact's map table), so the ``fd_array`` is the map fds in
   table order and no instruction holds an fd.
4. **Programs** (``BPF_PROG_LOAD``), each with its own verdict; a refused
   program does not stop the others.  With a signature, ``signature`` /
   ``signature_size`` / ``keyring_id`` go along (6.18 fields), always; when the
   instructions as loaded differ from the signed ones (userspace resolution,
   weak kfunc binding) the report says so (:func:`signed_insns_note`,
   docs/FORMAT.md 5.5).
5. **Run** (``BPF_PROG_RUN``) syscall programs when asked, with the context bytes.

Everything the kernel hands out is an :class:`~sigbpf.kernel.syscall.Fd`
owned by the returned :class:`LoadedArtifact`; ``close()`` (or ``with``)
releases it all.
"""

from __future__ import annotations

import errno as errno_mod
import struct
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING, Mapping, Sequence

from sigbpf.errors import ArtifactError, KernelError, ResolveError
from sigbpf.resolve.binding import KfuncBinding, bind_sites, lookup_kfuncs
from sigbpf.kernel.syscall import Fd

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Artifact, Map, Program
    from sigbpf.kernel.environment import KernelEnvironment
    from sigbpf.kernel.kernel_btf import BoundTarget, KernelBTFs
    from sigbpf.kernel.mapview import MapView
    from sigbpf.asm import Instruction
    from sigbpf.btf import BTF
    from sigbpf.resolve.kfunc_check import KfuncSet
    from sigbpf.resolve.modules import ModuleBTF
    from sigbpf.resolve.report import CheckOptions


class Resolution(str, Enum):
    """Who resolves ``src_reg = 3`` kfunc calls: the kernel (seed) or sigbpf in userspace."""

    KERNEL = "kernel"
    USERSPACE = "userspace"


@dataclass(frozen=True, slots=True)
class ProgramOutcome:
    """What happened to one program.  ``retval`` is None unless it ran."""

    name: str
    loaded: bool
    retval: int | None = None
    log: str = ""
    error: str | None = None
    errno: int | None = None
    ran: bool = False
    #: Who refused it: "sigbpf" (resolution pass or a check, before the kernel) or "kernel".
    refused_by: str | None = None
    #: What the program was bound to in this kernel: its attach target (``name@vmlinux:id``).
    attach_btf: str | None = None

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "loaded": self.loaded, "retval": self.retval, "log": self.log}


@dataclass
class LoadReport:
    """The loader's account: which path ran, each program's outcome, the kfuncs bound."""

    resolution: Resolution
    probe_detail: str
    programs: list[ProgramOutcome] = field(default_factory=list)
    kfuncs: tuple[KfuncBinding, ...] = ()
    notes: list[str] = field(default_factory=list)
    #: Programs not loaded on purpose: (name, why) -- not selected, or (``skip_missing``)
    #: their attach target is not in this kernel.
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(p.loaded for p in self.programs)

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "resolution": self.resolution.value,
            "programs": [p.as_json() for p in self.programs],
            "kfuncs": [{"name": k.name, "btf_id": k.btf_id} for k in self.kfuncs],
        }
        if self.skipped:
            out["skipped"] = [{"name": n, "reason": why} for n, why in self.skipped]
        return out


@dataclass
class LoadedArtifact:
    """The kernel objects of one loaded artifact; closing it releases them all."""

    report: LoadReport
    btf_fd: Fd | None = None
    map_fds: list[Fd] = field(default_factory=list)
    prog_fds: dict[str, Fd] = field(default_factory=dict)
    #: The artifact these objects were loaded from (map i of ``artifact.maps`` is ``map_fds[i]``).
    artifact: "Artifact | None" = None
    #: Attachments (links, perf events, ...) made for these programs: each has ``close()``,
    #: and they are closed first, so a program is detached before its fd goes.
    links: list = field(default_factory=list)
    #: The program BTF, parsed (key/value types of the maps), None without BTF.
    prog_btf: "BTF | None" = None
    #: The kernel's BTF objects (vmlinux, modules) the artifact's names were bound against.
    kernel_btfs: "KernelBTFs | None" = None

    @cached_property
    def maps(self) -> "dict[str, MapView]":
        """The artifact's maps by name (inner-map prototypes left out), each a
        :class:`~sigbpf.kernel.mapview.MapView`: lookup/update/delete/iterate, keys and
        values decoded through the program BTF where the map has it."""
        from sigbpf.kernel.mapview import MapView

        assert self.artifact is not None
        return {m.name: MapView(fd, m, self.prog_btf)
                for m, fd in zip(self.artifact.maps, self.map_fds) if not m.inner_template}

    @cached_property
    def programs(self) -> "dict[str, LoadedProgram]":
        """The loaded programs by name, each with its fd, its artifact record and ``attach()``."""
        assert self.artifact is not None
        return {p.name: LoadedProgram(self, p, self.prog_fds[p.name])
                for p in self.artifact.programs if p.name in self.prog_fds}

    def close(self) -> None:
        while self.links:
            self.links.pop().close()
        for fd in [*self.prog_fds.values(), *self.map_fds, self.btf_fd]:
            if fd is not None:
                fd.close()
        if self.kernel_btfs is not None:
            self.kernel_btfs.close()

    def __enter__(self) -> "LoadedArtifact":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class LoadedProgram:
    """One loaded program of a :class:`LoadedArtifact`: ``fd``, ``spec`` (the artifact's
    record) and :meth:`attach`, which attaches it as its section says (libbpf's
    auto-attach, :mod:`sigbpf.kernel.attach`) and hands the attachment to the artifact,
    whose ``close()`` detaches it."""

    owner: LoadedArtifact
    spec: "Program"
    fd: Fd

    @property
    def name(self) -> str:
        return self.spec.name

    def attach(self, *, iface: str | None = None, cgroup: str | None = None,
               netns: str | None = None, sockmap: str | None = None,
               perf_event: str | None = None):
        """Attach; the targets are those of ``sigbpf load --attach`` (``--iface`` ...)."""
        from sigbpf.kernel.attach import AttachOptions, attach_program

        assert self.owner.artifact is not None
        maps = {m.name: fd for m, fd in zip(self.owner.artifact.maps, self.owner.map_fds)}
        attachment = attach_program(self.fd, self.spec, AttachOptions(
            iface=iface, cgroup=cgroup, netns=netns, sockmap=sockmap, perf_event=perf_event),
            maps=maps)
        self.owner.links.append(attachment)
        return attachment


#: BPF_PROG_TYPE_EXT (freplace).
_PROG_TYPE_EXT = 28

#: Key of the one element of a global data map (.data, .rodata, .bss).
_GLOBAL_DATA_KEY = struct.pack("<I", 0)


def load_artifact(
    artifact: "Artifact",
    *,
    run: bool = False,
    ctx: bytes = b"",
    resolution: Resolution | str | None = None,
    vmlinux: "BTF | None" = None,
    signatures: Mapping[str, bytes] | None = None,
    keyring_id: int | None = None,
    checks: "CheckOptions | None" = None,
    modules: "Sequence[ModuleBTF] | None" = None,
    file: str | None = None,
    programs: Sequence[str] | None = None,
    skip_missing: bool = False,
    environment: "KernelEnvironment | None" = None,
) -> LoadedArtifact:
    """Load the programs of *artifact* (see the module docstring for the steps).

    *resolution* forces a path (None: probe).  *signatures* maps program
    names to PKCS#7 signatures passed with ``keyring_id`` (None: no
    signature goes to the kernel).  *checks* selects sigbpf's checks beyond
    the seed (default: all on); a program they reject is not loaded.  The module
    check looks at *modules* (None: the running kernel's, /sys/kernel/btf/<module>)
    and reports a kfunc name a module also defines in the notes (the call stays
    pinned to vmlinux: ``off`` 0).  *file* names the artifact in errors.

    *programs* names the programs to load (libbpf's ``set_autoload``); None loads
    every program whose section does not start with ``?``.  With *skip_missing*,
    a program whose attach target this kernel lacks is skipped (``report.skipped``
    says why) instead of refused.  *environment* gives the kernel's config,
    kallsyms and facts for kconfig externs and ksyms (None: the running kernel's,
    read when the artifact needs them).

    Errors that stop everything (BTF or map refused, a kconfig value or ksym the
    kernel lacks, bad artifact) raise, after closing what was created; each
    program's refusal is in the report.
    """
    from sigbpf.kernel.probe import kernel_resolves_prog_btf

    if resolution is None:
        probe = kernel_resolves_prog_btf()
        path = Resolution.KERNEL if probe.native else Resolution.USERSPACE
        detail = probe.detail
    else:
        path = Resolution(resolution)
        detail = f"resolution forced to {path.value}"
        if path is Resolution.KERNEL:
            # Say what the kernel would have answered: the probe's verdict goes with the report.
            try:
                probe = kernel_resolves_prog_btf()
                detail += f"; the probe says: {probe.detail}"
            except KernelError as err:
                detail += f"; the probe could not run: {err.message}"
    if vmlinux is None:
        from sigbpf.btf import BTF

        vmlinux = BTF.load_vmlinux()
    from sigbpf.kernel.kernel_btf import KernelBTFs
    from sigbpf.resolve.report import CheckOptions

    selected = _select_programs(artifact, programs)
    options = checks if checks is not None else CheckOptions()
    kfunc_set = None
    if options.kfunc and artifact.kfuncs:
        from sigbpf.resolve.kfunc_check import KfuncSet

        kfunc_set = KfuncSet.for_kernel(vmlinux, ())
    bindings = lookup_kfuncs(artifact, vmlinux)
    report = LoadReport(path, detail, kfuncs=bindings)
    if options.module and modules is None and artifact.kfuncs:
        from sigbpf.kernel.btf import running_module_btfs

        modules, problems = running_module_btfs(vmlinux)
        report.notes.extend(f"module check: {p} (left out)" for p in problems)
    loaded = LoadedArtifact(report, artifact=artifact, kernel_btfs=KernelBTFs(vmlinux))
    session = _Session(path, vmlinux, bindings, kfunc_set, options, run, ctx, signatures,
                       keyring_id, tuple(modules or ()), file, selected, skip_missing,
                       environment)
    try:
        _load_into(loaded, artifact, session)
    except BaseException:
        loaded.close()
        raise
    return loaded


@dataclass(frozen=True)
class _Session:
    """What one :func:`load_artifact` call decided before touching the kernel."""

    path: Resolution
    vmlinux: "BTF"
    bindings: Sequence[KfuncBinding]
    kfunc_set: "KfuncSet | None"
    options: "CheckOptions"
    run: bool
    ctx: bytes
    signatures: Mapping[str, bytes] | None
    keyring_id: int | None
    modules: tuple["ModuleBTF", ...]
    file: str | None
    selected: frozenset[str]
    skip_missing: bool
    environment: "KernelEnvironment | None"


def _needs_kernel_btf(artifact: "Artifact", session: "_Session") -> bool:
    """Whether the programs cannot load without their BTF in the kernel: struct_ops (libbpf's
    kernel_needs_btf), and PROG_BTF kfunc calls the kernel resolves itself."""
    if any(p.attach is not None and p.attach.kind == 4 for p in artifact.programs):
        return True
    return session.path is Resolution.KERNEL and bool(artifact.kfuncs)


def _select_programs(artifact: "Artifact", names: Sequence[str] | None) -> frozenset[str]:
    """The programs to load: *names* (each must exist), else libbpf's autoload default."""
    if names is None:
        return frozenset(p.name for p in artifact.programs if p.autoload)
    known = {p.name for p in artifact.programs}
    unknown = [n for n in names if n not in known]
    if unknown:
        from sigbpf.errors import UsageError

        raise UsageError(f"no program named {unknown[0]!r} in the artifact (it has: "
                         f"{', '.join(sorted(known)) or 'none'})")
    return frozenset(names)


def _load_into(loaded: LoadedArtifact, artifact: "Artifact", session: _Session) -> None:
    from sigbpf.kernel.btf import load_btf

    prog_btf = None
    if artifact.btf:
        from sigbpf.btf import BTF

        from sigbpf.btf.validate import parse_lenient

        file = session.file
        prog_btf, policy = parse_lenient(BTF, artifact.btf,
                                         file=f"{file}: program BTF" if file else "program BTF")
        try:
            loaded.btf_fd = load_btf(artifact.btf, what="the artifact's program BTF")
        except KernelError as err:
            if policy is None or _needs_kernel_btf(artifact, session):
                raise
            # libbpf: "Error loading .BTF into kernel ... BTF is optional, ignoring."
            loaded.report.notes.append(
                f"the kernel refuses the program BTF ({policy.message}; {err.errno_name}): "
                f"loading without it, as libbpf does (maps without BTF types, programs "
                f"without func_info, line_info and CO-RE relocations)")
    loaded.prog_btf = prog_btf
    env = session.environment
    if env is None and (artifact.kconfig or artifact.ksyms):
        from sigbpf.kernel.environment import KernelEnvironment

        env = KernelEnvironment.running()
    _create_maps(loaded, artifact, env)
    fd_array = tuple(fd.fileno() for fd in loaded.map_fds)
    ksym_values = _bind_ksyms(loaded, artifact, prog_btf, env) if artifact.ksyms else ()
    for program in artifact.programs:
        if program.name not in session.selected:
            loaded.report.skipped.append((program.name, "not selected" if program.autoload
                                          else "not autoloaded (section starts with '?')"))
            continue
        target = None
        if program.prog_type == _PROG_TYPE_EXT:
            # freplace: attach_prog_fd + a BTF id in *another program's* BTF, which an
            # artifact cannot name; libbpf fails the same way ("failed to prepare load
            # attributes: -22") unless the caller sets a target program.
            loaded.report.programs.append(ProgramOutcome(
                program.name, False, errno=errno_mod.EINVAL, refused_by="sigbpf",
                error=f"prog '{program.name}': freplace programs replace a function of another "
                      f"BPF program, and none is given (EINVAL)"))
            continue
        if program.attach is not None:
            from sigbpf.errors import NotFoundError
            from sigbpf.kernel.kernel_btf import bind_attach_target

            assert loaded.kernel_btfs is not None
            try:
                target = bind_attach_target(program.attach, loaded.kernel_btfs,
                                            program=program.name)
            except NotFoundError as err:
                if session.skip_missing:
                    loaded.report.skipped.append((program.name, err.message))
                    continue
                loaded.report.programs.append(ProgramOutcome(
                    program.name, False, log=err.message + "\n", error=str(err),
                    errno=err.errno, refused_by="sigbpf"))
                continue
        outcome = _load_program(loaded, program, session, prog_btf, fd_array, target,
                                ksym_values)
        loaded.report.programs.append(outcome)
    _fill_prog_slots(loaded, artifact)


def _create_maps(loaded: LoadedArtifact, artifact: "Artifact",
                 env: "KernelEnvironment | None") -> None:
    """Every map, in artifact order, with libbpf's load-time fix-ups (docs/FORMAT.md 3):
    sizes computed for this kernel, kconfig values written, inner-map prototypes passed as
    ``inner_map_fd``, initial map-in-map slots filled once every map exists."""
    from sigbpf.artifact.format import MapKind, SlotKind
    from sigbpf.kernel.maps import create_map, freeze, update_elem

    fds: dict[int, Fd] = {}

    def create(index: int, chain: tuple[int, ...] = ()) -> Fd:
        if index in fds:
            return fds[index]
        if index in chain:
            raise ArtifactError(f"map {index}: inner map references form a cycle")
        m = artifact.maps[index]
        inner_fd = create(m.inner_map, chain + (index,)) if m.inner_map >= 0 else None
        what = f"map {index} {m.name!r}"
        has_btf = loaded.btf_fd is not None and (m.btf_key_type_id or m.btf_value_type_id)
        max_entries = _max_entries(m)

        def attempt(with_btf: bool) -> Fd:
            return create_map(
                m.map_type, m.key_size, m.value_size, max_entries, name=m.name,
                flags=m.map_flags, btf_fd=loaded.btf_fd if with_btf else None,
                btf_key_type_id=m.btf_key_type_id, btf_value_type_id=m.btf_value_type_id,
                map_extra=m.map_extra, inner_map_fd=inner_fd, numa_node=m.numa_node)

        try:
            fd = attempt(bool(has_btf))
        except KernelError as err:
            if not has_btf:
                raise
            # libbpf: "Error in bpf_create_map_xattr(%s): ... Retrying without BTF."
            fd = attempt(False)
            loaded.report.notes.append(f"{what}: the kernel refused its BTF key/value types "
                                       f"({err.errno_name}); created without BTF, as libbpf does")
        fds[index] = fd
        data = m.initial_data
        if m.kind == MapKind.KCONFIG:
            assert env is not None
            data = env.kconfig_map_data(artifact.kconfig, m.value_size)
        if data:
            if m.kind == MapKind.BTF_DEFINED:
                raise ArtifactError(f"{what}: initial data for a BTF-defined map is not supported")
            value = data + bytes(m.value_size - len(data))
            update_elem(fd, _GLOBAL_DATA_KEY, value, what=what)
        if m.frozen:
            freeze(fd, what=what)
        return fd

    try:
        for index in range(len(artifact.maps)):
            create(index)
        for index, m in enumerate(artifact.maps):
            for slot in m.slots:
                if slot.kind == SlotKind.MAP:
                    update_elem(fds[index], struct.pack("<I", slot.slot),
                                struct.pack("<I", fds[slot.target].fileno()),
                                what=f"map {index} {m.name!r} slot {slot.slot}")
    finally:
        loaded.map_fds.extend(fds[i] for i in sorted(fds))


def _max_entries(m: "Map") -> int:
    """``max_entries`` for this machine: libbpf's ``map_set_def_max_entries`` (a perf event
    array declared without it gets one entry per possible CPU) and ``adjust_ringbuf_sz``
    (a ring buffer's size rounded up to a power-of-2 multiple of the page size)."""
    from sigbpf.artifact.format import ArtifactMapFlags

    if m.flags & ArtifactMapFlags.MAX_ENTRIES_CPUS:
        from sigbpf.kernel.cpus import possible_cpus

        return possible_cpus()
    if m.flags & ArtifactMapFlags.RINGBUF_SIZE:
        import mmap

        page = mmap.PAGESIZE
        if m.max_entries == 0:
            return 0  # libbpf: "if user forgot to set any size, make sure they see error"
        mul = -(-m.max_entries // page)  # whole pages, then the next power of two
        return page * (1 << (mul - 1).bit_length())
    return m.max_entries


def _fill_prog_slots(loaded: LoadedArtifact, artifact: "Artifact") -> None:
    """Prog arrays' initial slots (libbpf's ``bpf_object__init_prog_arrays``): each slot gets
    the fd of its program; a slot whose program was not loaded stays empty."""
    from sigbpf.artifact.format import SlotKind
    from sigbpf.kernel.maps import update_elem

    for index, m in enumerate(artifact.maps):
        for slot in m.slots:
            if slot.kind != SlotKind.PROG:
                continue
            name = artifact.programs[slot.target].name
            fd = loaded.prog_fds.get(name)
            if fd is None:
                loaded.report.notes.append(f"map {m.name!r} slot {slot.slot}: program {name!r} "
                                           f"is not loaded; the slot stays empty")
                continue
            update_elem(loaded.map_fds[index], struct.pack("<I", slot.slot),
                        struct.pack("<I", fd.fileno()),
                        what=f"map {index} {m.name!r} slot {slot.slot} (program {name!r})")


@dataclass(frozen=True, slots=True)
class _KsymValue:
    """A ksym bound for this kernel: what its ``ld_imm64`` becomes."""

    src: int  # BPF_PSEUDO_BTF_ID (typed) or 0 (an address, 0 for a missing weak one)
    imm: int
    imm2: int


def _bind_ksyms(loaded: LoadedArtifact, artifact: "Artifact", prog_btf: "BTF | None",
                env: "KernelEnvironment") -> tuple[_KsymValue, ...]:
    """Each ksym of the artifact bound by name, with libbpf's rules
    (``bpf_object__resolve_externs`` / ``bpf_object__resolve_ksyms_btf_id``)."""
    from sigbpf.asm import PseudoLdImm64

    assert loaded.kernel_btfs is not None
    addresses = env.kallsyms_addresses(artifact.ksyms)
    out = []
    for ksym in artifact.ksyms:
        if not ksym.typed:
            low, high = struct.unpack("<ii", struct.pack("<Q", addresses[ksym.name]))
            out.append(_KsymValue(0, low, high))
            continue
        if prog_btf is None:
            raise ArtifactError(f"ksym '{ksym.name}': typed, but the artifact has no program BTF")
        bound = env.resolve_ksym_var(ksym.name, prog_btf, ksym.type_id, loaded.kernel_btfs,
                                     weak=ksym.weak)
        if bound is None:  # weak and absent: the address 0
            out.append(_KsymValue(0, 0, 0))
        else:
            btf_id, obj_fd = bound
            out.append(_KsymValue(int(PseudoLdImm64.BTF_ID), btf_id, obj_fd))
    return tuple(out)


def _apply_ksyms(program: "Program", insns: list["Instruction"],
                 values: Sequence[_KsymValue]) -> list["Instruction"]:
    for site in program.ksym_sites:
        v = values[site.ksym]
        insns[site.insn] = insns[site.insn].replace(src=v.src, imm=v.imm)
        insns[site.insn + 1] = insns[site.insn + 1].replace(imm=v.imm2)
    return insns


def _load_program(loaded: LoadedArtifact, program: "Program", session: _Session,
                  prog_btf: "BTF | None", fd_array: tuple[int, ...],
                  target: "BoundTarget | None",
                  ksym_values: Sequence[_KsymValue]) -> ProgramOutcome:
    from sigbpf.asm import Instruction
    from sigbpf.kernel.program import ProgLoad, load_program
    from sigbpf.resolve.report import analyze

    path, run, ctx = session.path, session.run, session.ctx
    signature = (session.signatures.get(program.name)
                 if session.signatures is not None else None)
    keyring_id = session.keyring_id
    attach_btf = f"{target.name}@{target.where}:{target.btf_id}" if target is not None else None
    try:
        insns = bind_sites(program, session.bindings)
    except ResolveError as err:
        log = "\n".join(err.log) if err.log else err.message
        return ProgramOutcome(program.name, False, log=log + "\n",
                              error=f"program {program.name!r}: {err}", errno=err.errno,
                              refused_by="sigbpf")
    if program.ksym_sites:
        insns = _apply_ksyms(program, list(insns), ksym_values)
    # The seed's pass and sigbpf's checks (prototype, is-it-a-kfunc, module) run in both paths:
    # in the kernel path as a pre-flight check, in the userspace path to rewrite the calls.
    # The kernel attaches the program BTF only to a load with func/line info or CO-RE
    # relocations; the seed's pass sees none otherwise, here as there.
    from sigbpf.resolve.resolver import attached_prog_btf

    prog_btf = attached_prog_btf(prog_btf, func_info=bool(program.func_info_bytes),
                                 line_info=bool(program.line_info_bytes),
                                 core_relos=bool(program.core_relo_bytes))
    report = analyze(insns, prog_btf, session.vmlinux, name=program.name,
                     kfunc_set=session.kfunc_set, options=session.options,
                     modules=session.modules)
    if not report.ok:
        if not report.resolution.ok:
            reason = report.resolution.log[-1]
        else:
            f = next(f for f in report.findings if f.is_error)
            reason = f"kfunc call insn {f.insn}: {f.message}" if f.insn is not None else f.message
        return ProgramOutcome(program.name, False, log="\n".join(report.log) + "\n",
                              error=f"program {program.name!r} rejected before loading: {reason}",
                              errno=report.errno, refused_by="sigbpf")
    loaded.report.notes.extend(f"program {program.name!r}: {f.log_line()}" for f in report.findings)
    if path is Resolution.USERSPACE:
        insns = list(report.resolution.insns)

    req = ProgLoad(
        prog_type=program.prog_type, insns=Instruction.encode(insns), license=program.license,
        name=program.name,
        expected_attach_type=(target.member_index if target is not None
                              and target.member_index is not None
                              else program.expected_attach_type),
        flags=program.prog_flags, kern_version=program.kern_version,
        attach_btf_id=target.btf_id if target is not None else 0,
        attach_btf_obj_fd=(target.obj_fd.fileno()
                           if target is not None and target.obj_fd is not None else None),
        prog_btf_fd=loaded.btf_fd.fileno() if loaded.btf_fd is not None else None,
        func_info=program.func_info_bytes, line_info=program.line_info_bytes,
        core_relos=program.core_relo_bytes,
        fd_array=fd_array,
        signature=signature, keyring_id=keyring_id if keyring_id is not None else 0,
    )
    if signature is not None:
        note = signed_insns_note(program.name, program.insn_bytes, req.insns,
                                 "userspace resolution" if path is Resolution.USERSPACE
                                 else "weak kfunc binding")
        if note is not None:
            loaded.report.notes.append(note)
    try:
        fd = load_program(req)
    except KernelError as err:
        message = _refusal(err, signature, keyring_id)
        if path is Resolution.KERNEL:
            message += _not_native_hint(err, insns)
        return ProgramOutcome(program.name, False, log=err.log or message + "\n", error=message,
                              errno=err.errno, refused_by="kernel", attach_btf=attach_btf)
    loaded.prog_fds[program.name] = fd
    if not run:
        return ProgramOutcome(program.name, True, attach_btf=attach_btf)
    from sigbpf.elf.progtypes import ProgType
    from sigbpf.kernel.run import run_program

    if program.prog_type != ProgType.SYSCALL:
        loaded.report.notes.append(f"program {program.name!r} not run: only syscall programs "
                                   f"can be run with BPF_PROG_RUN here")
        return ProgramOutcome(program.name, True, attach_btf=attach_btf)
    try:
        result = run_program(fd, ctx, name=program.name)
    except KernelError as err:
        hint = ""
        if err.errno == errno_mod.EINVAL:
            hint = (f"; the kernel refuses a context shorter than the program reads "
                    f"({len(ctx)} bytes given: is --ctx long enough?)")
        return ProgramOutcome(program.name, True, error=f"{err}{hint}", errno=err.errno)
    return ProgramOutcome(program.name, True, retval=result.retval, ran=True)


def _not_native_hint(err: KernelError, insns: Sequence["Instruction"]) -> str:
    """Why a forced ``--resolution kernel`` load fails on a kernel without the seed's pass."""
    from sigbpf.kernel.probe import RESERVED_FIELDS
    from sigbpf.resolve.resolver import is_prog_btf_kfunc_call

    if RESERVED_FIELDS not in (err.log or "") or not any(map(is_prog_btf_kfunc_call, insns)):
        return ""
    return (f": this kernel does not resolve src_reg 3 (PROG_BTF) kfunc calls itself "
            f"(the verifier answers '{RESERVED_FIELDS}', as the probe does); "
            f"load with --resolution userspace (or auto)")


def signed_insns_note(name: str, signed: bytes, loaded: bytes, rewritten_by: str) -> str | None:
    """What to report when a program's signature goes to ``BPF_PROG_LOAD`` (docs/FORMAT.md 5.5).

    The signature is passed whenever the caller asks (``load --keyring``); it covers the
    instructions as *signed*.  None when the kernel gets exactly those bytes; otherwise
    the note saying that the instructions as loaded differ (how many slots, rewritten by
    what), so a kernel that checks signatures over the loaded instructions refuses it.
    """
    if signed == loaded:
        return None
    changed = sum(signed[i:i + 8] != loaded[i:i + 8]
                  for i in range(0, max(len(signed), len(loaded)), 8))
    return (f"program {name!r}: the instructions as loaded differ from the signed ones "
            f"({changed} slots rewritten by {rewritten_by}); a kernel that checks signatures "
            f"over the loaded instructions refuses it")


def _refusal(err: KernelError, signature: bytes | None, keyring_id: int | None = None) -> str:
    """The one-line account of a refused program (signature refusals spelled out).

    With a signature, 6.18's ``BPF_PROG_LOAD`` looks the key up (``keyring_id``)
    before anything else and answers EINVAL, with no verifier log, when there is
    no such key or keyring (measured here: ``--keyring 3``, ``process``, a
    serial that does not exist); only then does it check the signature, which
    answers EOPNOTSUPP on a kernel without ``CONFIG_SYSTEM_DATA_VERIFICATION``.
    """
    if signature is not None and err.errno in (errno_mod.EOPNOTSUPP, 524):
        return (f"{err.message} (EOPNOTSUPP): this kernel cannot check BPF program signatures "
                f"(BPF_PROG_LOAD with a signature answers EOPNOTSUPP; it lacks "
                f"CONFIG_SYSTEM_DATA_VERIFICATION); the signature was verified in userspace only")
    if signature is not None and err.errno == errno_mod.EINVAL and not (err.log or "").strip():
        return (f"{err}: the kernel found no key or keyring with keyring_id {keyring_id} "
                f"(BPF_PROG_LOAD looks the key up before it checks the signature, and answers "
                f"EINVAL when there is none); the signature was verified in userspace only")
    if signature is not None and err.errno in _SIGNATURE_REFUSALS:
        # A kernel that checks signatures (not this one: it answers EOPNOTSUPP) refuses with
        # the PKCS#7 layer's errno; from the kernel's source, not measured here.
        return (f"{err}: the kernel refused the program's signature "
                f"({_SIGNATURE_REFUSALS[err.errno]}, checked over the instructions as loaded "
                f"against keyring_id {keyring_id}); userspace had verified it over the "
                f"instructions as signed")
    return str(err)


#: What verify_pkcs7_signature() answers when it refuses a signature (crypto/asymmetric_keys).
_SIGNATURE_REFUSALS = {
    errno_mod.EKEYREJECTED: "the signature does not match",
    errno_mod.ENOKEY: "no key in that keyring matches the signer",
    errno_mod.EBADMSG: "the kernel cannot parse the signature",
    errno_mod.EKEYEXPIRED: "the key has expired",
    errno_mod.ENOPKG: "the kernel lacks the signature's algorithm",
}


__all__ = ["Resolution", "ProgramOutcome", "LoadReport", "LoadedArtifact", "LoadedProgram",
           "load_artifact",
           "signed_insns_note"]
