"""``BPF_BTF_LOAD``: hand raw BTF bytes to the kernel, get a BTF fd back."""

from __future__ import annotations

import ctypes

from sigbpf.errors import KernelError
from sigbpf.kernel import attr as A
from sigbpf.kernel.log import with_log_retry
from sigbpf.kernel.syscall import Cmd, Fd, bpf


def load_btf(data: bytes, *, what: str = "BTF") -> Fd:
    """Load raw BTF (header, types, strings) into the kernel.

    On refusal the KernelError carries the kernel's BTF log (e.g.
    ``[3] FUNC foo type_id=2 Invalid type_id``).
    """
    keep = A.Buffers()
    data_ptr = keep.ptr(bytes(data))

    def attempt(log: ctypes.Array | None, level: int) -> int:
        buf = A.BTF_LOAD.pack(btf=data_ptr, btf_size=len(data), btf_log_level=level,
                              btf_log_buf=ctypes.addressof(log) if log is not None else 0,
                              btf_log_size=ctypes.sizeof(log) if log is not None else 0)
        try:
            return bpf(Cmd.BTF_LOAD, buf, what=f"loading {what} (BPF_BTF_LOAD)")
        except KernelError as err:
            err.log_true_size = A.BTF_LOAD.get(buf, "btf_log_true_size")  # type: ignore[attr-defined]
            raise

    return Fd(with_log_retry(attempt), "btf")
