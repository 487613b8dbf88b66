"""sigbpf.resolve.digest: the zeroing rule of bpf_prog_calc_tag, corner by corner.

The kernel side (the tag the running kernel reports, the excl_prog_hash it
accepts, before/after resolution) is tests/test_kernel_digest.py; here the
rule itself on hand-built streams, including the cases where the kernel's
two-state walk differs from a structural ld_imm64 parse.
"""

from __future__ import annotations

import hashlib

import pytest

from sigbpf.asm import Instruction, PseudoLdImm64, call_kfunc, exit_, ld_imm64, mov64_imm
from sigbpf.errors import InstructionError
from sigbpf.resolve.digest import digest_input, prog_sha256, prog_tag, raw_sha256


def raw(insns: list[Instruction]) -> bytes:
    return Instruction.encode(insns)


def test_no_map_loads_hash_the_bytes_as_they_are():
    insns = [mov64_imm(0, 7), call_kfunc(1234, src=3), exit_()]
    assert digest_input(insns) == raw(insns)
    assert prog_sha256(insns) == hashlib.sha256(raw(insns)).digest() == raw_sha256(insns)
    assert prog_tag(insns) == prog_sha256(insns)[:8] and len(prog_tag(insns)) == 8


@pytest.mark.parametrize("src", [PseudoLdImm64.MAP_FD, PseudoLdImm64.MAP_VALUE])
def test_map_fd_and_value_zero_both_slots(src):
    insns = [*ld_imm64(1, src, (16 << 32) | 5), exit_()]
    data = digest_input(insns)
    assert data[4:8] == bytes(4) and data[12:16] == bytes(4)
    assert data[16:] == raw(insns)[16:]


@pytest.mark.parametrize("src", [PseudoLdImm64.NONE, PseudoLdImm64.BTF_ID, PseudoLdImm64.FUNC,
                                 PseudoLdImm64.MAP_IDX, PseudoLdImm64.MAP_IDX_VALUE])
def test_other_ld_imm64_kept(src):
    insns = [*ld_imm64(1, src, (16 << 32) | 5), exit_()]
    assert digest_input(insns) == raw(insns)


def test_second_slot_zeroed_only_when_it_looks_like_one():
    # A malformed "second slot" (off != 0) is not zeroed: the kernel's walk checks
    # code, dst, src and off of the next slot.
    first = Instruction(0x18, 1, PseudoLdImm64.MAP_FD, 0, 9)
    bad_second = Instruction(0, 0, 0, 1, 77)
    data = digest_input([first, bad_second])
    assert data[4:8] == bytes(4) and data[12:16] == raw([bad_second])[4:8]


def test_back_to_back_map_loads_are_each_zeroed():
    insns = [*ld_imm64(1, 1, 3), *ld_imm64(2, 2, (4 << 32) | 3), exit_()]
    data = digest_input(insns)
    for slot in range(4):
        assert data[8 * slot + 4:8 * slot + 8] == bytes(4)


def test_a_map_load_right_after_a_first_slot_is_not_zeroed_as_first():
    # Two first slots in a row (malformed): the second one is seen while
    # was_ld_map is set and its code is not 0, so it is not zeroed at all.
    first = Instruction(0x18, 1, 1, 0, 3)
    insns = [first, first, Instruction(0, 0, 0, 0, 4)]
    data = digest_input(insns)
    assert data[4:8] == bytes(4)
    assert data[12:16] == raw([first])[4:8]
    # the third slot follows a slot that reset the state: kept too
    assert data[20:24] == raw(insns)[20:24]


def test_accepts_raw_bytes_and_rejects_partial_slots():
    insns = [*ld_imm64(1, 1, 3), exit_()]
    assert prog_sha256(raw(insns)) == prog_sha256(insns)
    with pytest.raises(InstructionError):
        prog_sha256(raw(insns) + b"\x01")


@pytest.mark.parametrize("program", ["kfunc_task", "kfunc_iter", "kfunc_rcu_maps", "kfunc_weak"])
def test_reported_after_digest_is_the_running_kernels_tag(cli, bpf_object, build_dir, kernel, program):
    """``sigbpf resolve --json`` digest.after.tag == the tag this kernel gives the loaded program.

    The loader resolves in userspace here (the kernel lacks native support), so
    the kernel hashes the resolved instructions; the report's "after" digest is
    that hash, its "before" digest (the artifact's src_reg 3 form) is not.
    """
    import json

    from resolve_support import build_artifact_file
    from sigbpf.artifact.format import Artifact
    from sigbpf.kernel.info import prog_info
    from sigbpf.kernel.loader import load_artifact

    path = build_artifact_file(bpf_object(program), build_dir)
    proc = cli("resolve", path, "--json")
    assert proc.returncode == 0, proc.stderr
    (report,) = json.loads(proc.stdout)["programs"]
    with load_artifact(Artifact.decode(path.read_bytes())) as loaded:
        tag = prog_info(loaded.prog_fds[report["name"]]).tag.hex()
    assert report["digest"]["after"]["tag"] == tag
    assert report["digest"]["before"]["tag"] != tag
