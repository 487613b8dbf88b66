"""The running kernel's BTF objects, and attach targets bound against them by name.

A portable artifact names what a program attaches to (``AttachTarget``: a
BTF name with libbpf's prefix and a BTF kind); :func:`bind_attach_target`
finds it the way libbpf's ``find_kernel_btf_id`` does:

1. unless the target names a module (``module:function``), vmlinux first;
2. then every module's split BTF (``/sys/kernel/btf/<module>``), in the
   kernel's BTF id order, restricted to the named module if there is one;
3. nothing found: ``ESRCH``, libbpf's "failed to find kernel BTF type ID".

``BPF_PROG_LOAD`` takes a module's type id together with that module's BTF
object fd (``attach_btf_obj_fd``); vmlinux's needs none.  :class:`KernelBTFs`
opens those fds on demand (``BPF_BTF_GET_NEXT_ID`` / ``BPF_BTF_GET_FD_BY_ID`` /
``BPF_OBJ_GET_INFO_BY_FD`` for the name, as libbpf's ``load_module_btfs``) and
keeps them until :meth:`KernelBTFs.close`.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sigbpf.errors import KernelError, NotFoundError
from sigbpf.kernel import attr as A
from sigbpf.kernel.syscall import Cmd, Fd, bpf

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import AttachTarget
    from sigbpf.btf import BTF
    from sigbpf.resolve.modules import ModuleBTF

__all__ = ["BoundTarget", "KernelBTFs", "bind_attach_target", "find_in_btf"]

#: ``BPF_*_GET_NEXT_ID`` / ``BPF_*_GET_FD_BY_ID`` (the ``attr`` member with start_id / btf_id).
_GET_ID = A.Layout("get_id", 16, {"start_id": A._u32(0), "next_id": A._u32(4),
                                  "open_flags": A._u32(8), "token_fd": A._s32(12)})
#: struct bpf_btf_info.
_BTF_INFO = A.Layout("bpf_btf_info", 32, {"btf": A._u64(0), "btf_size": A._u32(8),
                                          "id": A._u32(12), "name": A._u64(16),
                                          "name_len": A._u32(24), "kernel_btf": A._u32(28)})
_BTF_GET_NEXT_ID = 23


@dataclass(frozen=True, slots=True)
class BoundTarget:
    """An attach target in the running kernel: ``btf_id`` in ``module``'s BTF (None: vmlinux),
    ``obj_fd`` the fd to pass as ``attach_btf_obj_fd`` (None for vmlinux)."""

    name: str
    btf_id: int
    module: str | None = None
    obj_fd: Fd | None = None
    #: struct_ops: the index of the implemented member in the kernel's struct, which
    #: ``BPF_PROG_LOAD`` takes as ``expected_attach_type``; None otherwise.
    member_index: int | None = None

    @property
    def where(self) -> str:
        return self.module or "vmlinux"


class KernelBTFs:
    """vmlinux's BTF and, when first needed, the loaded modules' BTF and BTF object fds."""

    def __init__(self, vmlinux: "BTF", modules: "tuple[ModuleBTF, ...] | None" = None) -> None:
        self.vmlinux = vmlinux
        self._modules = modules
        self._fds: dict[str, Fd] | None = None

    @property
    def modules(self) -> "tuple[ModuleBTF, ...]":
        """The loaded modules' BTF (/sys/kernel/btf), read on first use; unreadable ones left out."""
        if self._modules is None:
            from sigbpf.kernel.btf import running_module_btfs

            self._modules, _problems = running_module_btfs(self.vmlinux)
        return self._modules

    def module_fd(self, name: str) -> Fd:
        """The BTF object fd of module *name* (for ``attach_btf_obj_fd`` / ``BPF_PSEUDO_BTF_ID``)."""
        if self._fds is None:
            self._fds = _module_btf_fds()
        fd = self._fds.get(name)
        if fd is None:
            raise NotFoundError(f"module {name!r}: the kernel lists no BTF object of that name")
        return fd

    def close(self) -> None:
        for fd in (self._fds or {}).values():
            fd.close()
        self._fds = None


def _module_btf_fds() -> dict[str, Fd]:
    """Every kernel module BTF object: name -> fd (libbpf's ``load_module_btfs``)."""
    out: dict[str, Fd] = {}
    start = 0
    while True:
        buf = _GET_ID.pack(start_id=start)
        try:
            bpf(_BTF_GET_NEXT_ID, buf, what="listing BTF objects (BPF_BTF_GET_NEXT_ID)")
        except KernelError as err:
            if err.errno == errno_mod.ENOENT:
                return out
            raise
        start = _GET_ID.get(buf, "next_id")
        try:
            fd = Fd(bpf(Cmd.BTF_GET_FD_BY_ID, _GET_ID.pack(start_id=start),
                        what=f"opening BTF object {start} (BPF_BTF_GET_FD_BY_ID)"), "btf")
        except KernelError as err:
            if err.errno == errno_mod.ENOENT:  # unloaded meanwhile
                continue
            raise
        name = ctypes.create_string_buffer(64)
        info = _BTF_INFO.pack(name=ctypes.addressof(name), name_len=len(name))
        bpf(Cmd.OBJ_GET_INFO_BY_FD,
            A.OBJ_INFO.pack(bpf_fd=fd.fileno(), info_len=ctypes.sizeof(info),
                            info=ctypes.addressof(info)),
            what=f"reading BTF object {start} (BPF_OBJ_GET_INFO_BY_FD)")
        label = name.value.decode("utf-8", "replace")
        if not _BTF_INFO.get(info, "kernel_btf") or label in ("", "vmlinux") or label in out:
            fd.close()
            continue
        out[label] = fd


def find_in_btf(btf: "BTF", name: str, kind: int) -> int | None:
    """The id of the type *name* of BTF kind *kind* in *btf*'s own types (not its base), or None."""
    from sigbpf.btf import Kind

    try:
        type_id = btf.find_by_name_kind(name, Kind(kind))
    except NotFoundError:
        return None
    if type_id < btf.start_id:
        return None  # found in the base: that is vmlinux's, not this module's
    return type_id


def _member_index(btf: "BTF", type_id: int, target: "AttachTarget", program: str) -> int | None:
    """The index of ``target.member`` in the struct *type_id* (struct_ops), None without one."""
    if not target.member:
        return None
    members = getattr(btf[type_id], "members", ())
    for index, member in enumerate(members):
        if member.name == target.member:
            return index
    prefix = f"prog '{program}': " if program else ""
    raise NotFoundError(f"{prefix}struct_ops: the kernel's struct {target.name} has no member "
                        f"'{target.member}'", errno=errno_mod.ENOTSUP, type_id=type_id)


def bind_attach_target(target: "AttachTarget", kernel: KernelBTFs, *,
                       program: str = "") -> BoundTarget:
    """*target* in the running kernel (module docstring); NotFoundError (errno ESRCH) naming
    the program and the target when neither vmlinux nor a module has it."""
    module = target.module or None
    if module in (None, "vmlinux"):
        type_id = find_in_btf(kernel.vmlinux, target.name, target.kind)
        if type_id is not None:
            return BoundTarget(target.name, type_id,
                               member_index=_member_index(kernel.vmlinux, type_id, target, program))
    if module != "vmlinux":
        for mod in kernel.modules:
            if module is not None and mod.name != module:
                continue
            type_id = find_in_btf(mod.btf, target.name, target.kind)
            if type_id is not None:
                return BoundTarget(target.name, type_id, mod.name, kernel.module_fd(mod.name),
                                   _member_index(mod.btf, type_id, target, program))
    where = f"module {module!r}" if module not in (None, "vmlinux") else (
        "vmlinux" if module else "vmlinux or any module")
    kind = {4: "STRUCT", 8: "TYPEDEF", 12: "FUNC"}.get(target.kind, f"kind {target.kind}")
    prefix = f"prog '{program}': " if program else ""
    raise NotFoundError(f"{prefix}failed to find kernel BTF type ID of '{target.name}' "
                        f"({kind}, searched {where}): this kernel has no such attach target",
                        errno=errno_mod.ESRCH)
