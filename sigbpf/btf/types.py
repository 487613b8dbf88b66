"""The BTF type model: one small frozen dataclass per kind.

Types refer to other types **by id** (an ``int``; 0 is ``void``), never by
object, so a type is a plain value that can be compared, hashed, built by hand
and handed to :class:`sigbpf.btf.BTFBuilder`.  Names are ``str`` ("" when the
record has no name).  Every class has a class-level ``kind`` (:class:`Kind`)
and a ``name`` (a field, or the constant "" for kinds that cannot be named).

Fields, by kind (bit offsets are in bits, sizes in bytes):

=================  ==========================================================
``Void``           id 0; ``kind`` = UNKN
``Int``            name, size, encoding (IntEncoding), offset (bits), bits
``Ptr``            type
``Array``          type (element), index_type, nelems
``Struct/Union``   name, size, members (tuple of Member), kind_flag
``Member``         name, type, offset (bits), bitfield_size (0 = not a bitfield)
``Enum``           name, size, values (tuple of EnumValue), signed
``Enum64``         name, size, values (tuple of EnumValue), signed
``EnumValue``      name, value (python int: signed or unsigned per ``signed``)
``Fwd``            name, union (True for ``union X;``, False for ``struct X;``)
``Typedef``        name, type
``Volatile``       type
``Const``          type
``Restrict``       type
``TypeTag``        name, type, kind_flag (1 = ``__attribute__`` tag)
``Func``           name, type (a FUNC_PROTO), linkage (FuncLinkage)
``FuncProto``      return_type, params (tuple of Param); variadic = last
                   param with type 0 and name "" (see ``FuncProto.variadic``)
``Param``          name, type
``Var``            name, type, linkage (VarLinkage)
``Datasec``        name, size, vars (tuple of VarSecinfo)
``VarSecinfo``     type (a VAR or FUNC), offset, size
``Float``          name, size
``DeclTag``        name, type, component_idx (-1 = the type itself,
                   else a member/param index), kind_flag (1 = attribute)
=================  ==========================================================

``kind_flag`` of Struct/Union says how member offsets are encoded (1: the top
8 bits of each member's offset word are the bitfield size); with kind_flag 0
``bitfield_size`` is always 0 (the size then lives in the member's INT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Union as _U

from sigbpf.btf.kinds import FuncLinkage, IntEncoding, Kind, VarLinkage

__all__ = [
    "Void", "Int", "Ptr", "Array", "Struct", "Union", "Member", "Enum", "Enum64",
    "EnumValue", "Fwd", "Typedef", "Volatile", "Const", "Restrict", "TypeTag",
    "Func", "FuncProto", "Param", "Var", "Datasec", "VarSecinfo", "Float",
    "DeclTag", "Type", "TYPE_CLASSES", "VOID",
]


@dataclass(frozen=True, slots=True)
class Void:
    """``void``: the type with id 0; never stored in a BTF blob."""

    kind: ClassVar[Kind] = Kind.UNKN
    name: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class Int:
    """BTF_KIND_INT: an integer of ``size`` bytes, ``bits`` wide at bit ``offset``."""

    name: str
    size: int
    encoding: IntEncoding = IntEncoding.NONE
    offset: int = 0
    bits: int = 0

    kind: ClassVar[Kind] = Kind.INT

    @property
    def signed(self) -> bool:
        return bool(self.encoding & IntEncoding.SIGNED)


@dataclass(frozen=True, slots=True)
class Ptr:
    """BTF_KIND_PTR: a pointer to ``type``."""

    type: int
    kind: ClassVar[Kind] = Kind.PTR
    name: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class Array:
    """BTF_KIND_ARRAY: ``nelems`` elements of ``type``, indexed by ``index_type``."""

    type: int
    index_type: int
    nelems: int
    kind: ClassVar[Kind] = Kind.ARRAY
    name: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a struct or union; ``offset`` in bits."""

    name: str
    type: int
    offset: int
    bitfield_size: int = 0


@dataclass(frozen=True, slots=True)
class Struct:
    """BTF_KIND_STRUCT."""

    name: str
    size: int
    members: tuple[Member, ...] = ()
    kind_flag: bool = False
    kind: ClassVar[Kind] = Kind.STRUCT


@dataclass(frozen=True, slots=True)
class Union:
    """BTF_KIND_UNION (same layout as Struct)."""

    name: str
    size: int
    members: tuple[Member, ...] = ()
    kind_flag: bool = False
    kind: ClassVar[Kind] = Kind.UNION


@dataclass(frozen=True, slots=True)
class EnumValue:
    """One enumerator: ``name = value``."""

    name: str
    value: int


@dataclass(frozen=True, slots=True)
class Enum:
    """BTF_KIND_ENUM: 32-bit values; ``signed`` is the record's kind_flag."""

    name: str
    size: int
    values: tuple[EnumValue, ...] = ()
    signed: bool = False
    kind: ClassVar[Kind] = Kind.ENUM


@dataclass(frozen=True, slots=True)
class Enum64:
    """BTF_KIND_ENUM64: 64-bit values; ``signed`` is the record's kind_flag."""

    name: str
    size: int
    values: tuple[EnumValue, ...] = ()
    signed: bool = False
    kind: ClassVar[Kind] = Kind.ENUM64


@dataclass(frozen=True, slots=True)
class Fwd:
    """BTF_KIND_FWD: ``struct name;`` or, with ``union`` set, ``union name;``."""

    name: str
    union: bool = False
    kind: ClassVar[Kind] = Kind.FWD


@dataclass(frozen=True, slots=True)
class Typedef:
    """BTF_KIND_TYPEDEF: ``typedef type name;``."""

    name: str
    type: int
    kind: ClassVar[Kind] = Kind.TYPEDEF


@dataclass(frozen=True, slots=True)
class Volatile:
    """BTF_KIND_VOLATILE."""

    type: int
    kind: ClassVar[Kind] = Kind.VOLATILE
    name: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class Const:
    """BTF_KIND_CONST."""

    type: int
    kind: ClassVar[Kind] = Kind.CONST
    name: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class Restrict:
    """BTF_KIND_RESTRICT."""

    type: int
    kind: ClassVar[Kind] = Kind.RESTRICT
    name: ClassVar[str] = ""


@dataclass(frozen=True, slots=True)
class TypeTag:
    """BTF_KIND_TYPE_TAG: ``type`` annotated with ``__attribute__((btf_type_tag(name)))``."""

    name: str
    type: int
    kind_flag: bool = False
    kind: ClassVar[Kind] = Kind.TYPE_TAG


@dataclass(frozen=True, slots=True)
class Func:
    """BTF_KIND_FUNC: a function named ``name`` whose prototype is ``type``."""

    name: str
    type: int
    linkage: FuncLinkage = FuncLinkage.STATIC
    kind: ClassVar[Kind] = Kind.FUNC


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a FUNC_PROTO."""

    name: str
    type: int


@dataclass(frozen=True, slots=True)
class FuncProto:
    """BTF_KIND_FUNC_PROTO: ``return_type (*)(params...)``."""

    return_type: int
    params: tuple[Param, ...] = ()
    kind: ClassVar[Kind] = Kind.FUNC_PROTO
    name: ClassVar[str] = ""

    @property
    def variadic(self) -> bool:
        """True when the last parameter is the ``...`` marker (type 0, no name)."""
        return bool(self.params) and self.params[-1].type == 0 and not self.params[-1].name


@dataclass(frozen=True, slots=True)
class Var:
    """BTF_KIND_VAR: a global or static variable."""

    name: str
    type: int
    linkage: VarLinkage = VarLinkage.STATIC
    kind: ClassVar[Kind] = Kind.VAR


@dataclass(frozen=True, slots=True)
class VarSecinfo:
    """One variable (or extern FUNC) placed in a DATASEC."""

    type: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class Datasec:
    """BTF_KIND_DATASEC: an ELF data section and the variables in it."""

    name: str
    size: int
    vars: tuple[VarSecinfo, ...] = ()
    kind: ClassVar[Kind] = Kind.DATASEC


@dataclass(frozen=True, slots=True)
class Float:
    """BTF_KIND_FLOAT."""

    name: str
    size: int
    kind: ClassVar[Kind] = Kind.FLOAT


@dataclass(frozen=True, slots=True)
class DeclTag:
    """BTF_KIND_DECL_TAG: tag ``name`` on ``type`` (component_idx -1) or one of its members/params."""

    name: str
    type: int
    component_idx: int = -1
    kind_flag: bool = False
    kind: ClassVar[Kind] = Kind.DECL_TAG


Type = _U[Void, Int, Ptr, Array, Struct, Union, Enum, Enum64, Fwd, Typedef, Volatile,
          Const, Restrict, TypeTag, Func, FuncProto, Var, Datasec, Float, DeclTag]

VOID = Void()

# Kind -> class, for code that dispatches on the kind number.
TYPE_CLASSES: dict[Kind, type] = {
    cls.kind: cls
    for cls in (Void, Int, Ptr, Array, Struct, Union, Enum, Fwd, Typedef, Volatile, Const,
                Restrict, Func, FuncProto, Var, Datasec, Float, DeclTag, TypeTag, Enum64)
}
