"""Disassembler whose text is what ``llvm-objdump-19 -d --no-show-raw-insn`` prints.

The syntax is LLVM's BPF assembly ("pseudo-C"): ``r1 = *(u32 *)(r2 + 0x4)``,
``if w1 s> 0x3 goto +0x2 <prog+0x40>``, ``r1 = 0x0 ll``, ``call 0x1``.  The
rules below were derived from LLVM 19's BPF instruction tables and its
disassembler, and checked field by field against ``llvm-objdump-19`` over
every opcode byte (see ``tests/test_asm_llvm.py``), including LLVM's quirks:

* Fields LLVM does not decode are ignored (``r1 += r2`` with a non-zero
  ``imm`` still prints as ``r1 += r2``); registers above r11 and unknown
  field values print ``<unknown>``.
* Without ``alu32`` (llvm-objdump's default, no ``--mattr=+alu32``) 32-bit
  loads/stores print with ``r`` registers and only ``lock ... +=`` is known
  for 32-bit atomics; with ``alu32`` they use ``w`` registers.
* ``ld_imm64`` with a pseudo ``src_reg`` prints as ``ld_pseudo\\tr1, 0x1, imm``
  (imm: the low 32 bits only, as LLVM does).
* Jump targets are annotated ``<symbol+0xoff>`` from the byte address
  ``(index + 1 + offset) * 8`` when a symbol table is given.

Indexes are slot indexes, as in the kernel's logs.
"""

from __future__ import annotations

import bisect
from typing import Iterator, Mapping, Sequence

from sigbpf.asm.instruction import Instruction
from sigbpf.asm.opcodes import LD_IMM64_CODE, AluOp, InsnClass, JmpOp, Mode, Size
from sigbpf.errors import InstructionError

UNKNOWN = "<unknown>"

_ALU_SYMBOL = {
    AluOp.ADD: "+=", AluOp.SUB: "-=", AluOp.MUL: "*=", AluOp.DIV: "/=", AluOp.OR: "|=",
    AluOp.AND: "&=", AluOp.LSH: "<<=", AluOp.RSH: ">>=", AluOp.MOD: "%=", AluOp.XOR: "^=",
    AluOp.ARSH: "s>>=",
}
_JMP_SYMBOL = {
    JmpOp.JEQ: "==", JmpOp.JGT: ">", JmpOp.JGE: ">=", JmpOp.JSET: "&", JmpOp.JNE: "!=",
    JmpOp.JSGT: "s>", JmpOp.JSGE: "s>=", JmpOp.JLT: "<", JmpOp.JLE: "<=",
    JmpOp.JSLT: "s<", JmpOp.JSLE: "s<=",
}
_SIZE_TYPE = {Size.W: "u32", Size.H: "u16", Size.B: "u8", Size.DW: "u64"}
_SIZE_STYPE = {Size.W: "s32", Size.H: "s16", Size.B: "s8"}
_ATOMIC_NAME = {0x00: ("+", "add"), 0x40: ("|", "or"), 0x50: ("&", "and"), 0xA0: ("^", "xor")}
_MAX_REG = 11  # LLVM knows r0..r11 (r11 is its internal stack register)


class _Unknown(Exception):
    """LLVM's decoder would fail on this slot."""


def _hex(value: int) -> str:
    """LLVM's ``formatImm`` in hex mode: ``0x1f``, ``-0x1``."""
    return f"-{-value:#x}" if value < 0 else f"{value:#x}"


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _s64(value: int) -> int:
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value & (1 << 63) else value


def _reg(num: int, wide: bool = True) -> str:
    if num > _MAX_REG:
        raise _Unknown
    return f"{'r' if wide else 'w'}{num}"


def _mem(base: int, off: int) -> str:
    sign = "+" if off >= 0 else "-"
    return f"{_reg(base)} {sign} {_hex(abs(off))}"


def _rel(value: int) -> str:
    return f"+{_hex(value)}" if value >= 0 else _hex(value)


def _alu(insn: Instruction) -> str:
    wide = insn.code & 0x07 == InsnClass.ALU64
    op = insn.code & 0xF0
    is_x = bool(insn.code & 0x08)
    dst = _reg(insn.dst, wide)
    if op == AluOp.END:
        if insn.imm not in (16, 32, 64):
            raise _Unknown
        if wide:
            if is_x:
                raise _Unknown
            return f"{_reg(insn.dst)} = bswap{insn.imm} {_reg(insn.dst)}"
        kind = "be" if is_x else "le"
        return f"{_reg(insn.dst)} = {kind}{insn.imm} {_reg(insn.dst)}"
    if op == AluOp.NEG:
        if is_x:
            raise _Unknown
        return f"{dst} = -{dst}"
    if op == AluOp.MOV:
        if is_x:
            if insn.off == 0:
                return f"{dst} = {_reg(insn.src, wide)}"
            if insn.off in ((8, 16, 32) if wide else (8, 16)):
                return f"{dst} = (s{insn.off}){_reg(insn.src, wide)}"
            if wide and insn.off == 1:
                imm = insn.imm & 0xFFFFFFFF
                return (f"{dst} = addr_space_cast({_reg(insn.src)}, "
                        f"{_hex(imm >> 16)}, {_hex(imm & 0xFFFF)})")
            raise _Unknown
        if insn.off != 0:
            raise _Unknown
        return f"{dst} = {_hex(insn.imm)}"
    if op not in _ALU_SYMBOL:
        raise _Unknown
    symbol = _ALU_SYMBOL[AluOp(op)]
    if insn.off == 1 and op in (AluOp.DIV, AluOp.MOD):
        symbol = "s" + symbol
    elif insn.off != 0:
        raise _Unknown
    operand = _reg(insn.src, wide) if is_x else _hex(insn.imm)
    return f"{dst} {symbol} {operand}"


def _jmp(insn: Instruction) -> str:
    wide = insn.code & 0x07 == InsnClass.JMP
    op = insn.code & 0xF0
    is_x = bool(insn.code & 0x08)
    if op == JmpOp.JA:
        if is_x:
            raise _Unknown
        return f"goto {_rel(insn.off)}" if wide else f"gotol {_rel(insn.imm)}"
    if op == JmpOp.CALL:
        if not wide:
            raise _Unknown
        return f"callx {_reg(insn.dst)}" if is_x else f"call {_hex(insn.imm)}"
    if op == JmpOp.EXIT:
        if not wide or is_x or insn.imm != 0:
            raise _Unknown
        return "exit"
    if op == JmpOp.JCOND:
        if not wide or is_x:
            raise _Unknown
        return f"may_goto {_rel(insn.off)}"
    if op not in _JMP_SYMBOL:
        raise _Unknown
    operand = _reg(insn.src, wide) if is_x else _hex(insn.imm)
    return f"if {_reg(insn.dst, wide)} {_JMP_SYMBOL[JmpOp(op)]} {operand} goto {_rel(insn.off)}"


def _ld(insn: Instruction, high: int | None) -> str:
    mode = insn.code & 0xE0
    size = Size(insn.code & 0x18)
    if insn.code == LD_IMM64_CODE:
        if insn.off != 0:
            raise _Unknown
        if high is None:
            raise InstructionError("ld_imm64 missing its second slot (truncated program)")
        if insn.src == 0:
            value = _s64((high & 0xFFFFFFFF) << 32 | (insn.imm & 0xFFFFFFFF))
            return f"{_reg(insn.dst)} = {_hex(value)} ll"
        return f"ld_pseudo\t{_reg(insn.dst)}, {_hex(insn.src)}, {_hex(insn.imm & 0xFFFFFFFF)}"
    if size is Size.DW:
        raise _Unknown
    if mode == Mode.ABS:
        return f"r0 = *({_SIZE_TYPE[size]} *)skb[{_hex(insn.imm)}]"
    if mode == Mode.IND:
        return f"r0 = *({_SIZE_TYPE[size]} *)skb[{_reg(insn.src)}]"
    raise _Unknown


def _ldx(insn: Instruction, alu32: bool) -> str:
    mode = insn.code & 0xE0
    size = Size(insn.code & 0x18)
    if mode == Mode.MEM:
        wide = size is Size.DW or not alu32
        return f"{_reg(insn.dst, wide)} = *({_SIZE_TYPE[size]} *)({_mem(insn.src, insn.off)})"
    if mode == Mode.MEMSX and size is not Size.DW:
        return f"{_reg(insn.dst)} = *({_SIZE_STYPE[size]} *)({_mem(insn.src, insn.off)})"
    raise _Unknown


def _st(insn: Instruction) -> str:
    if insn.code & 0xE0 != Mode.MEM:
        raise _Unknown
    size = Size(insn.code & 0x18)
    return f"*({_SIZE_TYPE[size]} *)({_mem(insn.dst, insn.off)}) = {_hex(insn.imm)}"


def _stx(insn: Instruction, alu32: bool) -> str:
    mode = insn.code & 0xE0
    size = Size(insn.code & 0x18)
    if mode == Mode.MEM:
        wide = size is Size.DW or not alu32
        return f"*({_SIZE_TYPE[size]} *)({_mem(insn.dst, insn.off)}) = {_reg(insn.src, wide)}"
    if mode != Mode.ATOMIC or size not in (Size.W, Size.DW):
        raise _Unknown
    op, fetch = insn.imm & 0xF0, insn.imm & 0x0F
    ptr = _SIZE_TYPE[size]
    if size is Size.W and not alu32:
        # LLVM's 64-bit table only has the old XADDW: any low nibble.
        if op != 0x00:
            raise _Unknown
        return f"lock *(u32 *)({_mem(insn.dst, insn.off)}) += {_reg(insn.src)}"
    wide = size is Size.DW
    val = _reg(insn.src, wide)
    addr = _mem(insn.dst, insn.off)
    if op in _ATOMIC_NAME:
        symbol, name = _ATOMIC_NAME[op]
        if fetch == 1:
            return f"{val} = atomic_fetch_{name}(({ptr} *)({addr}), {val})"
        return f"lock *({ptr} *)({addr}) {symbol}= {val}"
    if fetch != 1:
        raise _Unknown
    if op == 0xE0:
        return f"{val} = xchg_64({addr}, {val})" if wide else f"{val} = xchg32_32({addr}, {val})"
    if op == 0xF0:
        if wide:
            return f"r0 = cmpxchg_64({addr}, r0, {val})"
        return f"w0 = cmpxchg32_32({addr}, w0, {val})"
    raise _Unknown


def format_insn(insns: Sequence[Instruction], index: int, *, alu32: bool = False) -> str:
    """LLVM's text for the instruction starting at slot ``index`` (no jump annotation).

    Returns ``"<unknown>"`` where llvm-objdump does.  An ld_imm64 in the last
    slot raises :class:`InstructionError` (``insn=index``): the program is
    truncated.
    """
    insn = insns[index]
    cls = insn.code & 0x07
    try:
        if cls in (InsnClass.ALU, InsnClass.ALU64):
            return _alu(insn)
        if cls in (InsnClass.JMP, InsnClass.JMP32):
            return _jmp(insn)
        if cls == InsnClass.LD:
            high = insns[index + 1].imm if index + 1 < len(insns) else None
            return _ld(insn, high)
        if cls == InsnClass.LDX:
            return _ldx(insn, alu32)
        if cls == InsnClass.ST:
            return _st(insn)
        return _stx(insn, alu32)
    except _Unknown:
        return UNKNOWN
    except InstructionError as err:
        raise err.at(insn=index)


def insn_width(insns: Sequence[Instruction], index: int) -> int:
    """Slots llvm-objdump consumes at ``index``: 2 for a decodable ld_imm64, else 1."""
    insn = insns[index]
    if insn.code == LD_IMM64_CODE and insn.off == 0 and insn.dst <= _MAX_REG:
        return 2
    return 1


def branch_target(insn: Instruction, index: int) -> int | None:
    """Byte address llvm-objdump computes for a jump at slot ``index``, or None.

    Only jumps (goto, gotol, conditional, may_goto) are annotated, never calls.
    """
    return branch_target_at(insn, index * 8)


def branch_target_at(insn: Instruction, addr: int) -> int | None:
    """Like :func:`branch_target` for an instruction at byte address ``addr``.

    The arithmetic is LLVM's: ``addr + 8 + offset * 8`` modulo 2**64.
    """
    if insn.code & 0x07 not in (InsnClass.JMP, InsnClass.JMP32):
        return None
    op = insn.code & 0xF0
    if op in (JmpOp.CALL, JmpOp.EXIT):
        return None
    rel = insn.imm if insn.code == InsnClass.JMP32 | JmpOp.JA else insn.off
    return (addr + 8 + rel * 8) & 0xFFFFFFFFFFFFFFFF


class Symbolizer:
    """Names byte addresses inside one section like llvm-objdump: ``<sym+0x10>``.

    ``symbols`` maps a byte offset to a name; the nearest symbol at or below
    an address names it, even past the end of the section (as llvm-objdump
    does for a wrapped or out-of-range target).  Addresses below the first
    symbol get no annotation.
    """

    def __init__(self, symbols: Mapping[int, str] | Sequence[tuple[int, str]]) -> None:
        pairs = sorted(dict(symbols).items())
        self._addrs = [a for a, _ in pairs]
        self._names = [n for _, n in pairs]

    def __call__(self, addr: int) -> str | None:
        pos = bisect.bisect_right(self._addrs, addr) - 1
        if pos < 0:
            return None
        base, name = self._addrs[pos], self._names[pos]
        return f"<{name}>" if addr == base else f"<{name}+{addr - base:#x}>"


def iter_disassembly(
    insns: Sequence[Instruction],
    *,
    alu32: bool = False,
    symbols: Mapping[int, str] | Sequence[tuple[int, str]] | Symbolizer | None = None,
) -> Iterator[tuple[int, str]]:
    """``(slot index, text)`` for each instruction, skipping ld_imm64 second slots."""
    if symbols is not None and not isinstance(symbols, Symbolizer):
        symbols = Symbolizer(symbols)
    i, n = 0, len(insns)
    while i < n:
        text = format_insn(insns, i, alu32=alu32)
        if symbols is not None and text != UNKNOWN:
            target = branch_target(insns[i], i)
            label = symbols(target) if target is not None else None
            if label:
                text = f"{text} {label}"
        yield i, text
        i += insn_width(insns, i) if text != UNKNOWN else 1


def disassemble(
    insns: Sequence[Instruction],
    *,
    alu32: bool = False,
    symbols: Mapping[int, str] | Sequence[tuple[int, str]] | None = None,
) -> list[str]:
    """One string per slot: ``result[i]`` is the text of the instruction at slot ``i``.

    The second slot of an ld_imm64 holds ``""``.  ``symbols`` (byte offset ->
    name) enables llvm-objdump's ``<name+0xoff>`` jump annotations.
    """
    out = [""] * len(insns)
    for index, text in iter_disassembly(insns, alu32=alu32, symbols=symbols):
        out[index] = text
    return out
