"""sigbpf.asm against the running kernel's verifier.

* :data:`KNOWN_CODES` is exactly the kernel's opcode table: every opcode byte
  is loaded in a tiny program and the verifier's "unknown opcode %02x" (or,
  for LDX modes, "BPF_LDX uses reserved fields", which it checks first) is
  compared with membership in KNOWN_CODES.
* check() raises the verifier's own message for the malformed programs the
  kernel rejects before running anything, and for the same instruction.
"""

from __future__ import annotations

import pytest

from sigbpf.asm import (
    KNOWN_CODES,
    Instruction,
    JmpOp,
    call_pseudo,
    check,
    exit_,
    ja,
    jmp_imm,
    ld_imm64,
    mov64_imm,
)
from sigbpf.errors import InstructionError, KernelError

SOCKET_FILTER = 1


def kernel_log(insns: list[Instruction]) -> str | None:
    """None if the kernel loads the program, else its verifier log."""
    from sigbpf.kernel.program import ProgLoad, load_program

    try:
        fd = load_program(ProgLoad(prog_type=SOCKET_FILTER, insns=Instruction.encode(insns)))
    except KernelError as err:
        return err.log or str(err)
    fd.close()
    return None


def test_known_codes_are_the_kernels_opcode_table(kernel):
    kernel_known = set()
    for code in range(256):
        if code == 0x18:  # ld_imm64 needs its second slot: checked below
            continue
        log = kernel_log([mov64_imm(0, 0), Instruction(code), mov64_imm(0, 0), exit_()]) or ""
        if f"unknown opcode {code:02x}" in log or "BPF_LDX uses reserved fields" in log:
            continue
        kernel_known.add(code)
    assert kernel_log([*ld_imm64(1, 0, 1), mov64_imm(0, 0), exit_()]) is None
    kernel_known.add(0x18)
    assert sorted(KNOWN_CODES) == sorted(kernel_known)


CASES = [
    ("second slot not empty", [Instruction(0x18, 1, 0, 0, 1), exit_(), mov64_imm(0, 0), exit_()],
     0, "invalid bpf_ld_imm64 insn"),
    ("ld_imm64 off", [Instruction(0x18, 1, 0, 3, 1), Instruction(0), mov64_imm(0, 0), exit_()],
     0, "BPF_LD_IMM64 uses reserved fields"),
    ("ld_imm64 src 7", [Instruction(0x18, 1, 7, 0, 1), Instruction(0), mov64_imm(0, 0), exit_()],
     0, "unrecognized bpf_ld_imm64 insn"),
    ("unknown opcode", [mov64_imm(0, 0), Instruction(0x00), exit_()], 1, "unknown opcode 00"),
    ("callx", [mov64_imm(0, 0), Instruction(0x8D, dst=1), exit_()], 1, "unknown opcode 8d"),
    ("ldx mode", [mov64_imm(0, 0), Instruction(0x21), exit_()], 1, "BPF_LDX uses reserved fields"),
    ("ldx imm", [mov64_imm(0, 0), Instruction(0x79, 0, 10, -8, 5), exit_()], 1,
     "BPF_LDX uses reserved fields"),
    ("atomic op", [mov64_imm(0, 0), Instruction(0xDB, 10, 0, -8, 0x33), exit_()], 1,
     "BPF_ATOMIC uses invalid atomic opcode 33"),
    ("jump past end", [mov64_imm(0, 0), ja(5), exit_()], 1, "jump out of range from insn 1 to 7"),
    ("jump before start", [mov64_imm(0, 0), ja(-3), exit_()], 1,
     "jump out of range from insn 1 to -1"),
    ("gotol past end", [mov64_imm(0, 0), Instruction(0x06, imm=100), exit_()], 1,
     "jump out of range from insn 1 to 102"),
    ("call past end", [mov64_imm(0, 0), call_pseudo(100), exit_()], 1,
     "call to invalid destination"),
    ("jump into ld_imm64", [mov64_imm(0, 0), *ld_imm64(1, 0, 5), jmp_imm(JmpOp.JEQ, 0, 0, -2),
                            exit_()], 3, "jump into the middle of ldimm64 insn 1"),
]


@pytest.mark.parametrize("what, prog, index, message", CASES, ids=[c[0] for c in CASES])
def test_check_says_what_the_verifier_says(kernel, what, prog, index, message):
    log = kernel_log(prog)
    assert log is not None and message in log, log
    with pytest.raises(InstructionError) as exc:
        check(prog)
    assert exc.value.insn == index
    assert exc.value.message.startswith(message)


def test_valid_programs_pass_check_and_load(kernel):
    prog = [mov64_imm(0, 0), *ld_imm64(1, 0, 0x1122334455667788), jmp_imm(JmpOp.JEQ, 0, 1, 1),
            mov64_imm(0, 2), exit_()]
    check(prog)
    assert kernel_log(prog) is None
