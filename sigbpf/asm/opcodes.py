"""BPF opcode fields and pseudo source-register values, as named enums.

The 8-bit ``code`` of a ``struct bpf_insn`` is split into fields exactly as in
``include/uapi/linux/bpf_common.h`` and ``bpf.h``:

* every class: the low 3 bits are the :class:`InsnClass`;
* ALU/ALU64/JMP/JMP32: bit 3 is the :class:`Source` (K = imm, X = src_reg), the
  high 4 bits the operation (:class:`AluOp` / :class:`JmpOp`);
* LD/LDX/ST/STX: bits 3-4 are the :class:`Size`, bits 5-7 the :class:`Mode`.

Atomic operations live in ``imm`` (:class:`AtomicOp`).  The ``src_reg`` of an
``ld_imm64`` and of a CALL carries "pseudo" meanings (:class:`PseudoLdImm64`,
:class:`PseudoCall`).  Module-level constants repeat the kernel's own names
(``BPF_PSEUDO_KFUNC_CALL_PROG_BTF`` and friends) so that code written against
the UAPI header reads the same here.
"""

from __future__ import annotations

from enum import IntEnum


class InsnClass(IntEnum):
    """``BPF_CLASS(code)``: the low three bits."""

    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07


class Source(IntEnum):
    """``BPF_SRC(code)``: operand from ``imm`` (K) or from ``src_reg`` (X).

    For ``BPF_END`` the same bit selects the byte order: K = to little
    endian (``BPF_TO_LE``), X = to big endian (``BPF_TO_BE``).
    """

    K = 0x00
    X = 0x08


class AluOp(IntEnum):
    """``BPF_OP(code)`` for ALU and ALU64."""

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90
    XOR = 0xA0
    MOV = 0xB0
    ARSH = 0xC0
    END = 0xD0


class JmpOp(IntEnum):
    """``BPF_OP(code)`` for JMP and JMP32."""

    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0


class Size(IntEnum):
    """``BPF_SIZE(code)`` for loads and stores."""

    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18

    @property
    def nbytes(self) -> int:
        return {Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8}[self]


class Mode(IntEnum):
    """``BPF_MODE(code)`` for loads and stores."""

    IMM = 0x00
    ABS = 0x20
    IND = 0x40
    MEM = 0x60
    MEMSX = 0x80
    ATOMIC = 0xC0


class AtomicOp(IntEnum):
    """``imm`` of a ``BPF_STX | BPF_ATOMIC`` instruction."""

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    FETCH = 0x01
    FETCH_ADD = 0x01
    FETCH_OR = 0x41
    FETCH_AND = 0x51
    FETCH_XOR = 0xA1
    XCHG = 0xE1
    CMPXCHG = 0xF1
    LOAD_ACQ = 0x100
    STORE_REL = 0x110


class PseudoLdImm64(IntEnum):
    """``src_reg`` of an ``ld_imm64`` (``BPF_LD | BPF_IMM | BPF_DW``)."""

    NONE = 0
    MAP_FD = 1
    MAP_VALUE = 2
    BTF_ID = 3
    FUNC = 4
    MAP_IDX = 5
    MAP_IDX_VALUE = 6


class PseudoCall(IntEnum):
    """``src_reg`` of a ``BPF_JMP | BPF_CALL``."""

    HELPER = 0
    CALL = 1
    KFUNC_CALL = 2
    KFUNC_CALL_PROG_BTF = 3


class JcondCode(IntEnum):
    """``src_reg`` of ``BPF_JMP | BPF_JCOND``: only ``may_goto`` exists."""

    MAY_GOTO = 0


# The kernel's names (include/uapi/linux/bpf.h), plus the seed's new one.
BPF_LD = InsnClass.LD
BPF_LDX = InsnClass.LDX
BPF_ST = InsnClass.ST
BPF_STX = InsnClass.STX
BPF_ALU = InsnClass.ALU
BPF_JMP = InsnClass.JMP
BPF_JMP32 = InsnClass.JMP32
BPF_ALU64 = InsnClass.ALU64
BPF_K = Source.K
BPF_X = Source.X
BPF_TO_LE = Source.K
BPF_TO_BE = Source.X
BPF_W = Size.W
BPF_H = Size.H
BPF_B = Size.B
BPF_DW = Size.DW
BPF_IMM = Mode.IMM
BPF_ABS = Mode.ABS
BPF_IND = Mode.IND
BPF_MEM = Mode.MEM
BPF_MEMSX = Mode.MEMSX
BPF_ATOMIC = Mode.ATOMIC
BPF_FETCH = AtomicOp.FETCH
BPF_XCHG = AtomicOp.XCHG
BPF_CMPXCHG = AtomicOp.CMPXCHG
BPF_LOAD_ACQ = AtomicOp.LOAD_ACQ
BPF_STORE_REL = AtomicOp.STORE_REL
BPF_CALL = JmpOp.CALL
BPF_EXIT = JmpOp.EXIT
BPF_JA = JmpOp.JA
BPF_JCOND = JmpOp.JCOND
BPF_MAY_GOTO = JcondCode.MAY_GOTO

BPF_PSEUDO_MAP_FD = PseudoLdImm64.MAP_FD
BPF_PSEUDO_MAP_VALUE = PseudoLdImm64.MAP_VALUE
BPF_PSEUDO_BTF_ID = PseudoLdImm64.BTF_ID
BPF_PSEUDO_FUNC = PseudoLdImm64.FUNC
BPF_PSEUDO_MAP_IDX = PseudoLdImm64.MAP_IDX
BPF_PSEUDO_MAP_IDX_VALUE = PseudoLdImm64.MAP_IDX_VALUE
BPF_PSEUDO_CALL = PseudoCall.CALL
BPF_PSEUDO_KFUNC_CALL = PseudoCall.KFUNC_CALL
BPF_PSEUDO_KFUNC_CALL_PROG_BTF = PseudoCall.KFUNC_CALL_PROG_BTF

#: ``BPF_LD | BPF_IMM | BPF_DW``: the first slot of a 16-byte ld_imm64.
LD_IMM64_CODE = 0x18
#: ``BPF_JMP | BPF_CALL``
CALL_CODE = 0x85
#: ``BPF_JMP | BPF_CALL | BPF_X`` (callx: target address in a register)
CALLX_CODE = 0x8D
#: ``BPF_JMP | BPF_EXIT``
EXIT_CODE = 0x95
#: Size of one instruction slot (``sizeof(struct bpf_insn)``).
INSN_SIZE = 8
