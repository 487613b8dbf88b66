"""A clang-compiled BPF object file as a complete, immutable description: :class:`BPFObject`.

``BPFObject.from_file(path)`` / ``from_bytes(data, name)`` read everything a
loader needs, the way libbpf's ``bpf_object__open`` does, but without
loading or relocating anything: programs (entry programs and ``.text``
subprograms), their classified relocations and bpf-to-bpf calls, maps
(BTF-defined and global data), externs, license, kernel version, ``.BTF``
and ``.BTF.ext``.  Reading is deterministic and never touches ``/sys`` or
the kernel; little- and big-endian (``-target bpfeb``) objects are read
alike.

The artifact builder links from here (append subprograms, apply
relocations, rewrite kfunc calls); ``sigbpf inspect`` shows it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from sigbpf.elf import datasec
from sigbpf.elf.btf_ext import BTFExt, CoreRelo, FuncInfo, LineInfo
from sigbpf.elf.externs import Extern, collect_externs, kconfig_size
from sigbpf.elf.struct_ops import StructOpsMember, collect_struct_ops
from sigbpf.elf.maps import MAPS_SECTION, MapSpec, collect_init_slots, parse_btf_maps
from sigbpf.elf.programs import TEXT_SECTION, Program, find_programs
from sigbpf.elf.reader import ElfFile, read_elf
from sigbpf.elf.relocations import RelocContext, Relocation, RelocKind, classify_section
from sigbpf.elf.sections import Section, SectionType, Symbol
from sigbpf.btf.kinds import Kind
from sigbpf.errors import BTFError, ELFError, NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf import BTF

LICENSE_SECTION = "license"
VERSION_SECTION = "version"
BTF_SECTION = ".BTF"
BTF_EXT_SECTION = ".BTF.ext"
LICENSE_MAX = 64  # libbpf keeps at most 63 characters


@dataclass(frozen=True, slots=True)
class ProgramExtInfo:
    """The ``.BTF.ext`` records of one program, with ``insn`` relative to the program."""

    func_info: tuple[FuncInfo, ...]
    line_info: tuple[LineInfo, ...]
    core_relos: tuple[CoreRelo, ...]


@dataclass(frozen=True, slots=True)
class BPFObject:
    """Everything a BPF object says, read once (see the module docstring).

    ``programs`` lists entry programs and subprograms in section order then
    symbol order; ``maps`` are BTF-defined maps (``.maps`` order), then global
    data maps (section order), then ``.kconfig`` -- libbpf's map order, which
    ``Relocation.map_index`` refers to.  ``externs`` are in libbpf's order.
    """

    name: str  # libbpf's object name (file base name up to the first dot)
    file: str | None
    byteorder: str
    license: str
    kern_version: int | None
    programs: tuple[Program, ...]
    maps: tuple[MapSpec, ...]
    externs: tuple[Extern, ...]
    btf: "BTF | None"
    btf_ext: BTFExt | None
    sections: tuple[Section, ...]
    symbols: tuple[Symbol, ...]
    datasec_fixup: datasec.DatasecFixup  # libbpf's DATASEC sizes/offsets/static VARs for .BTF
    #: Which program implements which member of which kernel struct (``.struct_ops``).
    struct_ops: tuple[StructOpsMember, ...] = ()
    #: The kernel policy the object's .BTF breaks (libbpf opens it; a kernel then refuses the
    #: BTF and the loader goes on without it), None when the BTF is one the kernel accepts.
    btf_problem: str | None = None

    # ------------------------------------------------------------ reading
    @classmethod
    def from_file(cls, path: str | Path) -> "BPFObject":
        """Read the object at *path* (errors name the file)."""
        from sigbpf.fileio import read_input

        data = read_input(path)
        return cls.from_bytes(data, str(path))

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> "BPFObject":
        """Read an object from memory; *name* is used in errors and for libbpf's map names."""
        try:
            return _read(bytes(data), name)
        except (ELFError, BTFError) as err:
            raise err.at(file=name)
        except NotFoundError as err:
            # A type id or name the object's own tables promise but do not have:
            # malformed input, reported as such (never "not found" with exit 1).
            raise ELFError(err.message, file=name, offset=err.offset, type_id=err.type_id) from None

    # ------------------------------------------------------------ look-ups
    @property
    def entry_programs(self) -> tuple[Program, ...]:
        return tuple(p for p in self.programs if not p.is_subprog)

    @property
    def subprograms(self) -> tuple[Program, ...]:
        return tuple(p for p in self.programs if p.is_subprog)

    def program(self, name: str) -> Program:
        """The program (entry or subprogram) called *name*."""
        for p in self.programs:
            if p.name == name:
                return p
        raise NotFoundError(f"no program named {name!r}", file=self.file)

    def map(self, name: str) -> MapSpec:
        for m in self.maps:
            if m.name == name:
                return m
        raise NotFoundError(f"no map named {name!r}", file=self.file)

    def extern(self, name: str) -> Extern:
        for e in self.externs:
            if e.name == name:
                return e
        raise NotFoundError(f"no extern named {name!r}", file=self.file)

    @property
    def relocations(self) -> tuple[Relocation, ...]:
        """All classified code relocations, program by program."""
        return tuple(r for p in self.programs for r in p.relocations)

    def subprograms_of(self, program: Program | str) -> tuple[Program, ...]:
        """The subprograms *program* needs, transitively, in the order libbpf appends them.

        libbpf walks the program's instructions and appends a subprogram at its
        first call (or callback address), then walks that subprogram before
        going on: a depth-first pre-order over :attr:`Program.calls`.
        """
        prog = self.program(program) if isinstance(program, str) else program
        by_name = {p.name: p for p in self.subprograms}
        order: list[Program] = []
        seen = {prog.name}

        def visit(p: Program) -> None:
            for callee in p.calls:
                if callee not in seen:
                    seen.add(callee)
                    sub = by_name[callee]
                    order.append(sub)
                    visit(sub)

        visit(prog)
        return tuple(order)

    def kfuncs_of(self, program: Program | str) -> tuple[str, ...]:
        """The kfuncs *program* calls, its subprograms included, in first-use order."""
        prog = self.program(program) if isinstance(program, str) else program
        names: dict[str, None] = {}
        for p in (prog, *self.subprograms_of(prog)):
            for r in p.relocations:
                if r.kind == RelocKind.KFUNC_CALL:
                    names.setdefault(r.target, None)
        return tuple(names)

    def ext_info_of(self, program: Program | str) -> ProgramExtInfo:
        """func_info, line_info and CO-RE relocations of *program*, ``insn`` program-relative."""
        prog = self.program(program) if isinstance(program, str) else program
        if self.btf_ext is None:
            return ProgramExtInfo((), (), ())
        lo, hi = prog.insn_offset, prog.insn_offset + prog.insn_count

        def pick(records: dict) -> tuple:
            return tuple(replace(r, insn=r.insn - lo) for r in records.get(prog.section, ())
                         if lo <= r.insn < hi)

        return ProgramExtInfo(pick(self.btf_ext.func_info), pick(self.btf_ext.line_info),
                              pick(self.btf_ext.core_relos))

    def __iter__(self) -> Iterator[Program]:
        return iter(self.programs)


def _read(data: bytes, name: str) -> BPFObject:
    elf = read_elf(data, file=name)
    by_name = {s.name: s for s in reversed(elf.sections)}  # first of a name wins
    if "maps" in by_name:
        raise ELFError("legacy map definitions in 'maps' section are not supported", file=name,
                       offset=by_name["maps"].offset)
    license_ = _license(by_name.get(LICENSE_SECTION))
    kern_version = _kern_version(by_name.get(VERSION_SECTION), elf, name)
    btf, btf_problem = _btf(by_name.get(BTF_SECTION), name)
    btf_ext = None
    ext_sec = by_name.get(BTF_EXT_SECTION)
    if ext_sec is not None:
        if btf is None:
            raise ELFError(".BTF.ext without .BTF", file=name, offset=ext_sec.offset)
        btf_ext = BTFExt.parse(ext_sec.data, btf, file=name, base_offset=ext_sec.offset)

    programs: list[Program] = []
    text_index = 0
    for sec in elf.sections:
        if sec.type == SectionType.PROGBITS and sec.is_exec and sec.size > 0:
            if sec.name == TEXT_SECTION:
                text_index = sec.index
            programs += find_programs(sec, elf.symbols, elf.byteorder, file=name)

    externs = collect_externs(btf, elf.symbols, file=name)
    fixup = datasec.fixup_datasecs(btf, elf.sections, elf.symbols, file=name)
    obj_name = datasec.object_name(name)
    maps: list[MapSpec] = []
    maps_sec = by_name.get(MAPS_SECTION)
    maps_datasec = None
    if maps_sec is not None:
        if btf is None:
            raise ELFError(f"DATASEC '{MAPS_SECTION}' not found (the object has no .BTF)", file=name)
        try:
            maps_datasec = fixup.datasec(btf, btf.find_by_name_kind(MAPS_SECTION, Kind.DATASEC))
        except NotFoundError:
            raise ELFError(f"DATASEC '{MAPS_SECTION}' not found", file=name) from None
        maps += parse_btf_maps(btf, maps_sec, maps_datasec, file=name)
    maps += datasec.global_data_maps(elf.sections, btf, obj_name, fixup)
    kcfg = kconfig_size(externs)
    if kcfg:
        maps.append(datasec.kconfig_map(kcfg, btf, obj_name, elf.symtab_index))

    ctx = RelocContext(sections=elf.sections, symbols=elf.symbols, text_index=text_index,
                       maps=maps, externs={e.symbol_index: e for e in externs},
                       subprograms=[p for p in programs if p.is_subprog], file=name)
    relocs: dict[str, list[Relocation]] = {}
    for rel_index, entries in elf.rels.items():
        target = elf.sections[elf.sections[rel_index].info]
        if target.type == SectionType.PROGBITS and target.is_exec and target.size > 0:
            for r in classify_section(target, entries, programs, ctx):
                relocs.setdefault(r.program, []).append(r)
    programs = [_with_calls(replace(p, relocations=tuple(relocs.get(p.name, ()))), ctx)
                for p in programs]

    if maps_datasec is not None and btf is not None:
        rel_maps = next((e for i, e in elf.rels.items() if elf.sections[i].info == maps_sec.index), ())
        entries = {p.name: (p.section_index, p.offset) for p in programs if not p.is_subprog}
        maps = collect_init_slots(btf, maps, rel_maps, elf.symbols, entries, maps_datasec,  # type: ignore[arg-type]
                                  file=name)

    entry_at = {(p.section_index, p.offset): p.name for p in programs if not p.is_subprog}
    struct_ops = collect_struct_ops(elf, btf, fixup, entry_at, file=name)
    return BPFObject(name=obj_name, file=name, byteorder=elf.byteorder, license=license_,
                     kern_version=kern_version, programs=tuple(programs), maps=tuple(maps),
                     externs=tuple(externs), btf=btf, btf_ext=btf_ext, sections=elf.sections,
                     symbols=elf.symbols, datasec_fixup=fixup, struct_ops=struct_ops,
                     btf_problem=btf_problem)


def _license(sec: Section | None) -> str:
    """libbpf's ``bpf_object__init_license``: up to the first NUL, at most 63 characters."""
    if sec is None:
        return ""
    raw = sec.data[:LICENSE_MAX - 1].split(b"\0", 1)[0]
    return raw.decode("utf-8", "replace")


def _kern_version(sec: Section | None, elf: ElfFile, file: str) -> int | None:
    if sec is None:
        return None
    if len(sec.data) != 4:
        raise ELFError(f"invalid kver section ({len(sec.data)} bytes, expected 4)", file=file,
                       offset=sec.offset)
    return struct.unpack("<I" if elf.byteorder == "little" else ">I", sec.data)[0]


def _btf(sec: Section | None, file: str) -> "tuple[BTF | None, str | None]":
    """The object's .BTF and, when it breaks only a kernel policy, that refusal's text."""
    from sigbpf.btf import BTF
    from sigbpf.btf.validate import parse_lenient

    if sec is None:
        return None, None
    if sec.type != SectionType.PROGBITS:
        raise ELFError(".BTF is not PROGBITS", file=file, offset=sec.offset)
    try:
        btf, policy = parse_lenient(BTF, sec.data, file=file)
        return btf, (f".BTF: {policy.message}" if policy is not None else None)
    except BTFError as err:
        # Offsets inside the blob become file offsets; say which section.
        if err.offset is not None:
            err.offset += sec.offset
        err.message = f".BTF: {err.message}"
        raise err.at(file=file)


def _with_calls(prog: Program, ctx: RelocContext) -> Program:
    """Fill :attr:`Program.calls`: subprograms called or taken by address, first-use order.

    A bpf-to-bpf call inside ``.text`` to a static function has no
    relocation (its ``imm`` is already relative); every other call and every
    callback address has one (libbpf's ``bpf_object__reloc_code``).
    """
    from sigbpf.asm import PseudoLdImm64
    from sigbpf.elf.programs import program_at

    by_slot = {r.prog_insn: r for r in prog.relocations}
    calls: dict[str, None] = {}
    i, n = 0, len(prog.insns)
    while i < n:
        insn = prog.insns[i]
        rel = by_slot.get(i)
        if rel is not None and rel.kind in (RelocKind.CALL, RelocKind.SUBPROG_ADDR):
            calls.setdefault(rel.target, None)
        elif rel is None and insn.is_pseudo_call:
            target = prog.insn_offset + i + insn.imm + 1
            sub = program_at(ctx.subprograms, prog.section_index, target) if prog.is_subprog else None
            if sub is None or sub.insn_offset != target:
                raise ELFError(f"prog '{prog.name}': bpf-to-bpf call to insn {target} of "
                               f"'{prog.section}' without relocation does not reach a subprogram",
                               file=ctx.file, insn=prog.insn_offset + i)
            calls.setdefault(sub.name, None)
        elif rel is None and insn.is_ld_imm64 and insn.src == PseudoLdImm64.FUNC:
            raise ELFError(f"prog '{prog.name}': missing subprog addr relo for insn #{i}",
                           file=ctx.file, insn=prog.insn_offset + i)
        i += 2 if insn.is_ld_imm64 else 1
    return replace(prog, calls=tuple(calls))
