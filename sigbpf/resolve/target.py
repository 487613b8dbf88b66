"""A kernel to resolve against: its vmlinux BTF, module BTFs and what is known of its kfuncs.

``sigbpf resolve`` has one target (default: the running kernel's
``/sys/kernel/btf/vmlinux``); ``sigbpf check`` has one per ``--btf``.  Kernel
BTF is not re-validated (framing and string checks still run, so garbage is
a one-line error): the kernel built and checked it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from sigbpf.resolve.modules import ModuleBTF

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.spec import BTF
    from sigbpf.resolve.kfunc_check import KfuncSet


@dataclass(frozen=True, slots=True)
class KernelTarget:
    """One kernel: a label for reports, its BTF, its modules, its kfunc set."""

    label: str
    vmlinux: "BTF"
    modules: tuple[ModuleBTF, ...]
    kfunc_set: "KfuncSet | None"  # None when the kfunc check is off

    @classmethod
    def load(cls, btf_path: str, module_paths: Sequence[str] = (),
             btf_ids_paths: Sequence[str] = (), *, kfunc_set: bool = True) -> "KernelTarget":
        """Read vmlinux BTF from *btf_path* (raw BTF or an ELF with ``.BTF``), then the rest.

        With ``kfunc_set=False`` the kfunc list is not worked out (``--no-kfunc-check``).
        """
        from sigbpf.btf.spec import BTF

        vmlinux = BTF.from_file(btf_path, validate=False)
        modules = tuple(ModuleBTF.from_file(p, vmlinux) for p in module_paths)
        kfuncs = None
        if kfunc_set:
            from sigbpf.resolve.kfunc_check import KfuncSet

            kfuncs = KfuncSet.for_kernel(vmlinux, btf_ids_paths)
        return cls(btf_path, vmlinux, modules, kfuncs)
