"""ELF sections and symbols of a BPF object, as plain values.

:class:`Section` and :class:`Symbol` are what :mod:`sigbpf.elf.reader` makes
out of the ELF structures: numbers instead of strings, the section's
bytes read once, nothing that keeps the file open.  The enums carry the ELF
constants the object model needs (``SHT_*``, ``SHF_*``, ``STT_*``, ``STB_*``,
``STV_*``, special section indexes).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag


class SectionType(IntEnum):
    """``sh_type`` values seen in BPF objects."""

    NULL = 0
    PROGBITS = 1
    SYMTAB = 2
    STRTAB = 3
    RELA = 4
    NOBITS = 8
    REL = 9
    LLVM_ADDRSIG = 0x6FFF4C03


class SectionFlags(IntFlag):
    """``sh_flags`` bits."""

    NONE = 0
    WRITE = 0x1
    ALLOC = 0x2
    EXECINSTR = 0x4
    MERGE = 0x10
    STRINGS = 0x20
    INFO_LINK = 0x40


class SymbolType(IntEnum):
    """``ELF64_ST_TYPE(st_info)``."""

    NOTYPE = 0
    OBJECT = 1
    FUNC = 2
    SECTION = 3
    FILE = 4


class SymbolBinding(IntEnum):
    """``ELF64_ST_BIND(st_info)``."""

    LOCAL = 0
    GLOBAL = 1
    WEAK = 2


class Visibility(IntEnum):
    """``ELF64_ST_VISIBILITY(st_other)``."""

    DEFAULT = 0
    INTERNAL = 1
    HIDDEN = 2
    PROTECTED = 3


#: ``st_shndx`` of an undefined symbol.
SHN_UNDEF = 0
#: First reserved section index (``SHN_ABS``, ``SHN_COMMON``, ... are above it).
SHN_LORESERVE = 0xFF00
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2

#: ``e_machine`` of BPF objects.
EM_BPF = 247
#: Size of one ``Elf64_Sym`` and one ``Elf64_Rel``.
SYM_SIZE = 24
REL_SIZE = 16


@dataclass(frozen=True, slots=True)
class Section:
    """One section header plus its contents (``b""`` for NOBITS)."""

    index: int
    name: str
    type: int  # a SectionType value, or another sh_type number
    flags: int
    offset: int  # file offset of the contents
    size: int
    link: int
    info: int
    entsize: int
    data: bytes

    @property
    def is_exec(self) -> bool:
        return bool(self.flags & SectionFlags.EXECINSTR)

    @property
    def is_nobits(self) -> bool:
        return self.type == SectionType.NOBITS


@dataclass(frozen=True, slots=True)
class Symbol:
    """One ``Elf64_Sym``; ``shndx`` is a number (``SHN_UNDEF`` = 0, ``SHN_ABS`` ...)."""

    index: int
    name: str
    value: int
    size: int
    type: int  # SymbolType
    bind: int  # SymbolBinding
    visibility: int  # Visibility
    shndx: int

    @property
    def is_extern(self) -> bool:
        """libbpf's ``sym_is_extern``: NOTYPE, GLOBAL or WEAK, undefined."""
        return (self.shndx == SHN_UNDEF and self.type == SymbolType.NOTYPE
                and self.bind in (SymbolBinding.GLOBAL, SymbolBinding.WEAK))

    @property
    def is_weak(self) -> bool:
        return self.bind == SymbolBinding.WEAK


@dataclass(frozen=True, slots=True)
class RelEntry:
    """One ``Elf64_Rel`` of a ``.rel<section>``: where, against which symbol, which type."""

    offset: int
    symbol: int
    type: int
