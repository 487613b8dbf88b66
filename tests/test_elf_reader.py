"""``sigbpf.elf.reader.read_elf`` (struct-based) gives pyelftools' answers.

``read_elf`` used to read sections, symbols and relocations through
pyelftools; it now reads the ELF64 structures itself (importing pyelftools
cost ~20 ms of every ``sigbpf load OBJ``).  :func:`pyelftools_read` below is
that former reader, kept as the reference: on every test object (little- and
big-endian) and the bundled example the two give equal results, and on
damaged copies of them they agree on whether the bytes are readable at all
(and on the result when they are).
"""

from __future__ import annotations

import io
import random
import struct

import pytest

from conftest import PROGS, ROOT
from sigbpf.elf.reader import ElfFile, _check_ident, read_elf
from sigbpf.elf.sections import SHN_UNDEF, RelEntry, Section, SectionType, Symbol
from sigbpf.errors import ELFError

#: Every C program of tests/progs, with the clang flags it needs (as in test_asm_llvm).
CPU_V4 = ("asm_atomics", "asm_v4")
ALL_PROGS = sorted(p.stem for p in PROGS.glob("*.c"))


def _number(value, table):
    return value if isinstance(value, int) else table[str(value)]


def pyelftools_read(data: bytes) -> ElfFile:
    """The former reader: the same fields, read with pyelftools (errors: any exception)."""
    from elftools.elf import enums
    from elftools.elf.elffile import ELFFile

    order = _check_ident(data, None)  # the header checks are shared: "is this a BPF object"
    elf = ELFFile(io.BytesIO(data))
    sh_types = dict(enums.ENUM_SH_TYPE_BASE)
    sh_types.setdefault("SHT_LLVM_ADDRSIG", int(SectionType.LLVM_ADDRSIG))
    sections, symtab_index = [], -1
    for index in range(elf.num_sections()):
        sec = elf.get_section(index)
        h = sec.header
        sh_type = _number(h["sh_type"], sh_types)
        offset, size = int(h["sh_offset"]), int(h["sh_size"])
        if sh_type not in (SectionType.NOBITS, SectionType.NULL) and offset + size > len(data):
            raise ValueError("section past the end")
        contents = b"" if sh_type in (SectionType.NOBITS, SectionType.NULL) else data[offset:offset + size]
        sections.append(Section(index=index, name=sec.name, type=sh_type, flags=int(h["sh_flags"]),
                                offset=offset, size=size, link=int(h["sh_link"]),
                                info=int(h["sh_info"]), entsize=int(h["sh_entsize"]), data=contents))
        if sh_type == SectionType.SYMTAB:
            if symtab_index >= 0:
                raise ValueError("multiple symbol tables")
            symtab_index = index
    if symtab_index < 0:
        raise ValueError("no symbol table")
    symtab = sections[symtab_index]
    if symtab.entsize != 24 or symtab.size % 24:
        raise ValueError("symbol entry size")
    if not 0 < symtab.link < len(sections) or sections[symtab.link].type != SectionType.STRTAB:
        raise ValueError("symbol strings")
    symbols = []
    for i, sym in enumerate(elf.get_section(symtab_index).iter_symbols()):
        e = sym.entry
        shndx = _number(e["st_shndx"], enums.ENUM_ST_SHNDX)
        symbols.append(Symbol(index=i, name=sym.name, value=int(e["st_value"]), size=int(e["st_size"]),
                              type=_number(e["st_info"]["type"], enums.ENUM_ST_INFO_TYPE),
                              bind=_number(e["st_info"]["bind"], enums.ENUM_ST_INFO_BIND),
                              visibility=_number(e["st_other"]["visibility"], enums.ENUM_ST_VISIBILITY),
                              shndx=shndx))
        if shndx != SHN_UNDEF and shndx < 0xFF00 and shndx >= len(sections):
            raise ValueError("symbol section")
    rels = {}
    for sec in sections:
        if sec.type != SectionType.REL:
            continue
        if sec.entsize != 16 or sec.size % 16 or sec.info >= len(sections):
            raise ValueError("relocation section")
        entries = []
        for rel in elf.get_section(sec.index).iter_relocations():
            e = rel.entry
            if e["r_info_sym"] >= len(symbols):
                raise ValueError("relocation symbol")
            entries.append(RelEntry(int(e["r_offset"]), int(e["r_info_sym"]), int(e["r_info_type"])))
        rels[sec.index] = tuple(entries)
    return ElfFile(byteorder=order, sections=tuple(sections), symbols=tuple(symbols),
                   symtab_index=symtab_index, rels=rels)


def outcome(read, data: bytes):
    try:
        return read(data)
    except Exception as err:  # noqa: BLE001 - the reference may raise anything
        if read is read_elf:
            assert isinstance(err, ELFError), repr(err)  # ours: only located ELFErrors
        return None


#: Also compiled big-endian (-target bpfeb): the programs with data, externs, maps and kfuncs.
BIG_ENDIAN = ("elf_data", "elf_externs", "elf_progs", "kfunc_task", "build_link")


def _objects(bpf_object):
    yield ROOT / "examples" / "task_iter.bpf.o"
    for name in ALL_PROGS:
        yield bpf_object(name, *(("-mcpu=v4",) if name in CPU_V4 else ()))
    for name in BIG_ENDIAN:
        yield bpf_object(name, "-target", "bpfeb")


def test_every_test_object_reads_as_with_pyelftools(bpf_object):
    count = 0
    for path in _objects(bpf_object):
        data = path.read_bytes()
        mine = read_elf(data, str(path))
        assert mine == pyelftools_read(data), path
        assert mine.symbols and mine.sections
        count += 1
    assert count == 1 + len(ALL_PROGS) + len(BIG_ENDIAN)


@pytest.mark.parametrize("name", ["elf_data", "build_link"])
def test_damaged_objects_agree_with_pyelftools(bpf_object, name):
    for target in ("bpf", "bpfeb"):
        data = bpf_object(name, "-target", target).read_bytes()
        fmt = "<Q" if data[5] == 1 else ">Q"
        shoff = struct.unpack_from(fmt, data, 0x28)[0]
        rng = random.Random(f"{name}-{target}")
        refused = 0
        for n in range(300):
            b = bytearray(data)
            for _ in range(rng.choice((1, 2, 3))):
                pos = rng.choice((rng.randrange(64), shoff + rng.randrange(len(data) - shoff),
                                  rng.randrange(len(b))))
                b[pos] = rng.randrange(256)
            if n % 10 == 0:
                b = b[:rng.randrange(len(b))]
            case = bytes(b)
            mine, ref = outcome(read_elf, case), outcome(pyelftools_read, case)
            if case[:4] != b"\x7fELF" or len(case) < 64:
                assert mine is None
                continue
            assert mine == ref, (name, target, n)
            refused += mine is None
        assert refused > 30
