"""BPF instructions: opcodes, the 8-byte :class:`Instruction` slot, builders, disassembler.

Public API::

    from sigbpf.asm import Instruction, check, imm64, disassemble
    insns = Instruction.decode(data)            # list of 8-byte slots
    data = Instruction.encode(insns)            # exact inverse
    insns[i].is_prog_btf_kfunc_call             # CALL with src_reg 3
    insns[i].replace(src=2, imm=vmlinux_id)     # the resolution rewrite

Instruction indexes are slot indexes (an ld_imm64 takes two), as in the
kernel's logs.  :mod:`sigbpf.asm.disasm` is imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sigbpf.asm.instruction import (
    KNOWN_CODES,
    ByteOrder,
    Instruction,
    alu32_imm,
    alu32_reg,
    alu64_imm,
    alu64_reg,
    call_helper,
    call_kfunc,
    call_pseudo,
    check,
    exit_,
    imm64,
    ja,
    jmp_imm,
    jmp_reg,
    ld_imm64,
    ldx_mem,
    mov64_imm,
    mov64_reg,
    slot_starts,
    st_mem,
    stx_mem,
)
from sigbpf.asm.opcodes import *  # noqa: F401,F403  (enums and the kernel's constant names)
from sigbpf.asm.opcodes import (
    AluOp,
    AtomicOp,
    InsnClass,
    JcondCode,
    JmpOp,
    Mode,
    PseudoCall,
    PseudoLdImm64,
    Size,
    Source,
)

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.asm.disasm import disassemble, format_insn  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in ("disassemble", "format_insn"):
        from sigbpf.asm import disasm

        return getattr(disasm, name)
    raise AttributeError(f"module 'sigbpf.asm' has no attribute {name!r}")


__all__ = [
    "AluOp", "AtomicOp", "ByteOrder", "InsnClass", "Instruction", "JcondCode", "JmpOp",
    "KNOWN_CODES", "Mode", "PseudoCall", "PseudoLdImm64", "Size", "Source",
    "alu32_imm", "alu32_reg", "alu64_imm", "alu64_reg", "call_helper", "call_kfunc",
    "call_pseudo", "check", "disassemble", "exit_", "format_insn", "imm64", "ja", "jmp_imm",
    "jmp_reg", "ld_imm64", "ldx_mem", "mov64_imm", "mov64_reg", "slot_starts", "st_mem",
    "stx_mem",
]
