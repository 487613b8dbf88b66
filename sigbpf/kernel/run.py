"""``BPF_PROG_RUN``: run a loaded program once (``BPF_PROG_TYPE_SYSCALL`` and friends)."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from sigbpf.kernel import attr as A
from sigbpf.kernel.syscall import Cmd, Fd, bpf


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one run returned.

    ``retval`` is the kernel's 32-bit return value read as a signed C ``int``
    (a program's ``return -1`` is -1, not 4294967295); ``ctx`` is the context
    after the run (syscall programs may write into it).
    """

    retval: int
    duration_ns: int
    ctx: bytes


def run_program(prog_fd: Fd | int, ctx: bytes = b"", *, repeat: int = 0, name: str = "") -> RunResult:
    """``BPF_PROG_RUN`` with *ctx* as ``ctx_in``; KernelError when the kernel refuses."""
    keep = A.Buffers()
    ctx_buf = keep.out(len(ctx)) if ctx else None
    if ctx_buf is not None:
        ctypes.memmove(ctx_buf, ctx, len(ctx))
    buf = A.PROG_RUN.pack(prog_fd=int(prog_fd), repeat=repeat,
                          ctx_in=ctypes.addressof(ctx_buf) if ctx_buf is not None else 0,
                          ctx_size_in=len(ctx))
    label = f"running program {name!r} (BPF_PROG_RUN)" if name else "running program (BPF_PROG_RUN)"
    bpf(Cmd.PROG_RUN, buf, what=label)
    retval = A.PROG_RUN.get(buf, "retval")
    if retval >= 1 << 31:
        retval -= 1 << 32
    return RunResult(retval=retval, duration_ns=A.PROG_RUN.get(buf, "duration"),
                     ctx=bytes(ctx_buf) if ctx_buf is not None else b"")
