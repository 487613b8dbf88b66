"""BTF (BPF Type Format): parse, look up, validate, build and encode.

Public API (stable; see each module for details)::

    from sigbpf.btf import BTF, BTFBuilder, Kind
    vmlinux = BTF.load_vmlinux()                      # /sys/kernel/btf/vmlinux, lazily decoded
    fid = vmlinux.find_by_name_kind("bpf_obj_new_impl", Kind.FUNC)
    func = vmlinux[fid]                               # a sigbpf.btf.types.Func
    proto = vmlinux[func.type]                        # FuncProto(return_type, params)
    mod = BTF.from_file("nf_conntrack.btf", base=vmlinux)   # split BTF
    obj = BTF.from_file("prog.o")                     # the .BTF section of an ELF object

    b = BTFBuilder()
    i = b.add(Int("int", 4, IntEncoding.SIGNED, 0, 32))
    raw = b.encode()

Modules: :mod:`.kinds` (constants and enums), :mod:`.types` (one frozen
dataclass per kind, referring to other types by id), :mod:`.spec` (the
:class:`BTF` class), :mod:`.reader` (header/sections/framing), :mod:`.strings`,
:mod:`.marshal` (:class:`BTFBuilder`, encoding), :mod:`.validate` (the
kernel's checks), :mod:`.kfuncs` (the kfunc list of a kernel).
"""

from typing import TYPE_CHECKING, Any

from sigbpf.btf.kinds import FuncLinkage, IntEncoding, Kind, VarLinkage
from sigbpf.btf.spec import BTF, VMLINUX_PATH

# The type dataclasses and the builder are imported on first use (PEP 562):
# creating ~20 slotted dataclasses costs ~10 ms, and most commands only look
# names up.
_TYPE_NAMES = (
    "VOID", "Array", "Const", "Datasec", "DeclTag", "Enum", "Enum64", "EnumValue", "Float", "Func",
    "FuncProto", "Fwd", "Int", "Member", "Param", "Ptr", "Restrict", "Struct", "Type", "Typedef",
    "TypeTag", "Union", "Var", "VarSecinfo", "Void", "Volatile",
)

if TYPE_CHECKING:
    from sigbpf.btf.marshal import BTFBuilder
    from sigbpf.btf.types import (
        VOID, Array, Const, Datasec, DeclTag, Enum, Enum64, EnumValue, Float, Func, FuncProto, Fwd,
        Int, Member, Param, Ptr, Restrict, Struct, Type, Typedef, TypeTag, Union, Var, VarSecinfo,
        Void, Volatile,
    )


def __getattr__(name: str) -> Any:
    if name in _TYPE_NAMES:
        from sigbpf.btf import types

        return getattr(types, name)
    if name == "BTFBuilder":
        from sigbpf.btf.marshal import BTFBuilder

        return BTFBuilder
    raise AttributeError(f"module 'sigbpf.btf' has no attribute {name!r}")


__all__ = [
    "BTF", "BTFBuilder", "Kind", "FuncLinkage", "VarLinkage", "IntEncoding", "VMLINUX_PATH",
    *_TYPE_NAMES,
]
