"""Reading the ELF container of a BPF object.

:func:`read_elf` turns bytes into an :class:`ElfFile`: the byte order, the
sections (with their contents), the one symbol table and the ``Elf64_Rel``
entries of every ``SHT_REL`` section.  It reads the ELF64 structures itself
with :mod:`struct`, with pyelftools' answers (``sigbpf load OBJ`` no longer pays
the ~20 ms of importing pyelftools); :func:`read_named_section` (a section
of *any* ELF file, e.g. ``.BTF_ids`` of a vmlinux) still uses pyelftools,
imported when first called.

Every way the bytes can be wrong becomes an :class:`~sigbpf.errors.ELFError`
with the file name (and the byte offset when there is one): not an ELF file,
not 64-bit, not BPF (``e_machine`` != 247), not relocatable, a section that
runs past the end of the file, a symbol table or relocation section with the
wrong entry size, no symbol table ("stripped object file?", as libbpf says).
``struct`` errors on truncated input, and pyelftools' own exceptions in
:func:`read_named_section`, are turned into the same one-line error.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Literal

from sigbpf.elf.sections import (
    EM_BPF,
    REL_SIZE,
    SHN_UNDEF,
    SYM_SIZE,
    RelEntry,
    Section,
    SectionType,
    Symbol,
)
from sigbpf.errors import ELFError

ELF_MAGIC = b"\x7fELF"
_EI_CLASS_64 = 2
_EI_DATA_LSB, _EI_DATA_MSB = 1, 2
_ET_REL = 1
_EHDR_SIZE = 64
_SHDR_SIZE = 64


@dataclass(frozen=True, slots=True)
class ElfFile:
    """The parts of an ELF relocatable object that a BPF object is made of."""

    byteorder: Literal["little", "big"]
    sections: tuple[Section, ...]
    symbols: tuple[Symbol, ...]
    symtab_index: int
    rels: dict[int, tuple[RelEntry, ...]] = field(default_factory=dict)  # REL section index -> entries

    def section_by_name(self, name: str) -> Section | None:
        """The first section called *name*, or None."""
        for sec in self.sections:
            if sec.name == name:
                return sec
        return None


def _pyelftools_failures() -> tuple[type[BaseException], ...]:
    from elftools.common.exceptions import ELFError as PyElfError, ELFParseError

    from elftools.construct import ConstructError  # pyelftools' vendored construct
    return (PyElfError, ELFParseError, ConstructError, struct.error, ValueError, IndexError,
            KeyError, TypeError, UnicodeDecodeError, OverflowError, AssertionError, EOFError)


def _check_ident(data: bytes, file: str | None) -> Literal["little", "big"]:
    """The checks on ``e_ident`` and the header that decide "is this a BPF object"."""
    if data[:4] != ELF_MAGIC:
        raise ELFError("not an ELF file", file=file)
    if len(data) < _EHDR_SIZE:
        raise ELFError(f"truncated ELF header ({len(data)} bytes, need {_EHDR_SIZE})",
                       file=file, offset=len(data))
    if data[4] != _EI_CLASS_64:
        raise ELFError("not a 64-bit ELF file (BPF objects are ELF64)", file=file, offset=4)
    if data[5] not in (_EI_DATA_LSB, _EI_DATA_MSB):
        raise ELFError(f"unknown ELF data encoding {data[5]}", file=file, offset=5)
    order: Literal["little", "big"] = "little" if data[5] == _EI_DATA_LSB else "big"
    fmt = "<HH" if order == "little" else ">HH"
    e_type, e_machine = struct.unpack_from(fmt, data, 16)
    if e_machine != EM_BPF:
        raise ELFError(f"not a BPF object (e_machine {e_machine}, BPF is {EM_BPF})",
                       file=file, offset=18)
    if e_type != _ET_REL:
        raise ELFError(f"not a relocatable object (e_type {e_type}); BPF objects are ET_REL",
                       file=file, offset=16)
    (shoff,) = struct.unpack_from(fmt[0] + "Q", data, 0x28)
    shentsize, shnum = struct.unpack_from(fmt, data, 0x3A)
    if shnum and shentsize != _SHDR_SIZE:
        raise ELFError(f"section header size {shentsize}, expected {_SHDR_SIZE}", file=file,
                       offset=0x3A)
    if shoff + shnum * shentsize > len(data):
        raise ELFError(f"section header table ({shnum} entries at offset {shoff}) runs past the end "
                       f"of the file ({len(data)} bytes; truncated?)", file=file, offset=0x28)
    return order


def _number(value: object, table: dict[str, int]) -> int:
    """pyelftools gives known constants as names and unknown ones as ints."""
    if isinstance(value, int):
        return value
    return table[str(value)]


def read_elf(data: bytes, file: str | None = None) -> ElfFile:
    """Parse *data* as a BPF ELF object; raises :class:`ELFError` for anything else."""
    data = bytes(data)
    order = _check_ident(data, file)
    try:
        return _read(data, order, file)
    except ELFError:
        raise
    except (struct.error, ValueError, IndexError, OverflowError) as err:
        raise ELFError(f"truncated or malformed ELF ({type(err).__name__}: {_short(err)})",
                       file=file) from None


def read_named_section(data: bytes, name: str, file: str | None = None) -> bytes | None:
    """The contents of section *name* of any ELF file, or None if it has none.

    Unlike :func:`read_elf` this takes any ELF file, not only BPF objects:
    ``.BTF`` of a clang object, ``.BTF_ids`` of a vmlinux.  Malformed bytes
    are the same one-line :class:`ELFError` as there, never another exception.
    """
    data = bytes(data)
    if data[:4] != ELF_MAGIC:
        raise ELFError("not an ELF file", file=file)
    from elftools.elf.elffile import ELFFile

    try:
        sec = ELFFile(io.BytesIO(data)).get_section_by_name(name)
        if sec is None:
            return None
        if sec["sh_type"] == "SHT_NOBITS":
            return b""
        offset, size = int(sec["sh_offset"]), int(sec["sh_size"])
    except _pyelftools_failures() as err:
        raise ELFError(f"truncated or malformed ELF ({type(err).__name__}: {_short(err)})",
                       file=file) from None
    if offset + size > len(data):
        raise ELFError(f"section {name} extends past the end of the file "
                       f"({offset}+{size} > {len(data)} bytes; truncated?)", file=file, offset=offset)
    return data[offset:offset + size]


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:120] if text else "no details"


def _read(data: bytes, order: Literal["little", "big"], file: str | None) -> ElfFile:
    """Section headers, symbols and ``Elf64_Rel`` entries, read with :mod:`struct`.

    The same answers as pyelftools' ``ELFFile`` (which this module used
    before; ``tests/test_elf_reader.py`` compares the two on every test object
    and on damaged ones): ``e_shnum`` 0 means the count is section 0's
    ``sh_size``, ``e_shstrndx`` ``SHN_XINDEX`` means the index is section 0's
    ``sh_link``, and a name is the string at its offset, up to the next NUL
    anywhere in the file ("" if there is none), decoded as UTF-8 with
    replacement characters.  Importing pyelftools cost more than reading a
    whole object (~20 ms of ``sigbpf load``).
    """
    e = "<" if order == "little" else ">"
    (shoff,) = struct.unpack_from(e + "Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", data, 0x3A)
    shdr = struct.Struct(e + "IIQQQQIIQQ")  # Elf64_Shdr
    headers = []
    if shoff:
        if shentsize != _SHDR_SIZE:
            raise ELFError(f"section header size {shentsize}, expected {_SHDR_SIZE}", file=file,
                           offset=0x3A)
        if shnum == 0:  # SHN_UNDEF: the real count is in section 0's sh_size
            shnum = shdr.unpack_from(data, shoff)[5]
        if shoff + shnum * _SHDR_SIZE > len(data):
            raise ELFError(f"section header table ({shnum} entries at offset {shoff}) runs past the "
                           f"end of the file ({len(data)} bytes; truncated?)", file=file, offset=0x28)
        headers = list(shdr.iter_unpack(data[shoff:shoff + shnum * _SHDR_SIZE]))
    if shstrndx == 0xFFFF and headers:  # SHN_XINDEX: the index is in section 0's sh_link
        shstrndx = headers[0][6]
    if headers and shstrndx >= len(headers):
        raise ELFError(f"section name string table {shstrndx} does not exist "
                       f"({len(headers)} sections)", file=file, offset=0x3E)
    names_at = headers[shstrndx][4] if headers else 0
    sections: list[Section] = []
    symtab_index = -1
    for index, (sh_name, sh_type, flags, _addr, offset, size, link, info, _align, entsize) in \
            enumerate(headers):
        name = _string(data, names_at + sh_name)
        if sh_type not in (SectionType.NOBITS, SectionType.NULL) and offset + size > len(data):
            raise ELFError(f"section {index} ({name or '?'}) extends past the end of the file "
                           f"({offset}+{size} > {len(data)} bytes; truncated?)", file=file, offset=offset)
        contents = b"" if sh_type in (SectionType.NOBITS, SectionType.NULL) else data[offset:offset + size]
        sections.append(Section(index=index, name=name, type=sh_type, flags=flags, offset=offset,
                                size=size, link=link, info=info, entsize=entsize, data=contents))
        if sh_type == SectionType.SYMTAB:
            if symtab_index >= 0:
                raise ELFError("multiple symbol tables", file=file, offset=offset)
            symtab_index = index
    if symtab_index < 0:
        raise ELFError("couldn't find symbol table (stripped object file?)", file=file)
    symtab = sections[symtab_index]
    if symtab.entsize != SYM_SIZE or symtab.size % SYM_SIZE:
        raise ELFError(f"symbol table entry size {symtab.entsize}, expected {SYM_SIZE}",
                       file=file, offset=symtab.offset)
    if not 0 < symtab.link < len(sections) or sections[symtab.link].type != SectionType.STRTAB:
        raise ELFError("symbol strings section missing or invalid", file=file, offset=symtab.offset)
    symbols = _read_symbols(data, e, symtab, sections[symtab.link].offset, len(sections), file)
    rels: dict[int, tuple[RelEntry, ...]] = {}
    for sec in sections:
        if sec.type != SectionType.REL:
            continue
        if sec.entsize != REL_SIZE or sec.size % REL_SIZE:
            raise ELFError(f"relocation section {sec.name} has entry size {sec.entsize}, "
                           f"expected {REL_SIZE}", file=file, offset=sec.offset)
        if sec.info >= len(sections):
            raise ELFError(f"relocation section {sec.name} applies to section {sec.info}, "
                           f"which does not exist", file=file, offset=sec.offset)
        entries = []
        for r_offset, r_info in struct.iter_unpack(e + "QQ", sec.data):  # Elf64_Rel
            sym = r_info >> 32
            if sym >= len(symbols):
                raise ELFError(f"relocation in {sec.name} at {r_offset:#x} refers to symbol "
                               f"{sym}, the table has {len(symbols)}",
                               file=file, offset=sec.offset)
            entries.append(RelEntry(r_offset, sym, r_info & 0xFFFFFFFF))
        rels[sec.index] = tuple(entries)
    return ElfFile(byteorder=order, sections=tuple(sections), symbols=symbols,
                   symtab_index=symtab_index, rels=rels)


def _string(data: bytes, pos: int) -> str:
    """The NUL-terminated string at *pos* of the file, as pyelftools reads it ("" if unterminated)."""
    end = data.find(b"\0", pos)
    return "" if end < 0 else data[pos:end].decode("utf-8", "replace")


def _read_symbols(data: bytes, e: str, symtab: Section, names_at: int, section_count: int,
                  file: str | None) -> tuple[Symbol, ...]:
    out: list[Symbol] = []
    # Elf64_Sym: st_name, st_info, st_other, st_shndx, st_value, st_size
    for i, (st_name, st_info, st_other, shndx, value, size) in \
            enumerate(struct.iter_unpack(e + "IBBHQQ", symtab.data)):
        name = _string(data, names_at + st_name)
        out.append(Symbol(index=i, name=name, value=value, size=size, type=st_info & 0xF,
                          bind=st_info >> 4, visibility=st_other & 0x7, shndx=shndx))
        if shndx != SHN_UNDEF and shndx < 0xFF00 and shndx >= section_count:
            raise ELFError(f"symbol {i} ({name}) is in section {shndx}, which does not exist",
                           file=file, offset=symtab.offset + i * SYM_SIZE)
    return tuple(out)
