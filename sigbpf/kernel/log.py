"""The kernel's log-buffer protocol, shared by BPF_PROG_LOAD and BPF_BTF_LOAD.

Policy (the same as libbpf's): a request is first made with no log at all
(``log_level = 0`` needs a NULL buffer), which is fast and never fails for
lack of log space.  Only if the kernel refuses it is the request repeated
with ``log_level = 1`` and a buffer, so that the error carries the verifier's
(or BTF checker's) full explanation.  If the log does not fit (ENOSPC, with
``log_true_size`` saying how much is needed, 6.4+), the buffer grows and the
request is repeated once more, up to :data:`MAX_LOG_SIZE`.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
from typing import Callable

from sigbpf.errors import KernelError

#: First log buffer size (64 KiB: a refusal's log rarely needs more, and the kernel's
#: ENOSPC + ``log_true_size`` grow it when it does; a 1 MiB buffer cost a refusal ~1.5 ms
#: here and ~10 ms under qemu) and the largest sigbpf will try (64 MiB).
FIRST_LOG_SIZE = 64 << 10
MAX_LOG_SIZE = 64 << 20

#: ``log_level`` values: 1 = verifier errors and the path to them, 2 = every state.
LOG_LEVEL_BASIC = 1


def decode_log(buf: ctypes.Array) -> str:
    """The NUL-terminated text the kernel wrote into *buf*."""
    size = ctypes.sizeof(buf)
    if size and buf[size - 1] == b"\0":  # terminated: read up to the first NUL, not the buffer
        raw = ctypes.string_at(ctypes.addressof(buf))
    else:
        raw = bytes(buf).split(b"\0", 1)[0]
    return raw.decode("utf-8", "replace")


def with_log_retry(attempt: Callable[[ctypes.Array | None, int], int]) -> int:
    """Run ``attempt(log_buf, log_level)`` without a log, then with one on failure.

    *attempt* performs the request and returns its result, or raises
    KernelError; it returns the ``log_true_size`` the kernel reported through
    :attr:`KernelError.log_true_size` when available.  The KernelError that
    finally escapes carries the log text.
    """
    try:
        return attempt(None, 0)
    except KernelError:
        pass
    size = FIRST_LOG_SIZE
    while True:
        buf = ctypes.create_string_buffer(size)
        try:
            return attempt(buf, LOG_LEVEL_BASIC)
        except KernelError as err:
            needed = int(getattr(err, "log_true_size", 0) or 0)
            if err.errno == errno_mod.ENOSPC and size < MAX_LOG_SIZE and needed > size:
                size = min(MAX_LOG_SIZE, max(needed + 1, size * 2))
                continue
            err.log = decode_log(buf)
            raise
