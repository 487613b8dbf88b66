"""``sigbpf disasm`` from the command line: selection, JSON, artifacts, and bad input.

Bad input (not ELF, missing file, a code section whose size is not a
multiple of 8, an ld_imm64 cut in half at the end of a section) gives one
line on stderr naming the file and place, and a non-zero exit; never a
traceback.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import CLANG, LLVM_OBJDUMP, assert_one_line_error
from sigbpf.asm import Instruction, exit_, ld_imm64, mov64_imm


def assemble(tmp: Path, body: str, name: str = "t") -> Path:
    src, obj = tmp / f"{name}.s", tmp / f"{name}.o"
    src.write_text('\t.section "prog","ax"\n\t.globl f\n\t.type f,@function\nf:\n' + body)
    subprocess.run([CLANG, "-target", "bpf", "-c", str(src), "-o", str(obj)], check=True)
    return obj


def test_section_selection_equals_llvm_objdump_j(bpf_object, cli):
    obj = bpf_object("asm_basic")
    proc = cli("disasm", "-j", "tc", obj)
    assert proc.returncode == 0, proc.stderr
    want = subprocess.run([LLVM_OBJDUMP, "-d", "--no-show-raw-insn", "-j", "tc", str(obj)],
                          check=True, capture_output=True, text=True).stdout
    assert proc.stdout == want and "Disassembly of section .text" not in want


def test_unknown_section_is_not_found(bpf_object, cli):
    proc = cli("disasm", "-j", "no_such_section", bpf_object("asm_basic"))
    assert_one_line_error(proc, 1, "no code section named 'no_such_section'")


def test_json_lists_labels_and_instructions(bpf_object, cli):
    obj = bpf_object("asm_basic")
    text = cli("disasm", obj).stdout
    proc = cli("disasm", "--json", obj)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["byteorder"] == "little"
    tc = next(s for s in doc["sections"] if s["section"] == "tc")
    assert tc["labels"][0] == {"offset": 0, "index": 0, "name": "classifier"}
    for insn in tc["insns"]:
        assert f"{insn['index']:8d}:\t{insn['text']}" in text
    assert any(i["text"].endswith(" ll") for i in tc["insns"])


def test_artifact_programs_are_listed(cli, tmp_path):
    from sigbpf.artifact.format import Artifact, Program

    prog = Program(name="prog", section="syscall", prog_type=31,
                   insns=(mov64_imm(0, 1), *ld_imm64(1, 0, 5), exit_()))
    path = tmp_path / "a.sbpf"
    path.write_bytes(Artifact(name="a", btf=b"", programs=(prog,)).encode())
    proc = cli("disasm", path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[3:] == [
        "Disassembly of section syscall:", "", "0000000000000000 <prog>:",
        "       0:\tr0 = 0x1", "       1:\tr1 = 0x5 ll", "       3:\texit"]


def test_not_an_elf_file(cli, tmp_path):
    path = tmp_path / "x.o"
    path.write_bytes(b"hello world, not ELF\n")
    assert_one_line_error(cli("disasm", path), 2, str(path))


def test_missing_file(cli, tmp_path):
    assert_one_line_error(cli("disasm", tmp_path / "nope.o"), 2, "nope.o")


def test_section_size_not_a_multiple_of_8(cli, tmp_path):
    obj = assemble(tmp_path, "\tr0 = 1\n\t.byte 0x95,0,0,0\n")
    proc = cli("disasm", obj)
    assert_one_line_error(proc, 2, "not a multiple of 8")
    assert str(obj) in proc.stderr and "offset 0x8" in proc.stderr


def test_truncated_ld_imm64_names_the_insn(cli, tmp_path):
    obj = assemble(tmp_path, "\tr0 = 1\n\texit\n\t.byte 0x18,1,0,0,1,0,0,0\n")
    proc = cli("disasm", obj)
    assert_one_line_error(proc, 2, "insn 2")
    assert "ld_imm64 missing its second slot" in proc.stderr and str(obj) in proc.stderr


def test_usage_error_is_one_line(cli):
    assert_one_line_error(cli("disasm"), 2)


@pytest.mark.parametrize("cut", [1, 9, 40, 200])
def test_truncated_object_is_an_error_not_a_traceback(bpf_object, cli, tmp_path, cut):
    data = bpf_object("asm_basic").read_bytes()
    path = tmp_path / "cut.o"
    path.write_bytes(data[:cut])
    assert_one_line_error(cli("disasm", path), 2)


def test_library_disassemble_is_keyed_by_slot():
    from sigbpf.asm import disassemble

    prog = [mov64_imm(0, 1), *ld_imm64(1, 0, -1), Instruction(0x05, off=-4), exit_()]
    assert disassemble(prog) == ["r0 = 0x1", "r1 = -0x1 ll", "", "goto -0x4", "exit"]
    assert disassemble(prog, symbols={0: "f"})[3] == "goto -0x4 <f>"
