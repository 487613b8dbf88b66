"""The BPF filesystem: pin a map or program (``BPF_OBJ_PIN``) and open a pinned one (``BPF_OBJ_GET``)."""

from __future__ import annotations

from sigbpf.kernel import attr as A
from sigbpf.kernel.syscall import Cmd, Fd, bpf

#: Where bpffs is mounted on systemd machines (``mount -t bpf bpf /sys/fs/bpf``).
BPFFS = "/sys/fs/bpf"


def obj_pin(fd: Fd | int, path: str) -> None:
    """``BPF_OBJ_PIN``: make *fd*'s object outlive this process at *path* (on bpffs)."""
    keep = A.Buffers()
    buf = A.OBJ_PIN.pack(pathname=keep.cstr(path), bpf_fd=int(fd))
    bpf(Cmd.OBJ_PIN, buf, what=f"pinning at {path} (BPF_OBJ_PIN)")


def obj_get(path: str, kind: str = "pinned") -> Fd:
    """``BPF_OBJ_GET``: a new fd for the object pinned at *path*."""
    keep = A.Buffers()
    buf = A.OBJ_PIN.pack(pathname=keep.cstr(path))
    return Fd(bpf(Cmd.OBJ_GET, buf, what=f"opening pinned {path} (BPF_OBJ_GET)"), kind)
