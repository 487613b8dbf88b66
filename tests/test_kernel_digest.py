"""The program digest as this kernel (6.18) computes it, observed, and the excl_prog_hash check.

Facts established here (issue 3 part 2, kernel side):

* ``prog->tag`` (BPF_OBJ_GET_INFO_BY_FD) is the first 8 bytes of SHA-256 over
  the instructions as passed to BPF_PROG_LOAD with the imm of MAP_FD /
  MAP_VALUE ld_imm64 zeroed (both halves: fd and value offset); MAP_IDX /
  MAP_IDX_VALUE indexes and kfunc btf_ids stay in the hash.  That is
  ``sigbpf.resolve.digest.prog_tag``.
* A map created with ``excl_prog_hash`` accepts exactly the program whose full
  SHA-256 digest (same zeroing) equals it: ``prog_sha256``.  Anything else is
  refused with EACCES and ``program's hash doesn't match map's
  excl_prog_hash`` before any instruction is verified (``processed 0 insns``).
* For a portable artifact loaded through userspace resolution, the digest the
  kernel compares is that of the *resolved* instructions (src_reg 2, vmlinux
  ids), not of the artifact's src_reg 3 instructions.
"""

from __future__ import annotations

import errno
import hashlib
import struct

import pytest

from libbpf_ref import vmlinux

from sigbpf.asm import (Instruction, PseudoCall, PseudoLdImm64, Size, call_kfunc, exit_,
                        ld_imm64, ldx_mem, mov64_imm)
from sigbpf.errors import KernelError
from sigbpf.kernel.info import prog_info
from sigbpf.kernel.maps import MapType, create_map, update_elem
from sigbpf.kernel.program import ProgFlags, ProgLoad, ProgType, load_program
from sigbpf.kernel.run import run_program
from sigbpf.resolve.digest import prog_sha256, prog_tag

pytestmark = pytest.mark.usefixtures("kernel")

EXCL_MISMATCH = "program's hash doesn't match map's excl_prog_hash"


def encode(*parts: Instruction | list[Instruction]) -> bytes:
    flat: list[Instruction] = []
    for p in parts:
        flat.extend(p if isinstance(p, list) else [p])
    return Instruction.encode(flat)


def load(insns: bytes, fd_array: tuple[int, ...] = ()):
    return load_program(ProgLoad(ProgType.SYSCALL, insns, flags=ProgFlags.SLEEPABLE,
                                 name="digest", fd_array=fd_array))


def value_prog(src: int, imm: int, offset: int = 0) -> bytes:
    """r1 = &map value (+offset); r0 = *(u64 *)r1; exit."""
    return encode(ld_imm64(1, src, (offset << 32) | imm), ldx_mem(Size.DW, 0, 1, 0), exit_())


@pytest.mark.parametrize("src", [PseudoLdImm64.MAP_FD, PseudoLdImm64.MAP_VALUE])
def test_tag_zeroes_map_fd_and_value_offset(src: int) -> None:
    with create_map(MapType.ARRAY, 4, 16, 1, name="m") as m:
        update_elem(m, bytes(4), struct.pack("<qq", 5, 6))
        if src == PseudoLdImm64.MAP_FD:
            insns = encode(ld_imm64(1, src, m.fileno()), mov64_imm(0, 0), exit_())
        else:
            insns = value_prog(src, m.fileno(), 8)
        with load(insns) as p:
            tag = prog_info(p).tag
    assert tag == prog_tag(insns)
    assert tag != hashlib.sha256(insns).digest()[:8]  # the fd was zeroed, so raw sha differs
    zeroed = bytearray(insns)
    zeroed[4:8] = bytes(4)
    zeroed[12:16] = bytes(4)
    assert tag == hashlib.sha256(zeroed).digest()[:8]


def test_tag_keeps_fd_array_indexes() -> None:
    with create_map(MapType.ARRAY, 4, 8, 1, name="m") as m:  # direct value access: 1 entry
        insns = value_prog(PseudoLdImm64.MAP_IDX_VALUE, 1)
        with load(insns, fd_array=(m.fileno(), m.fileno())) as p:
            tag = prog_info(p).tag
    assert tag == hashlib.sha256(insns).digest()[:8] == prog_tag(insns)


def exclusive_map(digest: bytes):
    m = create_map(MapType.ARRAY, 4, 8, 1, name="excl", excl_prog_hash=digest)
    update_elem(m, bytes(4), struct.pack("<q", 99))
    return m


@pytest.mark.parametrize("src", [PseudoLdImm64.MAP_IDX_VALUE, PseudoLdImm64.MAP_VALUE])
def test_excl_prog_hash_is_the_zeroed_sha256(src: int) -> None:
    # The fd the map will get is not known before it exists; with MAP_VALUE it
    # is zeroed in the digest anyway, so any placeholder gives the same hash.
    template = value_prog(src, 0 if src == PseudoLdImm64.MAP_IDX_VALUE else 12345)
    with exclusive_map(prog_sha256(template)) as m:
        imm = 0 if src == PseudoLdImm64.MAP_IDX_VALUE else m.fileno()
        insns = value_prog(src, imm)
        with load(insns, fd_array=(m.fileno(),)) as p:
            assert run_program(p, bytes(8)).retval == 99


def test_excl_prog_hash_mismatch_is_refused_before_verification() -> None:
    """The raw SHA-256 of exactly the instructions loaded (map fd not zeroed) is refused."""
    import os

    fixed_fd = 200
    insns = value_prog(PseudoLdImm64.MAP_VALUE, fixed_fd)
    with exclusive_map(hashlib.sha256(insns).digest()) as m:
        os.dup2(m.fileno(), fixed_fd)
        try:
            with pytest.raises(KernelError) as info:
                load(insns)
        finally:
            os.close(fixed_fd)
    assert info.value.errno == errno.EACCES
    assert EXCL_MISMATCH in info.value.log
    assert "processed 0 insns" in info.value.log


def kfunc_prog(src: int, lock: int, unlock: int) -> bytes:
    """r1 = map value via fd_array[0]; rcu lock/unlock; return *(u64 *)value."""
    return encode(call_kfunc(lock, src), call_kfunc(unlock, src),
                  ld_imm64(1, PseudoLdImm64.MAP_IDX_VALUE, 0), ldx_mem(Size.DW, 0, 1, 0), exit_())


def test_excl_prog_hash_compares_the_resolved_instructions() -> None:
    """Artifact (src_reg 3, prog-BTF ids 1, 2) vs resolved (src_reg 2, vmlinux ids)."""
    ref = vmlinux()
    portable = kfunc_prog(PseudoCall.KFUNC_CALL_PROG_BTF, 1, 2)
    resolved = kfunc_prog(PseudoCall.KFUNC_CALL, ref.func_id("bpf_rcu_read_lock"),
                          ref.func_id("bpf_rcu_read_unlock"))
    assert prog_sha256(portable) != prog_sha256(resolved)
    with exclusive_map(prog_sha256(portable)) as m:
        with pytest.raises(KernelError) as info:
            load(resolved, fd_array=(m.fileno(),))
        assert EXCL_MISMATCH in info.value.log
    with exclusive_map(prog_sha256(resolved)) as m:
        with load(resolved, fd_array=(m.fileno(),)) as p:
            assert run_program(p, bytes(8)).retval == 99
            assert prog_info(p).tag == prog_tag(resolved)
