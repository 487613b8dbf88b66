"""One BPF instruction slot (``struct bpf_insn``): decode, encode, inspect, build.

An :class:`Instruction` is exactly one 8-byte slot::

    struct bpf_insn { __u8 code; __u8 dst_reg:4, src_reg:4; __s16 off; __s32 imm; };

An ``ld_imm64`` takes two consecutive slots (the second has ``code == 0`` and
carries the high 32 bits in ``imm``).  Instruction indexes are slot indexes,
as the kernel counts them in its logs (``insn %d``).

Byte order: in little-endian objects the register byte is ``src << 4 | dst``;
in big-endian (bpfeb) objects the nibbles are swapped (``dst << 4 | src``),
and ``off``/``imm`` are big-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace as _dc_replace
from typing import Iterable, Literal, Sequence

from sigbpf.asm.opcodes import (
    CALL_CODE,
    CALLX_CODE,
    EXIT_CODE,
    INSN_SIZE,
    LD_IMM64_CODE,
    AluOp,
    AtomicOp,
    InsnClass,
    JmpOp,
    Mode,
    PseudoCall,
    PseudoLdImm64,
    Size,
    Source,
)
from sigbpf.errors import InstructionError

ByteOrder = Literal["little", "big"]

_STRUCT = {"little": struct.Struct("<BBhi"), "big": struct.Struct(">BBhi")}


def _known_codes() -> frozenset[int]:
    """The kernel's opcode table (``bpf_opcode_in_insntable``, 6.18).

    ``callx`` (``BPF_JMP | BPF_CALL | BPF_X``) is LLVM's, not the kernel's:
    the verifier answers "unknown opcode 8d", and so does :func:`check`.
    """
    codes: set[int] = set()
    for cls in (InsnClass.ALU, InsnClass.ALU64):
        for op in AluOp:
            if op is AluOp.END:
                continue
            codes.add(cls | op | Source.K)
            if op is not AluOp.NEG:
                codes.add(cls | op | Source.X)
    codes |= {InsnClass.ALU | AluOp.END | Source.K, InsnClass.ALU | AluOp.END | Source.X,
              InsnClass.ALU64 | AluOp.END | Source.K}
    for cls in (InsnClass.JMP, InsnClass.JMP32):
        codes.add(cls | JmpOp.JA | Source.K)
        for op in JmpOp:
            if op in (JmpOp.JA, JmpOp.CALL, JmpOp.EXIT, JmpOp.JCOND):
                continue
            codes.add(cls | op | Source.K)
            codes.add(cls | op | Source.X)
    codes |= {CALL_CODE, EXIT_CODE, InsnClass.JMP | JmpOp.JCOND | Source.K}
    codes.add(LD_IMM64_CODE)
    for mode in (Mode.ABS, Mode.IND):
        for size in (Size.W, Size.H, Size.B):
            codes.add(InsnClass.LD | mode | size)
    for size in Size:
        codes.add(InsnClass.LDX | Mode.MEM | size)
        codes.add(InsnClass.ST | Mode.MEM | size)
        codes.add(InsnClass.STX | Mode.MEM | size)
        codes.add(InsnClass.STX | Mode.ATOMIC | size)
    for size in (Size.W, Size.H, Size.B):
        codes.add(InsnClass.LDX | Mode.MEMSX | size)
    return frozenset(int(c) for c in codes)


#: Every ``code`` byte the kernel's verifier knows (the second slot of an
#: ld_imm64, code 0, is not in it).  Checked against the running kernel in
#: tests/test_asm_kernel.py.
KNOWN_CODES: frozenset[int] = _known_codes()

_ATOMIC_OPS_W_DW = frozenset(int(op) for op in AtomicOp)
_ATOMIC_OPS_B_H = frozenset({int(AtomicOp.LOAD_ACQ), int(AtomicOp.STORE_REL)})


@dataclass(frozen=True, slots=True)
class Instruction:
    """One 8-byte instruction slot, field for field like ``struct bpf_insn``.

    ``off`` is a signed 16-bit and ``imm`` a signed 32-bit value; ``dst`` and
    ``src`` are 4-bit register numbers.  Out-of-range values raise
    :class:`InstructionError` at construction.
    """

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.code <= 0xFF and 0 <= self.dst <= 0xF and 0 <= self.src <= 0xF
                and -0x8000 <= self.off <= 0x7FFF and -0x80000000 <= self.imm <= 0x7FFFFFFF):
            raise InstructionError(
                f"instruction field out of range: code={self.code:#x} dst={self.dst} "
                f"src={self.src} off={self.off} imm={self.imm}")

    # ---------------------------------------------------------------- bytes
    @classmethod
    def decode(cls, data: bytes, byteorder: ByteOrder = "little") -> list["Instruction"]:
        """Split raw instruction bytes into slots.

        Raises :class:`InstructionError` (with the byte offset of the trailing
        partial slot) when ``len(data)`` is not a multiple of 8.  Decoding does
        not judge the instructions: use :func:`check` for that.
        """
        if byteorder not in _STRUCT:
            raise ValueError(f"byteorder must be 'little' or 'big', not {byteorder!r}")
        data = bytes(data)
        rest = len(data) % INSN_SIZE
        if rest:
            raise InstructionError(
                f"instruction bytes not a multiple of {INSN_SIZE} "
                f"({len(data)} bytes, {rest} left over)",
                offset=len(data) - rest)
        new = object.__new__
        setattr_ = object.__setattr__
        out: list[Instruction] = []
        big = byteorder == "big"
        for code, regs, off, imm in _STRUCT[byteorder].iter_unpack(data):
            insn = new(cls)
            setattr_(insn, "code", code)
            if big:
                setattr_(insn, "dst", regs >> 4)
                setattr_(insn, "src", regs & 0xF)
            else:
                setattr_(insn, "dst", regs & 0xF)
                setattr_(insn, "src", regs >> 4)
            setattr_(insn, "off", off)
            setattr_(insn, "imm", imm)
            out.append(insn)
        return out

    @staticmethod
    def encode(insns: Iterable["Instruction"], byteorder: ByteOrder = "little") -> bytes:
        """The raw bytes of ``insns`` (8 bytes a slot), inverse of :meth:`decode`."""
        if byteorder not in _STRUCT:
            raise ValueError(f"byteorder must be 'little' or 'big', not {byteorder!r}")
        pack = _STRUCT[byteorder].pack
        big = byteorder == "big"
        return b"".join(
            pack(i.code, (i.dst << 4 | i.src) if big else (i.src << 4 | i.dst), i.off, i.imm)
            for i in insns)

    def to_bytes(self, byteorder: ByteOrder = "little") -> bytes:
        """This one slot as 8 bytes."""
        return Instruction.encode((self,), byteorder)

    def replace(self, **changes: int) -> "Instruction":
        """A copy with some fields changed (``insn.replace(src=2, imm=vmlinux_id)``)."""
        return _dc_replace(self, **changes)

    # ----------------------------------------------------------- opcode fields
    @property
    def cls(self) -> InsnClass:
        return InsnClass(self.code & 0x07)

    @property
    def op(self) -> int:
        """``BPF_OP(code)``: an :class:`AluOp` or :class:`JmpOp` value for ALU/JMP classes."""
        return self.code & 0xF0

    @property
    def source(self) -> Source:
        return Source(self.code & 0x08)

    @property
    def size(self) -> Size:
        return Size(self.code & 0x18)

    @property
    def mode(self) -> int:
        """``BPF_MODE(code)``; a :class:`Mode` value for valid load/store codes."""
        return self.code & 0xE0

    @property
    def unsigned_imm(self) -> int:
        return self.imm & 0xFFFFFFFF

    # ------------------------------------------------------------ predicates
    @property
    def is_alu(self) -> bool:
        return self.code & 0x07 in (InsnClass.ALU, InsnClass.ALU64)

    @property
    def is_ld_imm64(self) -> bool:
        """First slot of a 16-byte ``ld_imm64`` (``BPF_LD | BPF_IMM | BPF_DW``)."""
        return self.code == LD_IMM64_CODE

    @property
    def is_call(self) -> bool:
        """``BPF_JMP | BPF_CALL`` with an immediate target (helper, bpf-to-bpf or kfunc)."""
        return self.code == CALL_CODE

    @property
    def is_callx(self) -> bool:
        return self.code == CALLX_CODE

    @property
    def is_helper_call(self) -> bool:
        return self.code == CALL_CODE and self.src == PseudoCall.HELPER

    @property
    def is_pseudo_call(self) -> bool:
        """bpf-to-bpf call (``src_reg == BPF_PSEUDO_CALL``); target is ``index + imm + 1``."""
        return self.code == CALL_CODE and self.src == PseudoCall.CALL

    @property
    def is_kfunc_call(self) -> bool:
        """kfunc call by vmlinux/module BTF id (``src_reg == BPF_PSEUDO_KFUNC_CALL``)."""
        return self.code == CALL_CODE and self.src == PseudoCall.KFUNC_CALL

    @property
    def is_prog_btf_kfunc_call(self) -> bool:
        """The seed's loader-style kfunc call (``src_reg == BPF_PSEUDO_KFUNC_CALL_PROG_BTF``)."""
        return self.code == CALL_CODE and self.src == PseudoCall.KFUNC_CALL_PROG_BTF

    @property
    def is_exit(self) -> bool:
        return self.code == EXIT_CODE

    @property
    def is_may_goto(self) -> bool:
        return self.code == InsnClass.JMP | JmpOp.JCOND

    @property
    def is_gotol(self) -> bool:
        """``BPF_JMP32 | BPF_JA``: unconditional jump with a 32-bit offset in ``imm``."""
        return self.code == InsnClass.JMP32 | JmpOp.JA

    @property
    def is_jump(self) -> bool:
        """A jump with a pc-relative target (conditional, ja, gotol, may_goto)."""
        cls = self.code & 0x07
        if cls not in (InsnClass.JMP, InsnClass.JMP32):
            return False
        op = self.code & 0xF0
        return op not in (JmpOp.CALL, JmpOp.EXIT)

    @property
    def is_conditional_jump(self) -> bool:
        return self.is_jump and (self.code & 0xF0) not in (JmpOp.JA, JmpOp.JCOND)

    @property
    def is_load(self) -> bool:
        return self.code & 0x07 == InsnClass.LDX

    @property
    def is_store(self) -> bool:
        return self.code & 0x07 in (InsnClass.ST, InsnClass.STX) and self.mode == Mode.MEM

    @property
    def is_atomic(self) -> bool:
        return self.code & 0x07 == InsnClass.STX and self.mode == Mode.ATOMIC

    @property
    def is_legacy_packet_load(self) -> bool:
        """``LD_ABS`` / ``LD_IND``."""
        return self.code & 0x07 == InsnClass.LD and self.mode in (Mode.ABS, Mode.IND)

    @property
    def is_known(self) -> bool:
        """The opcode byte is in the kernel's opcode table (:data:`KNOWN_CODES`)."""
        return self.code in KNOWN_CODES

    def jump_offset(self) -> int | None:
        """Slots to skip after this one for a pc-relative instruction, else None.

        ``off`` for JMP/JMP32 jumps and may_goto, ``imm`` for gotol, bpf-to-bpf
        calls and ``ld_imm64`` with ``BPF_PSEUDO_FUNC``.
        """
        if self.is_gotol or self.is_pseudo_call:
            return self.imm
        if self.is_ld_imm64 and self.src == PseudoLdImm64.FUNC:
            return self.imm
        if self.is_jump:
            return self.off
        return None

    def jump_target(self, index: int) -> int | None:
        """Absolute slot index this instruction at ``index`` goes to, or None."""
        offset = self.jump_offset()
        return None if offset is None else index + offset + 1

    def __repr__(self) -> str:
        return (f"Instruction(code={self.code:#04x}, dst={self.dst}, src={self.src}, "
                f"off={self.off}, imm={self.imm})")


# ------------------------------------------------------------------ helpers


def imm64(insns: Sequence[Instruction], index: int) -> int:
    """The unsigned 64-bit immediate of the ld_imm64 whose first slot is ``index``."""
    first = insns[index]
    if not first.is_ld_imm64:
        raise InstructionError("not an ld_imm64", insn=index)
    if index + 1 >= len(insns):
        raise InstructionError("ld_imm64 missing its second slot", insn=index)
    return (insns[index + 1].imm & 0xFFFFFFFF) << 32 | (first.imm & 0xFFFFFFFF)


def check(insns: Sequence[Instruction]) -> None:
    """Raise :class:`InstructionError` (``insn=`` slot index) for a malformed program.

    Checks what can be judged without a kernel, with the verifier's own
    messages (measured on 6.18, see tests/test_asm_kernel.py):

    * ``BPF_LDX uses reserved fields``: LDX not MEM/MEMSX, or ``imm`` != 0;
    * ``invalid bpf_ld_imm64 insn``: an ld_imm64 without a clean second slot
      (code, regs and ``off`` zero), including one in the last slot;
    * ``BPF_LD_IMM64 uses reserved fields`` (``off`` != 0) and
      ``unrecognized bpf_ld_imm64 insn`` (pseudo ``src_reg`` > 6);
    * ``unknown opcode %02x`` (not in :data:`KNOWN_CODES`);
    * ``BPF_ATOMIC uses invalid atomic opcode %02x``;
    * ``jump out of range from insn %d to %d``, ``jump into the middle of
      ldimm64 insn %d``, ``call to invalid destination`` (bpf-to-bpf call or
      ``BPF_PSEUDO_FUNC`` outside the program).
    """
    n = len(insns)
    second_slots: dict[int, int] = {}
    i = 0
    while i < n:
        insn = insns[i]
        if insn.code & 0x07 == InsnClass.LDX and (
                insn.mode not in (Mode.MEM, Mode.MEMSX) or insn.imm != 0):
            raise InstructionError("BPF_LDX uses reserved fields", insn=i)
        if insn.is_ld_imm64:
            if i + 1 >= n:
                raise InstructionError(
                    "invalid bpf_ld_imm64 insn (its second slot is missing: truncated program)",
                    insn=i)
            nxt = insns[i + 1]
            if nxt.code or nxt.dst or nxt.src or nxt.off:
                raise InstructionError("invalid bpf_ld_imm64 insn", insn=i)
            if insn.off:
                raise InstructionError("BPF_LD_IMM64 uses reserved fields", insn=i)
            if insn.src > max(PseudoLdImm64):
                raise InstructionError("unrecognized bpf_ld_imm64 insn", insn=i)
            second_slots[i + 1] = i
            i += 2
            continue
        if insn.code not in KNOWN_CODES:
            raise InstructionError(f"unknown opcode {insn.code:02x}", insn=i)
        if insn.is_atomic:
            allowed = _ATOMIC_OPS_W_DW if insn.size in (Size.W, Size.DW) else _ATOMIC_OPS_B_H
            if insn.imm not in allowed:
                raise InstructionError(
                    f"BPF_ATOMIC uses invalid atomic opcode {insn.imm & 0xFFFFFFFF:02x}", insn=i)
        i += 1
    for i, insn in enumerate(insns):
        if i in second_slots:
            continue
        target = insn.jump_target(i)
        if target is None:
            continue
        if insn.is_pseudo_call or insn.is_ld_imm64:
            if not 0 <= target < n:
                raise InstructionError("call to invalid destination", insn=i)
        elif not 0 <= target < n:
            raise InstructionError(f"jump out of range from insn {i} to {target}", insn=i)
        if target in second_slots:
            raise InstructionError(
                f"jump into the middle of ldimm64 insn {second_slots[target]}", insn=i)


def slot_starts(insns: Sequence[Instruction]) -> list[int]:
    """Indexes of the slots that start an instruction (skips ld_imm64 second slots)."""
    out: list[int] = []
    i, n = 0, len(insns)
    while i < n:
        out.append(i)
        i += 2 if insns[i].is_ld_imm64 and i + 1 < n else 1
    return out


# ----------------------------------------------------------------- builders


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def alu64_imm(op: AluOp, dst: int, imm: int, off: int = 0) -> Instruction:
    return Instruction(InsnClass.ALU64 | op | Source.K, dst, 0, off, _s32(imm))


def alu64_reg(op: AluOp, dst: int, src: int, off: int = 0) -> Instruction:
    return Instruction(InsnClass.ALU64 | op | Source.X, dst, src, off, 0)


def alu32_imm(op: AluOp, dst: int, imm: int, off: int = 0) -> Instruction:
    return Instruction(InsnClass.ALU | op | Source.K, dst, 0, off, _s32(imm))


def alu32_reg(op: AluOp, dst: int, src: int, off: int = 0) -> Instruction:
    return Instruction(InsnClass.ALU | op | Source.X, dst, src, off, 0)


def mov64_imm(dst: int, imm: int) -> Instruction:
    """``dst = imm`` (sign-extended 32-bit immediate)."""
    return alu64_imm(AluOp.MOV, dst, imm)


def mov64_reg(dst: int, src: int) -> Instruction:
    """``dst = src``."""
    return alu64_reg(AluOp.MOV, dst, src)


def ld_imm64(dst: int, src: int, value: int) -> list[Instruction]:
    """The two slots of ``dst = value ll`` with pseudo ``src`` (a :class:`PseudoLdImm64`)."""
    value &= 0xFFFFFFFFFFFFFFFF
    return [Instruction(LD_IMM64_CODE, dst, src, 0, _s32(value)),
            Instruction(0, 0, 0, 0, _s32(value >> 32))]


def ldx_mem(size: Size, dst: int, src: int, off: int) -> Instruction:
    """``dst = *(size *)(src + off)``."""
    return Instruction(InsnClass.LDX | Mode.MEM | size, dst, src, off, 0)


def stx_mem(size: Size, dst: int, src: int, off: int) -> Instruction:
    """``*(size *)(dst + off) = src``."""
    return Instruction(InsnClass.STX | Mode.MEM | size, dst, src, off, 0)


def st_mem(size: Size, dst: int, off: int, imm: int) -> Instruction:
    """``*(size *)(dst + off) = imm``."""
    return Instruction(InsnClass.ST | Mode.MEM | size, dst, 0, off, _s32(imm))


def jmp_imm(op: JmpOp, dst: int, imm: int, off: int) -> Instruction:
    """``if dst <op> imm goto +off``."""
    return Instruction(InsnClass.JMP | op | Source.K, dst, 0, off, _s32(imm))


def jmp_reg(op: JmpOp, dst: int, src: int, off: int) -> Instruction:
    """``if dst <op> src goto +off``."""
    return Instruction(InsnClass.JMP | op | Source.X, dst, src, off, 0)


def ja(off: int) -> Instruction:
    """``goto +off``."""
    return Instruction(InsnClass.JMP | JmpOp.JA, 0, 0, off, 0)


def call_helper(helper_id: int) -> Instruction:
    """``call helper_id`` (``src_reg = 0``)."""
    return Instruction(CALL_CODE, 0, PseudoCall.HELPER, 0, helper_id)


def call_pseudo(rel: int) -> Instruction:
    """bpf-to-bpf call to ``index + rel + 1`` (``src_reg = BPF_PSEUDO_CALL``)."""
    return Instruction(CALL_CODE, 0, PseudoCall.CALL, 0, rel)


def call_kfunc(imm: int, src: int = PseudoCall.KFUNC_CALL, off: int = 0) -> Instruction:
    """A kfunc call: ``src`` 2 (vmlinux/module BTF id in ``imm``, module fd_array slot
    in ``off``) or 3 (``BPF_PSEUDO_KFUNC_CALL_PROG_BTF``: id of a FUNC in prog BTF)."""
    return Instruction(CALL_CODE, 0, src, off, imm)


def exit_() -> Instruction:
    """``exit``."""
    return Instruction(EXIT_CODE)
