"""BTF v1 constants: kinds, linkages, int encodings and the raw record layout.

The numbers are the kernel's UAPI (``include/uapi/linux/btf.h``); they are part
of the format and never change.  Everything that has to know "how many bytes
does a record of kind K take" asks :func:`record_words` so there is one copy of
that rule.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
HEADER_SIZE = 24  # struct btf_header: magic u16, version u8, flags u8, hdr_len u32, 4 x u32

# Kernel limits (kernel/bpf/btf.c, include/uapi/linux/btf.h).
MAX_TYPE = 0x000FFFFF  # BTF_MAX_TYPE
MAX_NAME_OFFSET = 0x00FFFFFF  # BTF_MAX_NAME_OFFSET
MAX_VLEN = 0xFFFF  # BTF_MAX_VLEN
MAX_NAME_LEN = 512  # KSYM_NAME_LEN (6.1+): longest name the kernel accepts
MAX_RESOLVE_DEPTH = 32  # MAX_RESOLVE_DEPTH in btf.c


class Kind(IntEnum):
    """BTF_KIND_*: the kind of a type record (bits 24..28 of ``info``)."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19

    @property
    def label(self) -> str:
        """The name bpftool prints, e.g. ``FUNC_PROTO``."""
        return self.name


KIND_MAX = Kind.ENUM64


class FuncLinkage(IntEnum):
    """BTF_FUNC_*: linkage of a FUNC, stored in its ``vlen`` bits."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


class VarLinkage(IntEnum):
    """BTF_VAR_*: linkage of a VAR."""

    STATIC = 0
    GLOBAL_ALLOCATED = 1
    GLOBAL_EXTERN = 2


class IntEncoding(IntFlag):
    """BTF_INT_*: encoding bits of an INT (bits 24..27 of its extra word)."""

    NONE = 0
    SIGNED = 1
    CHAR = 2
    BOOL = 4


# Size of one record in 32-bit words: 3 for ``struct btf_type`` plus
# FIXED_EXTRA_WORDS[kind] plus vlen * VLEN_WORDS[kind].
FIXED_EXTRA_WORDS: dict[Kind, int] = {
    Kind.INT: 1,  # u32 int data
    Kind.ARRAY: 3,  # struct btf_array
    Kind.VAR: 1,  # struct btf_var
    Kind.DECL_TAG: 1,  # struct btf_decl_tag
}
VLEN_WORDS: dict[Kind, int] = {
    Kind.STRUCT: 3,  # struct btf_member
    Kind.UNION: 3,
    Kind.ENUM: 2,  # struct btf_enum
    Kind.FUNC_PROTO: 2,  # struct btf_param
    Kind.DATASEC: 3,  # struct btf_var_secinfo
    Kind.ENUM64: 3,  # struct btf_enum64
}

# Kinds whose third word is a size (the rest use it as a type id).
SIZED_KINDS = frozenset({Kind.INT, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.DATASEC,
                         Kind.FLOAT, Kind.ENUM64})
# Kinds that just point at another type and add a qualifier or a name.
MODIFIER_KINDS = frozenset({Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG})


def record_words(kind: int, vlen: int) -> int:
    """Length in 32-bit words of a record of *kind* with *vlen* entries."""
    k = Kind(kind)
    return 3 + FIXED_EXTRA_WORDS.get(k, 0) + vlen * VLEN_WORDS.get(k, 0)

# Bits of ``info`` the kernel accepts (BTF_INFO_MASK): kind_flag, kind, vlen.
INFO_MASK = 0x9F00FFFF
