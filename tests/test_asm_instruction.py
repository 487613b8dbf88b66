"""sigbpf.asm: the 8-byte instruction slot, its fields, builders and check().

Pure Python (no kernel, no clang): decode/encode in both byte orders, a
property test over random slots, the UAPI constants against the installed
<linux/bpf.h>, and every InstructionError with its location.  The messages
of check() are the verifier's; tests/test_asm_kernel.py compares them with
the running kernel.
"""

from __future__ import annotations

import random
import re
import struct
from pathlib import Path

import pytest

from sigbpf.asm import (
    KNOWN_CODES,
    AluOp,
    AtomicOp,
    InsnClass,
    Instruction,
    JmpOp,
    Mode,
    PseudoCall,
    PseudoLdImm64,
    Size,
    Source,
    alu32_imm,
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
from sigbpf.asm import opcodes
from sigbpf.errors import InstructionError

UAPI_BPF_H = Path("/usr/include/linux/bpf.h")
UAPI_COMMON_H = Path("/usr/include/linux/bpf_common.h")


def test_slot_layout_matches_struct_bpf_insn():
    # struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; } on little endian.
    insn = Instruction(0x85, dst=1, src=3, off=-2, imm=-5)
    raw = insn.to_bytes()
    assert raw == struct.pack("<BBhi", 0x85, 3 << 4 | 1, -2, -5)
    assert Instruction.decode(raw) == [insn]


def test_big_endian_swaps_register_nibbles():
    insn = Instruction(0xBF, dst=1, src=2, off=0x102, imm=0x01020304)
    le, be = insn.to_bytes("little"), insn.to_bytes("big")
    assert le == bytes([0xBF, 0x21, 0x02, 0x01, 0x04, 0x03, 0x02, 0x01])
    assert be == bytes([0xBF, 0x12, 0x01, 0x02, 0x01, 0x02, 0x03, 0x04])
    assert Instruction.decode(be, "big") == [insn]


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_random_slots_round_trip(byteorder):
    rnd = random.Random(20260522)
    insns = [Instruction(rnd.randrange(256), rnd.randrange(16), rnd.randrange(16),
                         rnd.randrange(-0x8000, 0x8000), rnd.randrange(-2**31, 2**31))
             for _ in range(20000)]
    data = Instruction.encode(insns, byteorder)
    assert len(data) == 8 * len(insns)
    assert Instruction.decode(data, byteorder) == insns
    # and any bytes decode and encode back to themselves
    blob = rnd.randbytes(8 * 5000)
    assert Instruction.encode(Instruction.decode(blob, byteorder), byteorder) == blob


@pytest.mark.parametrize("size", [1, 7, 9, 15, 17])
def test_decode_rejects_partial_slot_with_offset(size):
    with pytest.raises(InstructionError) as exc:
        Instruction.decode(b"\x95" + b"\0" * (size - 1))
    assert exc.value.offset == size - size % 8
    assert "multiple of 8" in str(exc.value)


@pytest.mark.parametrize("fields", [
    dict(code=256), dict(code=-1), dict(code=0, dst=16), dict(code=0, src=-1),
    dict(code=0, off=0x8000), dict(code=0, off=-0x8001), dict(code=0, imm=2**31),
    dict(code=0, imm=-2**31 - 1),
])
def test_fields_out_of_range_are_rejected(fields):
    with pytest.raises(InstructionError, match="out of range"):
        Instruction(**fields)


def test_replace_is_the_resolution_rewrite():
    call = call_kfunc(7, PseudoCall.KFUNC_CALL_PROG_BTF)
    assert call.is_prog_btf_kfunc_call and not call.is_kfunc_call
    resolved = call.replace(src=PseudoCall.KFUNC_CALL, imm=12345)
    assert resolved.is_kfunc_call and not resolved.is_prog_btf_kfunc_call
    assert (resolved.code, resolved.off, resolved.imm) == (0x85, 0, 12345)
    assert call.imm == 7  # frozen: the original is unchanged
    with pytest.raises(Exception):
        call.imm = 1  # type: ignore[misc]


def test_opcode_fields_and_predicates():
    ldx = ldx_mem(Size.W, 0, 1, 4)
    assert (ldx.cls, ldx.size, ldx.mode) == (InsnClass.LDX, Size.W, Mode.MEM)
    assert ldx.is_load and not ldx.is_store
    assert stx_mem(Size.DW, 10, 1, -8).is_store
    assert st_mem(Size.B, 10, -1, 7).is_store
    add = alu64_reg(AluOp.ADD, 1, 2)
    assert (add.cls, add.op, add.source) == (InsnClass.ALU64, AluOp.ADD, Source.X)
    assert add.is_alu and not alu32_imm(AluOp.ADD, 1, 2).cls == InsnClass.ALU64
    assert call_helper(1).is_helper_call and call_helper(1).is_call
    assert call_pseudo(3).is_pseudo_call and call_pseudo(3).jump_target(10) == 14
    assert exit_().is_exit and not exit_().is_jump
    cond = jmp_imm(JmpOp.JSGT, 1, 5, 3)
    assert cond.is_jump and cond.is_conditional_jump and cond.jump_target(0) == 4
    assert jmp_reg(JmpOp.JSET, 1, 2, -1).jump_target(5) == 5
    gotol = Instruction(InsnClass.JMP32 | JmpOp.JA, imm=100000)
    assert gotol.is_gotol and gotol.jump_target(1) == 100002
    may_goto = Instruction(InsnClass.JMP | JmpOp.JCOND, off=2)
    assert may_goto.is_may_goto and may_goto.jump_target(0) == 3
    callx = Instruction(opcodes.CALLX_CODE, dst=1)
    assert callx.is_callx and not callx.is_call
    atomic = Instruction(InsnClass.STX | Mode.ATOMIC | Size.DW, 1, 2, 0, AtomicOp.CMPXCHG)
    assert atomic.is_atomic and not atomic.is_store
    assert Instruction(InsnClass.LD | Mode.ABS | Size.B, imm=3).is_legacy_packet_load
    assert ja(1).jump_offset() == 1 and mov64_imm(0, 1).jump_offset() is None


def test_ld_imm64_builder_and_imm64():
    slots = ld_imm64(2, PseudoLdImm64.MAP_VALUE, 0x1234567890ABCDEF)
    assert len(slots) == 2 and slots[0].is_ld_imm64 and slots[1].code == 0
    assert slots[0].src == PseudoLdImm64.MAP_VALUE and slots[0].dst == 2
    prog = [mov64_imm(0, 0), *slots, exit_()]
    assert imm64(prog, 1) == 0x1234567890ABCDEF
    assert imm64(ld_imm64(0, 0, -1), 0) == 0xFFFFFFFFFFFFFFFF
    assert slot_starts(prog) == [0, 1, 3]
    func = ld_imm64(1, PseudoLdImm64.FUNC, 5)[0]
    assert func.jump_target(0) == 6
    with pytest.raises(InstructionError) as exc:
        imm64(prog, 0)
    assert exc.value.insn == 0
    with pytest.raises(InstructionError, match="second slot") as exc:
        imm64(prog[:2], 1)
    assert exc.value.insn == 1


def test_builders_encode_like_the_kernel_macros():
    # BPF_MOV64_IMM, BPF_MOV64_REG, BPF_EXIT_INSN, BPF_ALU64_IMM, BPF_JMP_IMM (filter.h)
    assert mov64_imm(0, -1).to_bytes() == struct.pack("<BBhi", 0xB7, 0x00, 0, -1)
    assert mov64_reg(6, 1).to_bytes() == struct.pack("<BBhi", 0xBF, 0x16, 0, 0)
    assert exit_().to_bytes() == struct.pack("<BBhi", 0x95, 0, 0, 0)
    assert alu64_imm(AluOp.ADD, 2, -4).to_bytes() == struct.pack("<BBhi", 0x07, 0x02, 0, -4)
    assert jmp_imm(JmpOp.JEQ, 0, 0, 3).to_bytes() == struct.pack("<BBhi", 0x15, 0x00, 3, 0)
    assert call_kfunc(99).to_bytes() == struct.pack("<BBhi", 0x85, 0x20, 0, 99)
    assert call_kfunc(99, 3).to_bytes() == struct.pack("<BBhi", 0x85, 0x30, 0, 99)
    # an unsigned 32-bit immediate is stored as the same bits
    assert mov64_imm(0, 0xFFFFFFFF).imm == -1


def _uapi_defines(path: Path, known: dict[str, int]) -> dict[str, int]:
    """``#define BPF_X <number>`` and ``#define BPF_X (<number> | BPF_Y)`` of a header."""
    out = dict(known)
    for name, value in re.findall(r"^#define\s+(BPF_\w+)\s+([^/\n]+)", path.read_text(), re.M):
        result = 0
        try:
            for term in value.strip().strip("()").split("|"):
                term = term.strip()
                result |= out[term] if term in out else int(term, 0)
        except ValueError:
            continue
        out[name] = result
    return out


@pytest.mark.skipif(not UAPI_BPF_H.exists(), reason="no /usr/include/linux/bpf.h")
def test_constants_match_the_uapi_headers():
    defines = _uapi_defines(UAPI_BPF_H, _uapi_defines(UAPI_COMMON_H, {}))
    # enum-valued ones (BPF_PSEUDO_* are #defines in bpf.h)
    for name in ("BPF_PSEUDO_MAP_FD", "BPF_PSEUDO_MAP_VALUE", "BPF_PSEUDO_BTF_ID",
                 "BPF_PSEUDO_FUNC", "BPF_PSEUDO_MAP_IDX", "BPF_PSEUDO_MAP_IDX_VALUE",
                 "BPF_PSEUDO_CALL", "BPF_PSEUDO_KFUNC_CALL",
                 "BPF_LD", "BPF_LDX", "BPF_ST", "BPF_STX", "BPF_ALU", "BPF_JMP", "BPF_JMP32",
                 "BPF_ALU64", "BPF_K", "BPF_X", "BPF_W", "BPF_H", "BPF_B", "BPF_DW", "BPF_IMM",
                 "BPF_ABS", "BPF_IND", "BPF_MEM", "BPF_ATOMIC", "BPF_FETCH", "BPF_XCHG",
                 "BPF_CMPXCHG", "BPF_CALL", "BPF_EXIT", "BPF_JA", "BPF_TO_LE", "BPF_TO_BE"):
        assert name in defines, name
        assert getattr(opcodes, name) == defines[name], name
    for op in AluOp:
        if f"BPF_{op.name}" in defines:
            assert op == defines[f"BPF_{op.name}"], op
    for op in JmpOp:
        if f"BPF_{op.name}" in defines:
            assert op == defines[f"BPF_{op.name}"], op
    # the seed's new constant comes right after BPF_PSEUDO_KFUNC_CALL
    assert opcodes.BPF_PSEUDO_KFUNC_CALL_PROG_BTF == 3 == PseudoCall.KFUNC_CALL_PROG_BTF


def test_check_accepts_a_well_formed_program():
    prog = [mov64_imm(0, 0), *ld_imm64(1, PseudoLdImm64.MAP_FD, 3),
            jmp_imm(JmpOp.JEQ, 0, 0, 1), call_pseudo(1), exit_(), mov64_imm(0, 1), exit_()]
    check(prog)


@pytest.mark.parametrize("prog, index, message", [
    ([mov64_imm(0, 0), exit_(), Instruction(0x18, 1, 0, 0, 1)], 2,
     "invalid bpf_ld_imm64 insn (its second slot is missing"),
    ([Instruction(0x18, 1, 0, 0, 1), exit_(), exit_()], 0, "invalid bpf_ld_imm64 insn"),
    ([Instruction(0x18, 1, 0, 3, 1), Instruction(0), exit_()], 0,
     "BPF_LD_IMM64 uses reserved fields"),
    ([Instruction(0x18, 1, 7, 0, 1), Instruction(0), exit_()], 0,
     "unrecognized bpf_ld_imm64 insn"),
    ([mov64_imm(0, 0), Instruction(0x00), exit_()], 1, "unknown opcode 00"),
    ([mov64_imm(0, 0), Instruction(opcodes.CALLX_CODE, dst=1), exit_()], 1, "unknown opcode 8d"),
    ([mov64_imm(0, 0), Instruction(0x21), exit_()], 1, "BPF_LDX uses reserved fields"),
    ([mov64_imm(0, 0), Instruction(0x79, 0, 10, -8, 5), exit_()], 1,
     "BPF_LDX uses reserved fields"),
    ([mov64_imm(0, 0), Instruction(0xDB, 10, 0, -8, 0x33), exit_()], 1,
     "BPF_ATOMIC uses invalid atomic opcode 33"),
    ([mov64_imm(0, 0), ja(5), exit_()], 1, "jump out of range from insn 1 to 7"),
    ([mov64_imm(0, 0), ja(-3), exit_()], 1, "jump out of range from insn 1 to -1"),
    ([mov64_imm(0, 0), Instruction(0x06, imm=100), exit_()], 1,
     "jump out of range from insn 1 to 102"),
    ([mov64_imm(0, 0), call_pseudo(100), exit_()], 1, "call to invalid destination"),
    ([mov64_imm(0, 0), *ld_imm64(1, 0, 5), jmp_imm(JmpOp.JEQ, 0, 0, -2), exit_()], 3,
     "jump into the middle of ldimm64 insn 1"),
])
def test_check_errors_name_the_insn(prog, index, message):
    with pytest.raises(InstructionError) as exc:
        check(prog)
    assert exc.value.insn == index
    assert message in exc.value.message
    assert str(exc.value).startswith(f"insn {index}: ")


def test_known_codes_cover_every_class():
    classes = {code & 7 for code in KNOWN_CODES}
    assert classes == set(range(8))
    assert 0x18 in KNOWN_CODES and 0x00 not in KNOWN_CODES
    # B/H atomics are the kernel's load-acquire/store-release (6.15+)
    assert {0xCB, 0xD3, 0xC3, 0xDB} <= KNOWN_CODES
