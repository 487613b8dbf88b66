"""A tiny label-based assembler on top of :mod:`sigbpf.asm`, for writing the loader.

Jumps name a label, never a counted offset; ``ld_imm64`` forms (a blob
address, a map, a 64-bit constant known only at the end) are built by one
builder, :meth:`Asm.ld_imm64`.  Everything that depends on where things end up
(jump offsets, blob offsets, late constants such as the blob's hash) is
resolved in one place, :meth:`Asm.assemble`.  Labels and the emitters'
comments are kept as notes, so the loader disassembles readably.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Mapping, Union

from sigbpf.asm import Instruction, JmpOp, PseudoLdImm64, ja, jmp_imm, jmp_reg
from sigbpf.asm.opcodes import LD_IMM64_CODE
from sigbpf.errors import InstructionError

#: The loader's own fd_array slot of its data blob map (``ld_imm64 src_reg 5/6``, imm 0).
BLOB_MAP_INDEX = 0


@dataclass(frozen=True, slots=True)
class BlobAddr:
    """``&blob[name] + addend``: ``ld_imm64 src_reg 6`` (MAP_IDX_VALUE), imm 0, second imm the offset."""

    name: str
    addend: int = 0


@dataclass(frozen=True, slots=True)
class MapPtr:
    """The ``struct bpf_map *`` of fd_array slot *index*: ``ld_imm64 src_reg 5`` (MAP_IDX)."""

    index: int = BLOB_MAP_INDEX


@dataclass(frozen=True, slots=True)
class Const:
    """A 64-bit constant named *key*, given to :meth:`Asm.assemble` (e.g. a hash word)."""

    key: str


@dataclass(frozen=True, slots=True)
class Value:
    """A 64-bit constant known now."""

    value: int


Operand = Union[BlobAddr, MapPtr, Const, Value]


class NoteKind(IntEnum):
    """What a note on an instruction is."""

    LABEL = 1
    COMMENT = 2


@dataclass(frozen=True, slots=True)
class Note:
    """A label or an emitter's comment, before slot *insn*."""

    insn: int
    kind: NoteKind
    text: str


@dataclass(frozen=True, slots=True)
class Assembled:
    """The result: instruction slots and their notes (in slot order)."""

    insns: tuple[Instruction, ...]
    notes: tuple[Note, ...]


@dataclass(slots=True)
class _Item:
    insn: Instruction
    target: str | None = None  # label a jump goes to
    operand: Operand | None = None  # ld_imm64 operand (the item then takes two slots)

    @property
    def width(self) -> int:
        return 2 if self.operand is not None else 1


@dataclass
class Asm:
    """Instructions under construction; see the module docstring."""

    _items: list[_Item] = field(default_factory=list)
    _slot: int = 0
    _labels: dict[str, int] = field(default_factory=dict)
    _notes: list[Note] = field(default_factory=list)
    _fresh: int = 0

    @property
    def slot(self) -> int:
        """The slot index the next instruction gets."""
        return self._slot

    def fresh(self, stem: str) -> str:
        """A label name not used before (``stem.N``)."""
        self._fresh += 1
        return f"{stem}.{self._fresh}"

    def label(self, name: str) -> None:
        if name in self._labels:
            raise InstructionError(f"loader assembler: label {name!r} defined twice")
        self._labels[name] = self._slot
        self._notes.append(Note(self._slot, NoteKind.LABEL, name))

    def is_target(self, name: str) -> bool:
        """Whether a jump emitted so far goes to label *name*."""
        return any(item.target == name for item in self._items)

    def comment(self, text: str) -> None:
        self._notes.append(Note(self._slot, NoteKind.COMMENT, text))

    def emit(self, *insns: Instruction) -> None:
        """Plain one-slot instructions (no jump, no ld_imm64: use the builders below)."""
        for insn in insns:
            if insn.code == LD_IMM64_CODE:
                raise InstructionError("loader assembler: ld_imm64 goes through Asm.ld_imm64")
            self._items.append(_Item(insn))
            self._slot += 1

    def jmp_imm(self, op: JmpOp, dst: int, imm: int, target: str) -> None:
        """``if dst <op> imm goto target``."""
        self._items.append(_Item(jmp_imm(op, dst, imm, 0), target=target))
        self._slot += 1

    def jmp_reg(self, op: JmpOp, dst: int, src: int, target: str) -> None:
        """``if dst <op> src goto target``."""
        self._items.append(_Item(jmp_reg(op, dst, src, 0), target=target))
        self._slot += 1

    def goto(self, target: str) -> None:
        self._items.append(_Item(ja(0), target=target))
        self._slot += 1

    def ld_imm64(self, dst: int, operand: Operand) -> None:
        """``dst = operand`` in two slots; the pseudo form follows from the operand's type."""
        self._items.append(_Item(Instruction(LD_IMM64_CODE, dst), operand=operand))
        self._slot += 2

    def assemble(self, blob_offsets: Mapping[str, int],
                 consts: Mapping[str, int] | None = None) -> Assembled:
        """Resolve labels, blob offsets and constants; the final instruction slots."""
        consts = consts or {}
        out: list[Instruction] = []
        for item in self._items:
            here = len(out)
            insn = item.insn
            if item.target is not None:
                if item.target not in self._labels:
                    raise InstructionError(f"loader assembler: no label {item.target!r}", insn=here)
                off = self._labels[item.target] - here - 1
                if not -0x8000 <= off <= 0x7FFF:
                    raise InstructionError(f"loader assembler: jump to {item.target!r} out of "
                                           f"16-bit range ({off})", insn=here)
                insn = insn.replace(off=off)
            if item.operand is None:
                out.append(insn)
                continue
            src, low, high = _operand(item.operand, blob_offsets, consts, here)
            out.append(insn.replace(src=src, imm=low))
            out.append(Instruction(0, imm=high))
        return Assembled(tuple(out), tuple(self._notes))


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _operand(op: Operand, blob_offsets: Mapping[str, int], consts: Mapping[str, int],
             here: int) -> tuple[int, int, int]:
    """(src_reg, imm, second imm) of one ld_imm64 operand."""
    if isinstance(op, BlobAddr):
        if op.name not in blob_offsets:
            raise InstructionError(f"loader assembler: nothing named {op.name!r} in the blob",
                                   insn=here)
        return int(PseudoLdImm64.MAP_IDX_VALUE), BLOB_MAP_INDEX, blob_offsets[op.name] + op.addend
    if isinstance(op, MapPtr):
        return int(PseudoLdImm64.MAP_IDX), op.index, 0
    value = op.value if isinstance(op, Value) else consts.get(op.key)
    if value is None:
        raise InstructionError(f"loader assembler: no constant {op.key!r}", insn=here)
    value &= 0xFFFFFFFFFFFFFFFF
    return 0, _s32(value), _s32(value >> 32)


__all__ = ["Asm", "Assembled", "BlobAddr", "Const", "MapPtr", "Note", "NoteKind", "Operand",
           "Value", "BLOB_MAP_INDEX"]
