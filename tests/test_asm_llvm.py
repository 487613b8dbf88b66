"""The disassembler against the reference tool, llvm-objdump-19.

* Every test object (tests/progs/asm_*.c, compiled by clang-19 at several
  -mcpu levels, little and big endian; then every other tests/progs/*.c
  and the bundled example object) is disassembled by ``sigbpf disasm``
  and by ``llvm-objdump-19 -d --no-show-raw-insn`` (and with
  ``--mattr=+alu32`` / ``--alu32``); the outputs must be identical, line for
  line: section headers, labels, addresses and instruction text.
* An opcode sweep: every opcode byte with many register/offset/immediate
  values (and random ones), assembled into an object with ``.byte`` by
  clang-19, must disassemble to llvm-objdump's text slot by slot.
* encode(decode(x)) == x for every code section of every test object.
"""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from conftest import CLANG, LLVM_OBJDUMP, PROGS
from sigbpf.asm import Instruction, check
from sigbpf.asm.disasm import iter_disassembly


@pytest.fixture(autouse=True)
def _llvm_objdump_is_installed() -> None:
    """The reference tool is required, not optional (scripts/deps.sh installs llvm-19)."""
    if LLVM_OBJDUMP is None:
        pytest.fail("llvm-objdump-19 is not installed (scripts/deps.sh installs llvm-19)")


# (program, extra clang args); asm_atomics needs cpu v3, asm_v4 and asm_inline v4.
OBJECTS = [
    ("asm_basic", ()), ("asm_basic", ("-mcpu=v1",)), ("asm_basic", ("-mcpu=v2",)),
    ("asm_basic", ("-mcpu=v3",)), ("asm_basic", ("-mcpu=v4",)),
    ("asm_atomics", ("-mcpu=v3",)), ("asm_atomics", ("-mcpu=v4",)),
    ("asm_v4", ("-mcpu=v4",)), ("asm_inline", ("-mcpu=v4",)), ("asm_inline", ()),
    ("asm_inline", ("-mcpu=v4", "-mbig-endian")), ("asm_atomics", ("-mcpu=v3", "-mbig-endian")),
]
IDS = ["-".join((name, *args)) for name, args in OBJECTS]


def objdump(path: Path, alu32: bool = False) -> str:
    args = [LLVM_OBJDUMP, "-d", "--no-show-raw-insn"] + (["--mattr=+alu32"] if alu32 else [])
    return subprocess.run([*args, str(path)], check=True, capture_output=True, text=True).stdout


def objdump_slots(path: Path, alu32: bool = False) -> dict[int, str]:
    return {int(m.group(1)): m.group(2)
            for m in re.finditer(r"^ +(\d+):\t(.*)$", objdump(path, alu32), re.M)}


def assemble(tmp: Path, insns: list[Instruction], byteorder: str = "little") -> Path:
    """An object whose .text (one function ``f`` at 0) holds exactly these slots."""
    data = Instruction.encode(insns, byteorder)
    lines = ["\t.text", "\t.globl f", "\t.type f,@function", "f:"]
    lines += ["\t.byte " + ",".join(str(b) for b in data[i:i + 8]) for i in range(0, len(data), 8)]
    src, obj = tmp / "sweep.s", tmp / "sweep.o"
    src.write_text("\n".join(lines) + "\n")
    target = "bpfel" if byteorder == "little" else "bpfeb"
    subprocess.run([CLANG, "-target", target, "-c", str(src), "-o", str(obj)], check=True)
    return obj


def code_sections(path: Path):
    from sigbpf.elf.reader import read_elf

    elf = read_elf(path.read_bytes(), file=str(path))
    return elf.byteorder, [s for s in elf.sections if s.is_exec and s.size]


@pytest.mark.parametrize("name, extra", OBJECTS, ids=IDS)
@pytest.mark.parametrize("alu32", [False, True], ids=["default", "alu32"])
def test_cli_output_equals_llvm_objdump(bpf_object, cli, name, extra, alu32):
    obj = bpf_object(name, *extra)
    proc = cli("disasm", *(["--alu32"] if alu32 else []), obj)
    assert proc.returncode == 0, proc.stderr
    want = objdump(obj, alu32)
    assert want.count("\n") > 20
    assert proc.stdout.splitlines() == want.splitlines()


# Every other C program of tests/progs (the kfunc, BTF, ELF, build and signing
# tests' objects), at clang's default -mcpu, and the bundled example object:
# the issue asks for llvm-objdump's text "for every object in the tests".
ALL_PROGS = sorted(p.stem for p in PROGS.glob("*.c") if p.stem not in ("asm_atomics", "asm_v4"))
EXAMPLE_OBJECT = PROGS.parent.parent / "examples" / "task_iter.bpf.o"


def test_every_test_program_is_covered():
    """asm_atomics and asm_v4 do not build at the default -mcpu; OBJECTS has them."""
    assert {n for n, _ in OBJECTS} | set(ALL_PROGS) == {p.stem for p in PROGS.glob("*.c")}
    assert len(ALL_PROGS) >= 20


@pytest.mark.parametrize("name", ALL_PROGS + ["examples/task_iter.bpf.o"])
def test_every_object_disassembles_like_llvm_objdump(bpf_object, cli, name):
    obj = EXAMPLE_OBJECT if name.startswith("examples/") else bpf_object(name)
    for alu32 in (False, True):
        proc = cli("disasm", *(["--alu32"] if alu32 else []), obj)
        assert proc.returncode == 0, proc.stderr
        want = objdump(obj, alu32)
        assert re.search(r"^ +\d+:\t", want, re.M), want  # it has code
        assert proc.stdout.splitlines() == want.splitlines()


def test_layout_rules_equal_llvm_objdump(cli, tmp_path):
    """Labels (several symbols at one address, none at 0, data symbols), zero
    runs printed as "...", far jump targets: tests/progs/asm_layout.s."""
    obj = tmp_path / "asm_layout.o"
    subprocess.run([CLANG, "-target", "bpf", "-c", str(PROGS / "asm_layout.s"), "-o", str(obj)],
                   check=True)
    proc = cli("disasm", obj)
    assert proc.returncode == 0, proc.stderr
    want = objdump(obj)
    assert "\t\t..." in want and "<g3>:" in want and "HGFEDCBA" in want
    assert proc.stdout == want


@pytest.mark.parametrize("name, extra", OBJECTS, ids=IDS)
def test_round_trip_and_check_of_compiled_code(bpf_object, name, extra):
    byteorder, sections = code_sections(bpf_object(name, *extra))
    assert sections
    for sec in sections:
        insns = Instruction.decode(sec.data, byteorder)
        assert Instruction.encode(insns, byteorder) == sec.data
        # check() judges linked programs; in an unlinked object calls and
        # BPF_PSEUDO_FUNC loads still wait for relocations (imm -1, byte offsets),
        # and asm_inline has callx and far jumps on purpose.
        if name in ("asm_atomics", "asm_v4"):
            check(insns)


def test_big_endian_object_decodes_to_the_same_instructions(bpf_object):
    _, little = code_sections(bpf_object("asm_inline", "-mcpu=v4"))
    _, big = code_sections(bpf_object("asm_inline", "-mcpu=v4", "-mbig-endian"))
    le = {s.name: Instruction.decode(s.data, "little") for s in little}
    be = {s.name: Instruction.decode(s.data, "big") for s in big}
    assert le == be and le["tc"]


def test_compiled_objects_contain_every_instruction_kind(bpf_object):
    """The C programs really make clang emit what the requirements list."""
    text = "".join(objdump(bpf_object(name, *extra)) for name, extra in OBJECTS)
    for needle in ("s/=", "s%=", "(s8)", "(s16)", "(s32)", "bswap16", "bswap64", "be16", "le32",
                   "*(s8 *)", "*(s16 *)", "*(s32 *)", "lock *(u64 *)", "atomic_fetch_add",
                   "atomic_fetch_xor", "xchg_64", "cmpxchg_64", "gotol", "may_goto", "callx",
                   "call 0x", "call -0x1", " ll", "skb[", "if w", "s>=", " & ", "exit",
                   "= -r", "addr_space_cast", " = 0x12345678"):
        assert needle in text, needle
    alu32_text = objdump(bpf_object("asm_atomics", "-mcpu=v3"), alu32=True)
    for needle in ("xchg32_32", "cmpxchg32_32", "= atomic_fetch_add((u32 *)", "lock *(u32 *)"):
        assert needle in alu32_text, needle


def _sweep() -> list[Instruction]:
    rnd = random.Random(1)
    regs = [(1, 2), (0, 0), (11, 10), (12, 1), (1, 12), (15, 15)]
    offs = [0, 1, -1, 8, 16, 32, -0x8000]
    imms = [0, 1, -1, 16, 32, 64, 0x40, 0x41, 0x51, 0xA0, 0xA1, 0xE1, 0xF1, 0x100, 0x110,
            0x7FFFFFFF, -0x80000000, 0x10001]
    out = []
    for code in range(256):
        if code == 0x18:
            continue
        for dst, src in regs:
            for off in offs:
                for imm in rnd.sample(imms, 6):
                    out.append(Instruction(code, dst, src, off, imm))
        for _ in range(40):
            out.append(Instruction(code, rnd.randrange(16), rnd.randrange(16),
                                   rnd.randrange(-0x8000, 0x8000), rnd.randrange(-2**31, 2**31)))
    # all-zero slots would be printed as "..." by llvm-objdump: keep them out of the sweep
    out = [i for i in out if (i.code, i.dst, i.src, i.off, i.imm) != (0, 0, 0, 0, 0)]
    for dst, src in regs:  # ld_imm64 with every pseudo src, good and bad second slots
        for off in (0, 1):
            for lo, hi in ((0, 0), (1, -1), (-1, 1), (0x7FFFFFFF, -0x80000000)):
                out += [Instruction(0x18, dst, src, off, lo),
                        Instruction(0, 0, 0, 0, hi) if off == 0 else Instruction(0xB7, 1, 0, 0, hi)]
    for src in range(16):
        out += [Instruction(0x18, 1, src, 0, 5), Instruction(0, 0, 0, 0, 7)]
    out += [Instruction(0x18, 1, 0, 0, 5), Instruction(0x95, 3, 4, 5, 7)]
    return out


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_opcode_sweep_equals_llvm_objdump(tmp_path, byteorder):
    insns = _sweep()
    obj = assemble(tmp_path, insns, byteorder)
    for alu32 in (False, True):
        want = objdump_slots(obj, alu32)
        got = dict(iter_disassembly(insns, alu32=alu32, symbols={0: "f"}))
        assert len(want) > 50000
        diffs = [(i, insns[i], want[i], got.get(i)) for i in sorted(want) if got.get(i) != want[i]]
        assert not diffs[:20], diffs[:20]
        # what llvm-objdump did not print is an all-zero slot after an undecodable
        # ld_imm64: a zero run, printed as "..."
        assert all(insns[i] == Instruction(0) for i in set(got) - set(want))
