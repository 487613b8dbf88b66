"""What a relocated instruction becomes: libbpf's ``bpf_core_patch_insn``.

Given a relocation's :class:`~sigbpf.btf.core_calc.RelocResult` and the
instruction (two slots for an ``ld_imm64``), :func:`patch_insn` applies
libbpf's checks and rewrites:

* ALU/ALU64 with an immediate: ``imm`` must be the original value, gets the new one;
* LDX/ST/STX: ``off`` must be the original value and the new one at most
  32767; a load/store whose size must change is resized (or poisoned when
  the change is not safe);
* ``ld_imm64`` (plain, ``src_reg`` 0): the 64-bit immediate, checked, then set;
* a poisoned result: ``call 0xbad2310`` (:data:`POISON_IMM`), on both slots of
  an ``ld_imm64``; the verifier refuses it only if it is reachable.

Anything else refuses the relocation, with libbpf's words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sigbpf.asm.instruction import Instruction
from sigbpf.asm.opcodes import CALL_CODE, LD_IMM64_CODE

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.core_calc import RelocResult

__all__ = ["POISON_IMM", "poisoned_insns", "patch_insn"]

#: libbpf's poisoned-instruction immediate: ``call 0xbad2310`` ("bad relo"); the verifier
#: says ``invalid func unknown#195896080`` when it reaches one.
POISON_IMM = 0xBAD2310

_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
_SHRT_MAX = 0x7FFF
_SIZE_BYTES = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}  # BPF_SIZE(code) -> bytes
_BYTES_SIZE = {v: k for k, v in _SIZE_BYTES.items()}


def poisoned_insns(insns: tuple[Instruction, ...]) -> tuple[Instruction, ...]:
    """``bpf_core_poison_insn``: ``call 0xbad2310``, on both slots of an ld_imm64."""
    bad = Instruction(CALL_CODE, 0, 0, 0, POISON_IMM)
    if insns and insns[0].code == LD_IMM64_CODE:
        return (bad, bad)
    return (bad,)


def _s32(value: int) -> int:
    value &= _U32
    return value - (1 << 32) if value & 0x80000000 else value


def patch_insn(res: "RelocResult",
               insns: tuple[Instruction, ...]) -> tuple[tuple[Instruction, ...], str | None, str]:
    """(the instructions after, why the relocation is refused or None, why the instruction
    was poisoned here or "")."""
    if res.poison:
        return poisoned_insns(insns), None, ""
    insn = insns[0]
    cls = insn.code & 0x07
    orig, new = res.orig_val, res.new_val
    if cls in (0x04, 0x07):  # ALU, ALU64
        if insn.code & 0x08:
            return insns, "ALU instruction does not take an immediate operand", ""
        if res.validate and (insn.imm & _U64) != orig:
            return insns, f"unexpected insn value: got {insn.imm}, exp {orig} -> {new}", ""
        return (insn.replace(imm=_s32(new)),), None, ""
    if cls in (0x01, 0x02, 0x03):  # LDX, ST, STX
        if res.validate and (insn.off & _U64) != orig:
            return insns, f"unexpected insn value: got {insn.off}, exp {orig} -> {new}", ""
        if new > _SHRT_MAX:
            return insns, f"insn (LDX/ST/STX) value too big: {new}", ""
        if res.fail_memsz_adjust:
            return (poisoned_insns(insns), None,
                    f"load/store of {res.orig_sz} bytes cannot become {res.new_sz} bytes "
                    "(not a pointer or unsigned int on both sides)")
        patched = insn.replace(off=new)
        if res.new_sz != res.orig_sz:
            size = _SIZE_BYTES[insn.code & 0x18]
            if size != res.orig_sz:
                return insns, f"unexpected mem size: got {size}, exp {res.orig_sz}", ""
            if res.new_sz not in _BYTES_SIZE:
                return insns, f"invalid new mem size: {res.new_sz}", ""
            patched = patched.replace(code=(insn.code & ~0x18) | _BYTES_SIZE[res.new_sz])
        return (patched,), None, ""
    if cls == 0x00:  # LD
        if (insn.code != LD_IMM64_CODE or insn.src or insn.off or len(insns) < 2
                or insns[1].code or insns[1].dst or insns[1].src or insns[1].off):
            return insns, "insn (LDIMM64) has unexpected form", ""
        imm = (insn.imm & _U32) | ((insns[1].imm & _U32) << 32)
        if res.validate and imm != orig:
            return insns, f"unexpected insn value: got {imm}, exp {orig} -> {new}", ""
        return (insn.replace(imm=_s32(new)), insns[1].replace(imm=_s32(new >> 32))), None, ""
    return insns, f"trying to relocate unrecognized insn, code:{insn.code:#x}", ""
