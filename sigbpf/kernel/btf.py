"""The running kernel's BTF: ``BPF_BTF_LOAD`` (raw BTF in, BTF fd out) and its module BTFs."""

from __future__ import annotations

import ctypes
import os
from typing import TYPE_CHECKING

from sigbpf.errors import KernelError
from sigbpf.kernel import attr as A
from sigbpf.kernel.log import with_log_retry
from sigbpf.kernel.syscall import Cmd, Fd, bpf

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf import BTF
    from sigbpf.resolve.modules import ModuleBTF

#: Where the running kernel shows its BTF: ``vmlinux`` and one file per module with BTF.
SYSFS_BTF_DIR = "/sys/kernel/btf"


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


def running_module_btfs(vmlinux: "BTF", btf_dir: str = SYSFS_BTF_DIR
                        ) -> tuple[tuple["ModuleBTF", ...], tuple[str, ...]]:
    """The loaded modules' BTF (every file of *btf_dir* but ``vmlinux``), split on *vmlinux*.

    Returns (modules, problems): a module whose BTF cannot be read or parsed is
    left out and named in *problems* (the module check is a report; it must
    not stop a load).  This machine has no module BTF (``/sys/kernel/btf``
    holds only ``vmlinux``), so the answer here is ``((), ())``.
    """
    from sigbpf.errors import SigbpfError
    from sigbpf.resolve.modules import ModuleBTF

    try:
        names = sorted(n for n in os.listdir(btf_dir) if n != "vmlinux")
    except OSError as err:
        return (), (f"{btf_dir}: {err.strerror or err}",)
    modules: list[ModuleBTF] = []
    problems: list[str] = []
    for name in names:
        try:
            modules.append(ModuleBTF.from_file(os.path.join(btf_dir, name), vmlinux))
        except SigbpfError as err:
            problems.append(str(err))
    return tuple(modules), tuple(problems)
