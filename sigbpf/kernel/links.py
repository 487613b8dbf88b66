"""BPF links: ``BPF_LINK_CREATE``, ``BPF_RAW_TRACEPOINT_OPEN``, ``BPF_LINK_DETACH``, link info.

A link is the kernel object that keeps a program attached: while a link fd
is open, or the link is pinned on bpffs, the program stays attached; when
the last reference goes, it is detached.  ``BPF_LINK_DETACH`` detaches a
link at once even though references remain (the link then stays as a
"defunct" object until those go).  Not every link type supports it:
tracing, raw tracepoint, perf-event and kprobe-multi links answer
``EOPNOTSUPP`` (they detach when released), XDP, tcx, netkit, cgroup,
netns, sockmap and struct_ops links detach.

:func:`link_create` takes the per-attach-type union of ``link_create`` as
keyword arguments named like :data:`sigbpf.kernel.attr.LINK_CREATE`'s fields
(``{"kprobe_multi.syms": address}``).
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
from dataclasses import dataclass
from enum import IntEnum
from typing import Mapping

from sigbpf.errors import KernelError
from sigbpf.kernel import attr as A
from sigbpf.kernel.syscall import Cmd, Fd, bpf

__all__ = ["LinkType", "LinkInfo", "link_create", "raw_tracepoint_open", "link_detach",
           "link_info", "link_get_fd_by_id", "DETACH_UNSUPPORTED"]


class LinkType(IntEnum):
    """``enum bpf_link_type`` (include/uapi/linux/bpf.h)."""

    UNSPEC = 0
    RAW_TRACEPOINT = 1
    TRACING = 2
    CGROUP = 3
    ITER = 4
    NETNS = 5
    XDP = 6
    PERF_EVENT = 7
    KPROBE_MULTI = 8
    STRUCT_OPS = 9
    NETFILTER = 10
    TCX = 11
    UPROBE_MULTI = 12
    NETKIT = 13
    SOCKMAP = 14


#: What ``BPF_LINK_DETACH`` answers for a link type without a ``detach`` operation.
DETACH_UNSUPPORTED = frozenset({errno_mod.EOPNOTSUPP, 524})


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """The head of ``struct bpf_link_info``: the link's type, id and program id."""

    type: int
    id: int
    prog_id: int

    @property
    def type_name(self) -> str:
        try:
            return LinkType(self.type).name.lower()
        except ValueError:
            return f"type {self.type}"


def link_create(prog_fd: Fd | int, target_fd: int, attach_type: int, *, flags: int = 0,
                extra: Mapping[str, int] | None = None, what: str = "") -> Fd:
    """``BPF_LINK_CREATE``: a link fd attaching *prog_fd* to *target_fd* (an fd or ifindex).

    *extra* sets fields of the per-attach-type union by their layout names
    (``{"kprobe_multi.addrs": address, "kprobe_multi.cnt": n}``); pointer fields take
    addresses, which the caller keeps alive.
    """
    fields = {"prog_fd": int(prog_fd), "target_fd": target_fd, "attach_type": attach_type,
              "flags": flags, **(extra or {})}
    buf = A.LINK_CREATE.pack(**fields)
    return Fd(bpf(Cmd.LINK_CREATE, buf, what=what or "BPF_LINK_CREATE"), "link")


def raw_tracepoint_open(prog_fd: Fd | int, name: str | None, *, cookie: int = 0,
                        what: str = "") -> Fd:
    """``BPF_RAW_TRACEPOINT_OPEN``: a raw tracepoint link (*name* None: a BTF-typed program's
    own target, the fallback libbpf uses for tracing and LSM programs on old kernels)."""
    keep = A.Buffers()
    buf = A.RAW_TRACEPOINT_OPEN.pack(name=keep.cstr(name) if name is not None else 0,
                                     prog_fd=int(prog_fd), cookie=cookie)
    return Fd(bpf(Cmd.RAW_TRACEPOINT_OPEN, buf, what=what or "BPF_RAW_TRACEPOINT_OPEN"), "link")


def link_detach(link_fd: Fd | int, *, what: str = "") -> bool:
    """``BPF_LINK_DETACH``: True when detached, False when the link type cannot be detached
    this way (it detaches when its last reference goes); other errors raise."""
    buf = A.LINK_DETACH.pack(link_fd=int(link_fd))
    try:
        bpf(Cmd.LINK_DETACH, buf, what=what or "BPF_LINK_DETACH")
    except KernelError as err:
        if err.errno in DETACH_UNSUPPORTED:
            return False
        raise
    return True


def link_info(link_fd: Fd | int) -> LinkInfo:
    """``BPF_OBJ_GET_INFO_BY_FD`` on a link: its type, id and program id."""
    info = ctypes.create_string_buffer(A.LINK_INFO_HEAD.size)
    buf = A.OBJ_INFO.pack(bpf_fd=int(link_fd), info_len=A.LINK_INFO_HEAD.size,
                          info=ctypes.addressof(info))
    bpf(Cmd.OBJ_GET_INFO_BY_FD, buf, what="reading link info (BPF_OBJ_GET_INFO_BY_FD)")
    head = A.LINK_INFO_HEAD.unpack(info)
    return LinkInfo(head["type"], head["id"], head["prog_id"])


def link_get_fd_by_id(link_id: int) -> Fd:
    """``BPF_LINK_GET_FD_BY_ID``: a new fd for the link with that id."""
    buf = A.GET_ID.pack(link_id=link_id)
    return Fd(bpf(Cmd.LINK_GET_FD_BY_ID, buf, what=f"opening link {link_id} (BPF_LINK_GET_FD_BY_ID)"),
              "link")
