"""Linking one entry program with the subprograms it calls, the way libbpf does.

libbpf (``bpf_object__relocate_calls`` / ``bpf_object__reloc_code`` /
``bpf_object__append_subprog_code``) gives every entry program its own copy
of each ``.text`` subprogram it reaches, transitively: the entry function's
body first, then each subprogram appended at its first call (or callback
address), depth first, in instruction order.  That order is
:meth:`sigbpf.elf.BPFObject.subprograms_of`; this module lays the functions
out in it and then

* fixes every bpf-to-bpf call (``src_reg 1``): ``imm = callee_start - (insn + 1)``;
* turns every callback address (``ld_imm64`` of a ``.text`` function) into
  ``src_reg 4`` (``BPF_PSEUDO_FUNC``) with the same relative ``imm``;
* moves func_info and line_info to the linked program (``insn_off`` in
  instructions) and CO-RE relocations too (``insn_off`` in **bytes**, as
  libbpf's gen_loader passes them and the kernel's ``check_core_relo``
  expects), in layout order;
* re-bases every other relocation (maps, global data, kfuncs, ...) to its
  slot in the linked program, for :mod:`sigbpf.artifact.build` to apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sigbpf.artifact.format import CoreRelo, FuncInfo, LineInfo
from sigbpf.asm import Instruction, PseudoLdImm64
from sigbpf.errors import ELFError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.elf import BPFObject, Program, Relocation

__all__ = ["Placement", "PlacedRelocation", "LinkedProgram", "link_program"]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one function of the object sits in the linked program."""

    name: str
    start: int  # slot index in the linked program
    count: int


@dataclass(frozen=True, slots=True)
class PlacedRelocation:
    """A relocation that is not a call, at its slot in the linked program."""

    insn: int
    relocation: "Relocation"


@dataclass(frozen=True, slots=True)
class LinkedProgram:
    """An entry program with its subprograms appended and calls fixed."""

    name: str
    insns: tuple[Instruction, ...]
    layout: tuple[Placement, ...]
    func_info: tuple[FuncInfo, ...]
    line_info: tuple[LineInfo, ...]
    core_relos: tuple[CoreRelo, ...]
    relocations: tuple[PlacedRelocation, ...]


def link_program(obj: "BPFObject", entry: "Program") -> LinkedProgram:
    """Link *entry* (an entry program of *obj*) with the subprograms it reaches."""
    from sigbpf.elf import RelocKind
    from sigbpf.elf.programs import program_at

    functions = (entry, *obj.subprograms_of(entry))
    starts: dict[str, int] = {}
    layout: list[Placement] = []
    position = 0
    for func in functions:
        starts[func.name] = position
        layout.append(Placement(func.name, position, func.insn_count))
        position += func.insn_count

    insns: list[Instruction] = []
    func_info: list[FuncInfo] = []
    line_info: list[LineInfo] = []
    core_relos: list[CoreRelo] = []
    placed: list[PlacedRelocation] = []
    subprograms = list(obj.subprograms)

    def fail(message: str, func: "Program", local: int) -> ELFError:
        return ELFError(f"prog '{entry.name}': {message}", file=obj.file,
                        insn=func.insn_offset + local)

    for func in functions:
        base = starts[func.name]
        body = list(func.insns)
        relocated: set[int] = set()
        for rel in func.relocations:
            at = rel.prog_insn
            relocated.add(at)
            if rel.kind in (RelocKind.CALL, RelocKind.SUBPROG_ADDR):
                target = starts.get(rel.target)
                if target is None:  # pragma: no cover - subprograms_of covers every callee
                    raise fail(f"subprogram '{rel.target}' was not linked", func, at)
                imm = target - (base + at) - 1
                if rel.kind == RelocKind.CALL:
                    body[at] = body[at].replace(imm=imm)
                else:
                    body[at] = body[at].replace(src=PseudoLdImm64.FUNC, imm=imm)
            else:
                placed.append(PlacedRelocation(base + at, rel))
        # A call between two .text functions may have no relocation: its imm
        # is relative to the section layout, which linking changes.
        for local, insn in enumerate(body):
            # (second slots of an ld_imm64 have code 0 and are never calls)
            if local in relocated or not insn.is_pseudo_call or not func.is_subprog:
                continue
            target_slot = func.insn_offset + local + insn.imm + 1
            callee = program_at(subprograms, func.section_index, target_slot)
            if callee is None or callee.insn_offset != target_slot or callee.name not in starts:
                raise fail(f"bpf-to-bpf call to .text insn {target_slot} reaches no linked "
                           "subprogram", func, local)
            body[local] = insn.replace(imm=starts[callee.name] - (base + local) - 1)
        insns.extend(body)

        ext = obj.ext_info_of(func)
        func_info.extend(FuncInfo(base + r.insn, r.type_id) for r in ext.func_info)
        line_info.extend(LineInfo(base + r.insn, r.file_name_off, r.line_off, r.line_col)
                         for r in ext.line_info)
        core_relos.extend(CoreRelo(8 * (base + r.insn), r.type_id, r.access_str_off, int(r.kind))
                          for r in ext.core_relos)

    placed.sort(key=lambda p: p.insn)
    return LinkedProgram(entry.name, tuple(insns), tuple(layout), tuple(func_info),
                         tuple(line_info), tuple(core_relos), tuple(placed))
