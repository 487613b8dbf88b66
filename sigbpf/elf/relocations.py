"""Relocations of program code (``.rel<section>``), classified like libbpf.

Each ``Elf64_Rel`` of an executable section names an instruction slot
(``r_offset / 8``) and a symbol.  :func:`classify` decides what the loader
must do there, following libbpf's ``bpf_program__record_reloc`` in its order:

1. the symbol is an extern (undefined NOTYPE GLOBAL/WEAK): a CALL is a
   **kfunc call** (``RELO_EXTERN_CALL``); an ``ld_imm64`` loads the address of
   a **ksym variable**, a **kconfig** value, or a **kfunc address**
   (``bpf_ksym_exists``; ``RELO_EXTERN_LD64``);
2. a CALL (it must be ``src_reg = BPF_PSEUDO_CALL``) against a ``.text``
   symbol: a bpf-to-bpf **call**; target slot ``st_value / 8 + imm + 1``;
3. an ``ld_imm64`` against a ``.text`` function or section symbol: a
   **subprogram address** (callback, ``BPF_PSEUDO_FUNC``); target slot
   ``(st_value + imm) / 8``;
4. an ``ld_imm64`` against a symbol in ``.maps``: a **map** reference (the
   map whose offset is ``st_value``);
5. an ``ld_imm64`` against ``.data*``/``.rodata*``/``.bss*``: **global data**;
   the map value offset is ``st_value`` + the instruction's ``imm``.

Any other instruction or symbol is an error with libbpf's message, the
file and the instruction index.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from sigbpf.asm import PseudoCall
from sigbpf.elf.datasec import data_kind
from sigbpf.elf.maps import MAPS_SECTION, MapKind, MapSpec
from sigbpf.elf.sections import SHN_LORESERVE, Section, Symbol, SymbolBinding, SymbolType
from sigbpf.errors import ELFError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.elf.externs import Extern
    from sigbpf.elf.programs import Program
    from sigbpf.elf.sections import RelEntry

INSN_SIZE = 8


class RelocKind(IntEnum):
    """What a relocated instruction refers to (libbpf's ``enum reloc_type``, externs split)."""

    MAP = 1  # RELO_LD64: ld_imm64 of a BTF-defined map
    DATA = 2  # RELO_DATA: ld_imm64 of a global data map value (+ offset)
    CALL = 3  # RELO_CALL: bpf-to-bpf call into .text
    SUBPROG_ADDR = 4  # RELO_SUBPROG_ADDR: ld_imm64 of a .text function (callback)
    KFUNC_CALL = 5  # RELO_EXTERN_CALL: call of an extern kfunc
    KFUNC_ADDR = 6  # RELO_EXTERN_LD64 of a kfunc: its address (bpf_ksym_exists)
    KSYM = 7  # RELO_EXTERN_LD64 of a ksym variable
    KCONFIG = 8  # RELO_EXTERN_LD64 of a kconfig extern (a .kconfig map value)


@dataclass(frozen=True, slots=True)
class Relocation:
    """One classified relocation.

    ``insn`` is the slot index in the section, ``prog_insn`` the slot index
    in ``program``.  ``target`` names what is referred to: a map name (MAP,
    DATA, KCONFIG: the ``.kconfig`` map), a subprogram (CALL, SUBPROG_ADDR)
    or an extern (KFUNC_*, KSYM, KCONFIG: the extern's name is ``symbol``).
    ``map_index`` indexes :attr:`BPFObject.maps`; ``offset`` is the byte
    offset into the map value for DATA (``st_value``; the loader adds the
    instruction's ``imm``) and KCONFIG, and the target slot in ``.text``
    for CALL and SUBPROG_ADDR.
    """

    section: str
    insn: int
    program: str
    prog_insn: int
    symbol: str
    kind: RelocKind
    target: str
    map_index: int | None = None
    offset: int = 0
    weak: bool = False

    @property
    def is_extern(self) -> bool:
        return self.kind in (RelocKind.KFUNC_CALL, RelocKind.KFUNC_ADDR, RelocKind.KSYM,
                             RelocKind.KCONFIG)


@dataclass(frozen=True, slots=True)
class RelocContext:
    """What classification looks at, gathered once per object."""

    sections: tuple[Section, ...]
    symbols: tuple[Symbol, ...]
    text_index: int
    maps: list[MapSpec]
    externs: dict[int, "Extern"]  # by symbol index
    subprograms: list["Program"]  # the .text programs
    file: str | None


def classify_section(section: Section, rels: "tuple[RelEntry, ...]", programs: list["Program"],
                     ctx: RelocContext) -> list[Relocation]:
    """Classify every relocation of the executable *section* (libbpf's collect_prog_relos)."""
    from sigbpf.elf.programs import program_at

    out: list[Relocation] = []
    for n, rel in enumerate(rels):
        sym = ctx.symbols[rel.symbol]
        if rel.offset % INSN_SIZE or rel.offset >= section.size:
            raise ELFError(f"sec '.rel{section.name}': invalid offset {rel.offset:#x} for relo #{n}",
                           file=ctx.file, offset=section.offset + min(rel.offset, section.size))
        insn_idx = rel.offset // INSN_SIZE
        if sym.type == SymbolType.SECTION and not sym.name and 0 < sym.shndx < len(ctx.sections):
            sym_name = ctx.sections[sym.shndx].name
        else:
            sym_name = sym.name or "<?"
        prog = program_at(programs, section.index, insn_idx)
        if prog is None:
            continue  # libbpf: "probably overridden weak function, skipping"
        out.append(_record(prog, insn_idx, sym_name, sym, ctx))
    return out


def _record(prog: "Program", insn_idx: int, sym_name: str, sym: Symbol, ctx: RelocContext) -> Relocation:
    """libbpf's ``bpf_program__record_reloc`` for one relocation."""
    from sigbpf.elf.externs import ExternKind

    local = insn_idx - prog.insn_offset
    insn = prog.insns[local]
    file = ctx.file

    def fail(msg: str) -> ELFError:
        return ELFError(f"prog '{prog.name}': {msg}", file=file, insn=insn_idx)

    def make(kind: RelocKind, target: str, **kw: object) -> Relocation:
        return Relocation(section=prog.section, insn=insn_idx, program=prog.name, prog_insn=local,
                          symbol=sym_name, kind=kind, target=target, **kw)  # type: ignore[arg-type]

    is_call = insn.is_call
    is_ld64 = insn.is_ld_imm64
    if not is_call and not is_ld64:
        raise fail(f"invalid relo against '{sym_name}' for insns[{insn_idx}].code {insn.code:#x}")
    if sym.is_extern:
        ext = ctx.externs.get(sym.index)
        if ext is None:
            raise fail(f"extern relo failed to find extern for '{sym_name}' ({sym.index})")
        if is_call:
            if ext.kind != ExternKind.KFUNC:
                raise fail(f"call of extern '{ext.name}', which is not a kfunc")
            return make(RelocKind.KFUNC_CALL, ext.name, weak=ext.weak)
        if ext.kind == ExternKind.KFUNC:
            return make(RelocKind.KFUNC_ADDR, ext.name, weak=ext.weak)
        if ext.kind == ExternKind.KSYM:
            return make(RelocKind.KSYM, ext.name, weak=ext.weak)
        kconfig = next((i for i, m in enumerate(ctx.maps) if m.kind == MapKind.KCONFIG), None)
        return make(RelocKind.KCONFIG, ctx.maps[kconfig].name if kconfig is not None else ".kconfig",
                    map_index=kconfig, offset=ext.kconfig_offset, weak=ext.weak)
    shndx = sym.shndx
    if is_call:
        if insn.src != PseudoCall.CALL:
            raise fail("incorrect bpf_call opcode")
        if not shndx or shndx != ctx.text_index:
            sec = ctx.sections[shndx].name if 0 < shndx < len(ctx.sections) else str(shndx)
            raise fail(f"bad call relo against '{sym_name}' in section '{sec}'")
        if sym.value % INSN_SIZE:
            raise fail(f"bad call relo against '{sym_name}' at offset {sym.value}")
        target = sym.value // INSN_SIZE + insn.imm + 1
        return make(RelocKind.CALL, _subprog_name(target, ctx, fail), offset=target)
    if not shndx or shndx >= SHN_LORESERVE or shndx >= len(ctx.sections):
        raise fail(f"invalid relo against '{sym_name}' in special section {shndx:#x}; "
                   "forgot to initialize global var?..")
    if shndx == ctx.text_index and (
            (sym.bind == SymbolBinding.LOCAL and sym.type == SymbolType.SECTION)
            or (sym.bind in (SymbolBinding.GLOBAL, SymbolBinding.WEAK) and sym.type == SymbolType.FUNC)):
        if sym.value % INSN_SIZE or insn.imm % INSN_SIZE:
            raise fail(f"bad subprog addr relo against '{sym_name}' at offset {sym.value}+{insn.imm}")
        target = (sym.value + insn.imm) // INSN_SIZE
        return make(RelocKind.SUBPROG_ADDR, _subprog_name(target, ctx, fail), offset=target)
    sec = ctx.sections[shndx]
    if sec.name == MAPS_SECTION:
        for i, m in enumerate(ctx.maps):
            if m.kind == MapKind.USER and m.section_index == shndx and m.section_offset == sym.value:
                return make(RelocKind.MAP, m.name, map_index=i)
        raise fail(f"map relo failed to find map for section '{sec.name}', off {sym.value}")
    if data_kind(sec) is None:
        raise fail(f"bad data relo against section '{sec.name}'")
    for i, m in enumerate(ctx.maps):
        if m.kind != MapKind.USER and m.section_index == shndx:
            return make(RelocKind.DATA, m.name, map_index=i, offset=sym.value)
    raise fail(f"data relo failed to find map for section '{sec.name}'")


def _subprog_name(target: int, ctx: RelocContext, fail) -> str:
    from sigbpf.elf.programs import program_at

    sub = program_at(ctx.subprograms, ctx.text_index, target)
    if sub is None:
        raise fail(f"no .text subprogram at insn {target} for the call")
    if sub.insn_offset != target:
        raise fail(f"call into the middle of subprogram '{sub.name}' (.text insn {target})")
    return sub.name
