"""The ``bpf()`` system call through ctypes, its command numbers, and :class:`Fd`.

``bpf(cmd, attr)`` passes a ``union bpf_attr`` buffer (see :mod:`.attr`) to the
kernel and returns the non-negative result, or raises
:class:`~sigbpf.errors.KernelError` carrying the errno.  File descriptors the
kernel hands back are wrapped in :class:`Fd` so that they are closed
deterministically (``with`` or :meth:`Fd.close`), never left to the garbage
collector.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
from enum import IntEnum
from typing import Any

from sigbpf.errors import KernelError

# __NR_bpf per architecture (asm/unistd_64.h and friends).
_NR_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}


class Cmd(IntEnum):
    """``enum bpf_cmd`` (include/uapi/linux/bpf.h): the commands sigbpf uses and their neighbours."""

    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_PIN = 6
    OBJ_GET = 7
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_RUN = 10
    PROG_GET_NEXT_ID = 11
    MAP_GET_NEXT_ID = 12
    PROG_GET_FD_BY_ID = 13
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    PROG_QUERY = 16
    RAW_TRACEPOINT_OPEN = 17
    BTF_LOAD = 18
    BTF_GET_FD_BY_ID = 19
    TASK_FD_QUERY = 20
    MAP_LOOKUP_AND_DELETE_ELEM = 21
    MAP_FREEZE = 22
    BTF_GET_NEXT_ID = 23
    MAP_LOOKUP_BATCH = 24
    MAP_LOOKUP_AND_DELETE_BATCH = 25
    MAP_UPDATE_BATCH = 26
    MAP_DELETE_BATCH = 27
    LINK_CREATE = 28
    LINK_UPDATE = 29
    LINK_GET_FD_BY_ID = 30
    LINK_GET_NEXT_ID = 31
    ENABLE_STATS = 32
    ITER_CREATE = 33
    LINK_DETACH = 34
    PROG_BIND_MAP = 35
    TOKEN_CREATE = 36
    PROG_STREAM_READ_BY_FD = 37


_libc: Any = None


def _syscall() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc.syscall


def syscall_number() -> int:
    """``__NR_bpf`` for this machine's architecture."""
    machine = os.uname().machine  # platform.machine()'s answer, without importing platform (~1.5 ms)
    try:
        return _NR_BPF[machine]
    except KeyError:
        raise KernelError(f"bpf() syscall number unknown for architecture {machine}") from None


def raw_syscall(number: int, *args: Any) -> tuple[int, int]:
    """Call syscall *number*; return ``(result, errno)`` without raising."""
    fn = _syscall()
    ctypes.set_errno(0)
    result = fn(ctypes.c_long(number), *args)
    return int(result), ctypes.get_errno()


def bpf(cmd: Cmd, attr: ctypes.Array, size: int | None = None, *, what: str | None = None,
        log: str = "") -> int:
    """``syscall(__NR_bpf, cmd, &attr, size)``: the result, or KernelError with errno.

    *what* names the request in the error message (default: the command name).
    """
    size = ctypes.sizeof(attr) if size is None else size
    result, err = raw_syscall(syscall_number(), ctypes.c_int(int(cmd)), attr, ctypes.c_uint(size))
    if result < 0:
        hint = _PERMISSION_HINT if err == errno_mod.EPERM and cmd in _NEEDS_PRIVILEGE else ""
        raise KernelError(f"{what or 'BPF_' + Cmd(cmd).name}: {strerror(err)}{hint}", errno=err, log=log)
    return result


#: Commands whose EPERM means "this process may not use bpf() like that".
_NEEDS_PRIVILEGE = frozenset({Cmd.MAP_CREATE, Cmd.PROG_LOAD, Cmd.BTF_LOAD})
_PERMISSION_HINT = (" (EPERM): no permission to use bpf() for this; run as root or with "
                    "CAP_BPF and CAP_SYS_ADMIN")


#: errno values internal to the kernel that still reach user space from bpf().
_KERNEL_ERRNOS = {524: "Operation not supported (ENOTSUPP)"}


def strerror(err: int) -> str:
    """os.strerror, plus the kernel-internal values (524 ENOTSUPP) that bpf() can return."""
    return _KERNEL_ERRNOS.get(err) or os.strerror(err)


class Fd:
    """A file descriptor owned by this process (a map, program, BTF or link).

    ``close()`` is idempotent; ``with Fd(...) as fd:`` closes on exit.  A
    forgotten Fd is closed when collected, but code in sigbpf always closes
    explicitly.
    """

    __slots__ = ("_fd", "kind")

    def __init__(self, fd: int, kind: str = "fd") -> None:
        if fd < 0:
            raise ValueError(f"invalid fd {fd}")
        self._fd: int | None = fd
        self.kind = kind

    def fileno(self) -> int:
        if self._fd is None:
            raise KernelError(f"{self.kind} fd used after close")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd is None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __int__(self) -> int:
        return self.fileno()

    def __enter__(self) -> "Fd":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def __repr__(self) -> str:
        return f"Fd({self._fd}, {self.kind!r})" if self._fd is not None else f"Fd(closed, {self.kind!r})"
