"""Program types, attach types and libbpf's section-name table.

The enums are the kernel's UAPI (``enum bpf_prog_type``, ``enum
bpf_attach_type`` and the ``BPF_F_*`` ``prog_flags`` bits of
``include/uapi/linux/bpf.h``); a test checks them against the running
kernel's BTF.  This module is the one place sigbpf names them: the object
reader, the artifact builder and the kernel loader all import them from here.

:func:`section_def` maps an ELF section name to what libbpf would load it as,
following libbpf's ``section_defs[]`` table and its matching rules
(``sec_def_matches``):

* ``"name"``   matches exactly ``name``;
* ``"name+"``  matches ``name`` or ``name/anything``;
* ``"name/"``  matches ``name/anything`` (the suffix is required);

the first matching row wins.  A leading ``?`` (libbpf's "do not autoload")
is stripped first.  ``SEC_SLEEPABLE`` becomes ``BPF_F_SLEEPABLE``,
``SEC_XDP_FRAGS`` becomes ``BPF_F_XDP_HAS_FRAGS``, ``SEC_ATTACH_BTF`` means
the program needs an ``attach_btf_id`` (the target follows the ``/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

__all__ = ["ProgType", "AttachType", "ProgFlags", "SectionFlags", "SectionDef",
           "SECTION_DEFS", "section_def"]


class ProgType(IntEnum):
    """``enum bpf_prog_type``."""

    UNSPEC = 0
    SOCKET_FILTER = 1
    KPROBE = 2
    SCHED_CLS = 3
    SCHED_ACT = 4
    TRACEPOINT = 5
    XDP = 6
    PERF_EVENT = 7
    CGROUP_SKB = 8
    CGROUP_SOCK = 9
    LWT_IN = 10
    LWT_OUT = 11
    LWT_XMIT = 12
    SOCK_OPS = 13
    SK_SKB = 14
    CGROUP_DEVICE = 15
    SK_MSG = 16
    RAW_TRACEPOINT = 17
    CGROUP_SOCK_ADDR = 18
    LWT_SEG6LOCAL = 19
    LIRC_MODE2 = 20
    SK_REUSEPORT = 21
    FLOW_DISSECTOR = 22
    CGROUP_SYSCTL = 23
    RAW_TRACEPOINT_WRITABLE = 24
    CGROUP_SOCKOPT = 25
    TRACING = 26
    STRUCT_OPS = 27
    EXT = 28
    LSM = 29
    SK_LOOKUP = 30
    SYSCALL = 31
    NETFILTER = 32


class AttachType(IntEnum):
    """``enum bpf_attach_type`` (``expected_attach_type`` of BPF_PROG_LOAD)."""

    CGROUP_INET_INGRESS = 0
    CGROUP_INET_EGRESS = 1
    CGROUP_INET_SOCK_CREATE = 2
    CGROUP_SOCK_OPS = 3
    SK_SKB_STREAM_PARSER = 4
    SK_SKB_STREAM_VERDICT = 5
    CGROUP_DEVICE = 6
    SK_MSG_VERDICT = 7
    CGROUP_INET4_BIND = 8
    CGROUP_INET6_BIND = 9
    CGROUP_INET4_CONNECT = 10
    CGROUP_INET6_CONNECT = 11
    CGROUP_INET4_POST_BIND = 12
    CGROUP_INET6_POST_BIND = 13
    CGROUP_UDP4_SENDMSG = 14
    CGROUP_UDP6_SENDMSG = 15
    LIRC_MODE2 = 16
    FLOW_DISSECTOR = 17
    CGROUP_SYSCTL = 18
    CGROUP_UDP4_RECVMSG = 19
    CGROUP_UDP6_RECVMSG = 20
    CGROUP_GETSOCKOPT = 21
    CGROUP_SETSOCKOPT = 22
    TRACE_RAW_TP = 23
    TRACE_FENTRY = 24
    TRACE_FEXIT = 25
    MODIFY_RETURN = 26
    LSM_MAC = 27
    TRACE_ITER = 28
    CGROUP_INET4_GETPEERNAME = 29
    CGROUP_INET6_GETPEERNAME = 30
    CGROUP_INET4_GETSOCKNAME = 31
    CGROUP_INET6_GETSOCKNAME = 32
    XDP_DEVMAP = 33
    CGROUP_INET_SOCK_RELEASE = 34
    XDP_CPUMAP = 35
    SK_LOOKUP = 36
    XDP = 37
    SK_SKB_VERDICT = 38
    SK_REUSEPORT_SELECT = 39
    SK_REUSEPORT_SELECT_OR_MIGRATE = 40
    PERF_EVENT = 41
    TRACE_KPROBE_MULTI = 42
    LSM_CGROUP = 43
    STRUCT_OPS = 44
    NETFILTER = 45
    TCX_INGRESS = 46
    TCX_EGRESS = 47
    TRACE_UPROBE_MULTI = 48
    CGROUP_UNIX_CONNECT = 49
    CGROUP_UNIX_SENDMSG = 50
    CGROUP_UNIX_RECVMSG = 51
    CGROUP_UNIX_GETPEERNAME = 52
    CGROUP_UNIX_GETSOCKNAME = 53
    NETKIT_PRIMARY = 54
    NETKIT_PEER = 55
    TRACE_KPROBE_SESSION = 56
    TRACE_UPROBE_SESSION = 57


class ProgFlags(IntFlag):
    """``prog_flags`` bits of BPF_PROG_LOAD (``BPF_F_*``)."""

    NONE = 0
    STRICT_ALIGNMENT = 1
    ANY_ALIGNMENT = 2
    TEST_RND_HI32 = 4
    TEST_STATE_FREQ = 8
    SLEEPABLE = 16
    XDP_HAS_FRAGS = 32
    XDP_DEV_BOUND_ONLY = 64
    TEST_REG_INVARIANTS = 128
    TOKEN_FD = 0x10000


class SectionFlags(IntFlag):
    """libbpf's ``enum sec_def_flags`` (what a section-table row asks for)."""

    NONE = 0
    EXP_ATTACH_OPT = 1  # expected_attach_type may be dropped on old kernels
    ATTACHABLE = 2
    ATTACHABLE_OPT = ATTACHABLE | EXP_ATTACH_OPT
    ATTACH_BTF = 4  # needs attach_btf_id: target after the '/'
    SLEEPABLE = 8
    XDP_FRAGS = 16
    USDT = 32


@dataclass(frozen=True, slots=True)
class SectionDef:
    """One row of libbpf's section table, e.g. ``SEC_DEF("syscall", SYSCALL, 0, SEC_SLEEPABLE)``."""

    pattern: str
    prog_type: ProgType
    attach_type: AttachType | None
    flags: SectionFlags

    def matches(self, section: str) -> bool:
        """libbpf's ``sec_def_matches``."""
        pat = self.pattern
        if pat.endswith("/"):
            return section.startswith(pat)
        if pat.endswith("+"):
            stem = pat[:-1]
            return section == stem or section.startswith(stem + "/")
        return section == pat

    @property
    def prog_flags(self) -> ProgFlags:
        """``prog_flags`` libbpf passes for this row (``libbpf_prepare_prog_load``)."""
        flags = ProgFlags.NONE
        if self.flags & SectionFlags.SLEEPABLE:
            flags |= ProgFlags.SLEEPABLE
        if self.prog_type is ProgType.XDP and self.flags & SectionFlags.XDP_FRAGS:
            flags |= ProgFlags.XDP_HAS_FRAGS
        return flags

    @property
    def needs_attach_btf(self) -> bool:
        return bool(self.flags & SectionFlags.ATTACH_BTF)


def _row(pattern: str, prog: str, attach: str | None, *flags: str) -> SectionDef:
    f = SectionFlags.NONE
    for name in flags:
        f |= SectionFlags[name]
    return SectionDef(pattern, ProgType[prog], AttachType[attach] if attach else None, f)


_T = "TRACING"
_KP = "KPROBE"
_CSA = "CGROUP_SOCK_ADDR"

#: libbpf's ``section_defs[]`` in its order (rows for attach types newer than
#: the 6.18 UAPI, such as fsession and fentry.multi, are left out).
SECTION_DEFS: tuple[SectionDef, ...] = (
    _row("socket", "SOCKET_FILTER", None),
    _row("sk_reuseport/migrate", "SK_REUSEPORT", "SK_REUSEPORT_SELECT_OR_MIGRATE", "ATTACHABLE"),
    _row("sk_reuseport", "SK_REUSEPORT", "SK_REUSEPORT_SELECT", "ATTACHABLE"),
    _row("kprobe+", _KP, None),
    _row("uprobe+", _KP, None),
    _row("uprobe.s+", _KP, None, "SLEEPABLE"),
    _row("kretprobe+", _KP, None),
    _row("uretprobe+", _KP, None),
    _row("uretprobe.s+", _KP, None, "SLEEPABLE"),
    _row("kprobe.multi+", _KP, "TRACE_KPROBE_MULTI"),
    _row("kretprobe.multi+", _KP, "TRACE_KPROBE_MULTI"),
    _row("kprobe.session+", _KP, "TRACE_KPROBE_SESSION"),
    _row("uprobe.multi+", _KP, "TRACE_UPROBE_MULTI"),
    _row("uretprobe.multi+", _KP, "TRACE_UPROBE_MULTI"),
    _row("uprobe.session+", _KP, "TRACE_UPROBE_SESSION"),
    _row("uprobe.multi.s+", _KP, "TRACE_UPROBE_MULTI", "SLEEPABLE"),
    _row("uretprobe.multi.s+", _KP, "TRACE_UPROBE_MULTI", "SLEEPABLE"),
    _row("uprobe.session.s+", _KP, "TRACE_UPROBE_SESSION", "SLEEPABLE"),
    _row("ksyscall+", _KP, None),
    _row("kretsyscall+", _KP, None),
    _row("usdt+", _KP, None, "USDT"),
    _row("usdt.s+", _KP, None, "USDT", "SLEEPABLE"),
    _row("tc/ingress", "SCHED_CLS", "TCX_INGRESS"),
    _row("tc/egress", "SCHED_CLS", "TCX_EGRESS"),
    _row("tcx/ingress", "SCHED_CLS", "TCX_INGRESS"),
    _row("tcx/egress", "SCHED_CLS", "TCX_EGRESS"),
    _row("tc", "SCHED_CLS", None),
    _row("classifier", "SCHED_CLS", None),
    _row("action", "SCHED_ACT", None),
    _row("netkit/primary", "SCHED_CLS", "NETKIT_PRIMARY"),
    _row("netkit/peer", "SCHED_CLS", "NETKIT_PEER"),
    _row("tracepoint+", "TRACEPOINT", None),
    _row("tp+", "TRACEPOINT", None),
    _row("tracepoint.s+", "TRACEPOINT", None, "SLEEPABLE"),
    _row("tp.s+", "TRACEPOINT", None, "SLEEPABLE"),
    _row("raw_tracepoint+", "RAW_TRACEPOINT", None),
    _row("raw_tp+", "RAW_TRACEPOINT", None),
    _row("raw_tracepoint.s+", "RAW_TRACEPOINT", None, "SLEEPABLE"),
    _row("raw_tp.s+", "RAW_TRACEPOINT", None, "SLEEPABLE"),
    _row("raw_tracepoint.w+", "RAW_TRACEPOINT_WRITABLE", None),
    _row("raw_tp.w+", "RAW_TRACEPOINT_WRITABLE", None),
    _row("tp_btf+", _T, "TRACE_RAW_TP", "ATTACH_BTF"),
    _row("tp_btf.s+", _T, "TRACE_RAW_TP", "ATTACH_BTF", "SLEEPABLE"),
    _row("fentry+", _T, "TRACE_FENTRY", "ATTACH_BTF"),
    _row("fmod_ret+", _T, "MODIFY_RETURN", "ATTACH_BTF"),
    _row("fexit+", _T, "TRACE_FEXIT", "ATTACH_BTF"),
    _row("fentry.s+", _T, "TRACE_FENTRY", "ATTACH_BTF", "SLEEPABLE"),
    _row("fmod_ret.s+", _T, "MODIFY_RETURN", "ATTACH_BTF", "SLEEPABLE"),
    _row("fexit.s+", _T, "TRACE_FEXIT", "ATTACH_BTF", "SLEEPABLE"),
    _row("freplace+", "EXT", None, "ATTACH_BTF"),
    _row("lsm+", "LSM", "LSM_MAC", "ATTACH_BTF"),
    _row("lsm.s+", "LSM", "LSM_MAC", "ATTACH_BTF", "SLEEPABLE"),
    _row("lsm_cgroup+", "LSM", "LSM_CGROUP", "ATTACH_BTF"),
    _row("iter+", _T, "TRACE_ITER", "ATTACH_BTF"),
    _row("iter.s+", _T, "TRACE_ITER", "ATTACH_BTF", "SLEEPABLE"),
    _row("syscall", "SYSCALL", None, "SLEEPABLE"),
    _row("xdp.frags/devmap", "XDP", "XDP_DEVMAP", "XDP_FRAGS"),
    _row("xdp/devmap", "XDP", "XDP_DEVMAP", "ATTACHABLE"),
    _row("xdp.frags/cpumap", "XDP", "XDP_CPUMAP", "XDP_FRAGS"),
    _row("xdp/cpumap", "XDP", "XDP_CPUMAP", "ATTACHABLE"),
    _row("xdp.frags", "XDP", "XDP", "XDP_FRAGS"),
    _row("xdp", "XDP", "XDP", "ATTACHABLE_OPT"),
    _row("perf_event", "PERF_EVENT", None),
    _row("lwt_in", "LWT_IN", None),
    _row("lwt_out", "LWT_OUT", None),
    _row("lwt_xmit", "LWT_XMIT", None),
    _row("lwt_seg6local", "LWT_SEG6LOCAL", None),
    _row("sockops", "SOCK_OPS", "CGROUP_SOCK_OPS", "ATTACHABLE_OPT"),
    _row("sk_skb/stream_parser", "SK_SKB", "SK_SKB_STREAM_PARSER", "ATTACHABLE_OPT"),
    _row("sk_skb/stream_verdict", "SK_SKB", "SK_SKB_STREAM_VERDICT", "ATTACHABLE_OPT"),
    _row("sk_skb/verdict", "SK_SKB", "SK_SKB_VERDICT", "ATTACHABLE_OPT"),
    _row("sk_skb", "SK_SKB", None),
    _row("sk_msg", "SK_MSG", "SK_MSG_VERDICT", "ATTACHABLE_OPT"),
    _row("lirc_mode2", "LIRC_MODE2", "LIRC_MODE2", "ATTACHABLE_OPT"),
    _row("flow_dissector", "FLOW_DISSECTOR", "FLOW_DISSECTOR", "ATTACHABLE_OPT"),
    _row("cgroup_skb/ingress", "CGROUP_SKB", "CGROUP_INET_INGRESS", "ATTACHABLE_OPT"),
    _row("cgroup_skb/egress", "CGROUP_SKB", "CGROUP_INET_EGRESS", "ATTACHABLE_OPT"),
    _row("cgroup/skb", "CGROUP_SKB", None),
    _row("cgroup/sock_create", "CGROUP_SOCK", "CGROUP_INET_SOCK_CREATE", "ATTACHABLE"),
    _row("cgroup/sock_release", "CGROUP_SOCK", "CGROUP_INET_SOCK_RELEASE", "ATTACHABLE"),
    _row("cgroup/sock", "CGROUP_SOCK", "CGROUP_INET_SOCK_CREATE", "ATTACHABLE_OPT"),
    _row("cgroup/post_bind4", "CGROUP_SOCK", "CGROUP_INET4_POST_BIND", "ATTACHABLE"),
    _row("cgroup/post_bind6", "CGROUP_SOCK", "CGROUP_INET6_POST_BIND", "ATTACHABLE"),
    _row("cgroup/bind4", _CSA, "CGROUP_INET4_BIND", "ATTACHABLE"),
    _row("cgroup/bind6", _CSA, "CGROUP_INET6_BIND", "ATTACHABLE"),
    _row("cgroup/connect4", _CSA, "CGROUP_INET4_CONNECT", "ATTACHABLE"),
    _row("cgroup/connect6", _CSA, "CGROUP_INET6_CONNECT", "ATTACHABLE"),
    _row("cgroup/connect_unix", _CSA, "CGROUP_UNIX_CONNECT", "ATTACHABLE"),
    _row("cgroup/sendmsg4", _CSA, "CGROUP_UDP4_SENDMSG", "ATTACHABLE"),
    _row("cgroup/sendmsg6", _CSA, "CGROUP_UDP6_SENDMSG", "ATTACHABLE"),
    _row("cgroup/sendmsg_unix", _CSA, "CGROUP_UNIX_SENDMSG", "ATTACHABLE"),
    _row("cgroup/recvmsg4", _CSA, "CGROUP_UDP4_RECVMSG", "ATTACHABLE"),
    _row("cgroup/recvmsg6", _CSA, "CGROUP_UDP6_RECVMSG", "ATTACHABLE"),
    _row("cgroup/recvmsg_unix", _CSA, "CGROUP_UNIX_RECVMSG", "ATTACHABLE"),
    _row("cgroup/getpeername4", _CSA, "CGROUP_INET4_GETPEERNAME", "ATTACHABLE"),
    _row("cgroup/getpeername6", _CSA, "CGROUP_INET6_GETPEERNAME", "ATTACHABLE"),
    _row("cgroup/getpeername_unix", _CSA, "CGROUP_UNIX_GETPEERNAME", "ATTACHABLE"),
    _row("cgroup/getsockname4", _CSA, "CGROUP_INET4_GETSOCKNAME", "ATTACHABLE"),
    _row("cgroup/getsockname6", _CSA, "CGROUP_INET6_GETSOCKNAME", "ATTACHABLE"),
    _row("cgroup/getsockname_unix", _CSA, "CGROUP_UNIX_GETSOCKNAME", "ATTACHABLE"),
    _row("cgroup/sysctl", "CGROUP_SYSCTL", "CGROUP_SYSCTL", "ATTACHABLE"),
    _row("cgroup/getsockopt", "CGROUP_SOCKOPT", "CGROUP_GETSOCKOPT", "ATTACHABLE"),
    _row("cgroup/setsockopt", "CGROUP_SOCKOPT", "CGROUP_SETSOCKOPT", "ATTACHABLE"),
    _row("cgroup/dev", "CGROUP_DEVICE", "CGROUP_DEVICE", "ATTACHABLE_OPT"),
    _row("struct_ops+", "STRUCT_OPS", None),
    _row("struct_ops.s+", "STRUCT_OPS", None, "SLEEPABLE"),
    _row("sk_lookup", "SK_LOOKUP", "SK_LOOKUP", "ATTACHABLE"),
    _row("netfilter", "NETFILTER", "NETFILTER"),
)


def section_def(section: str) -> SectionDef | None:
    """The first row of :data:`SECTION_DEFS` that matches *section*, or None.

    A leading ``?`` (libbpf: "don't autoload") is ignored, as libbpf does.
    """
    name = section[1:] if section.startswith("?") else section
    for row in SECTION_DEFS:
        if row.matches(name):
            return row
    return None
