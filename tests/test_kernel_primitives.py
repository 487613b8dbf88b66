"""sigbpf.kernel primitives against the real kernel: bpf() errors, Fd, maps, BTF, programs, runs.

Every verifier message asserted here is the kernel's own text (6.18), as
listed in KERNEL-FACTS.md where it is listed there.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct

import pytest

from sigbpf.asm import Instruction, Size, call_helper, exit_, ld_imm64, ldx_mem, mov64_imm
from sigbpf.asm import PseudoLdImm64
from sigbpf.errors import KernelError
from sigbpf.kernel.btf import load_btf
from sigbpf.kernel.info import map_info, prog_info
from sigbpf.kernel.maps import (MapType, create_map, freeze, lookup_elem, object_name,
                                update_elem)
from sigbpf.kernel.program import ProgFlags, ProgLoad, ProgType, load_program
from sigbpf.kernel.run import run_program

pytestmark = pytest.mark.usefixtures("kernel")


def code(*insns: Instruction | list[Instruction]) -> bytes:
    flat: list[Instruction] = []
    for i in insns:
        flat.extend(i if isinstance(i, list) else [i])
    return Instruction.encode(flat)


def syscall_prog(insns: bytes, **kw) -> ProgLoad:
    return ProgLoad(ProgType.SYSCALL, insns, flags=ProgFlags.SLEEPABLE, name=kw.pop("name", "t"), **kw)


# A minimal valid BTF: [1] INT 'int' size 4 signed 32 bits.
INT_BTF = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 16, 16, 5) + \
    struct.pack("<IIII", 1, 1 << 24, 4, (1 << 24) | 32) + b"\0int\0"


def test_return_constant_and_run() -> None:
    with load_program(syscall_prog(code(mov64_imm(0, 42), exit_()))) as fd:
        assert run_program(fd, bytes(8)).retval == 42


def test_ctx_is_passed_and_negative_retval_is_signed() -> None:
    # r0 = *(u32 *)(ctx + 4); r0 = -r0 ... just return 0 - ctx.n
    insns = code(ldx_mem(Size.W, 2, 1, 4), mov64_imm(0, 0),
                 Instruction(0x1F, 0, 2, 0, 0),  # r0 -= r2
                 exit_())
    with load_program(syscall_prog(insns)) as fd:
        assert run_program(fd, struct.pack("<ii", 0, 5)).retval == -5


def test_syscall_program_writes_ctx_back() -> None:
    # *(u32 *)(ctx + 0) = 77; return 0
    insns = code(Instruction(0x62, 1, 0, 0, 77), mov64_imm(0, 0), exit_())
    with load_program(syscall_prog(insns)) as fd:
        result = run_program(fd, bytes(8))
    assert result.ctx[:4] == struct.pack("<i", 77)


def test_verifier_refusal_carries_errno_and_full_log() -> None:
    with pytest.raises(KernelError) as info:
        load_program(syscall_prog(code(exit_()), name="noret"))
    err = info.value
    assert err.errno == errno.EACCES
    assert "R0 !read_ok" in err.log           # the kernel's words
    assert "processed 1 insns" in err.log     # the whole log, not a line of it
    assert "\n" not in str(err) and "noret" in str(err) and "EACCES" in str(err)


def test_syscall_program_must_be_sleepable() -> None:
    """KERNEL-FACTS.md: 'Syscall programs can only be sleepable' without BPF_F_SLEEPABLE."""
    req = ProgLoad(ProgType.SYSCALL, code(mov64_imm(0, 0), exit_()), name="nosleep")
    with pytest.raises(KernelError) as info:
        load_program(req)
    assert info.value.errno == errno.EINVAL
    assert "Syscall programs can only be sleepable" in info.value.log


def test_fd_closes_deterministically() -> None:
    fd = load_program(syscall_prog(code(mov64_imm(0, 1), exit_())))
    number = fd.fileno()
    os.fstat(number)
    fd.close()
    assert fd.closed
    fd.close()  # idempotent
    with pytest.raises(OSError):
        os.fstat(number)
    with pytest.raises(KernelError):
        fd.fileno()


def test_bad_fd_is_ebadf() -> None:
    with pytest.raises(KernelError) as info:
        update_elem(999_999, bytes(4), bytes(8), what="no map")
    assert info.value.errno == errno.EBADF


def test_array_map_update_lookup_freeze_and_hash() -> None:
    with create_map(MapType.ARRAY, 4, 8, 1, name="t.rodata") as m:
        update_elem(m, bytes(4), b"sigbpf!!")
        assert lookup_elem(m, bytes(4), 8) == b"sigbpf!!"
        freeze(m)
        with pytest.raises(KernelError) as info:
            update_elem(m, bytes(4), b"changed!")
        assert info.value.errno == errno.EPERM
        # 6.18: a frozen array map reports the SHA-256 of its value area.
        info_ = map_info(m, with_hash=True)
        assert info_.hash == hashlib.sha256(b"sigbpf!!").digest()
        assert (info_.type, info_.key_size, info_.value_size, info_.name) == (2, 4, 8, "t.rodata")


def test_map_hash_needs_frozen_map() -> None:
    with create_map(MapType.ARRAY, 4, 8, 1, name="unfrozen") as m:
        with pytest.raises(KernelError) as info:
            map_info(m, with_hash=True)
    assert info.value.errno == errno.EPERM


def test_map_create_invalid_is_einval() -> None:
    with pytest.raises(KernelError) as info:
        create_map(MapType.ARRAY, 4, 0, 1, name="zero_value")
    assert info.value.errno == errno.EINVAL
    assert "zero_value" in str(info.value)


def test_object_name_is_what_the_kernel_accepts() -> None:
    assert object_name(".data.custom") == ".data.custom"
    assert object_name("a-b c/very_long_name_here") == "a_b_c_very_long"
    with create_map(MapType.ARRAY, 4, 4, 1, name="weird name/with-dash and more") as m:
        assert map_info(m).name == "weird_name_with"


def test_btf_load_and_refusal_log() -> None:
    with load_btf(INT_BTF) as fd:
        assert fd.fileno() >= 0
    bad = bytearray(INT_BTF)
    struct.pack_into("<I", bad, 24 + 12, 200)  # INT nr_bits 200 > 128
    with pytest.raises(KernelError) as info:
        load_btf(bytes(bad))
    assert info.value.errno == errno.EINVAL
    assert info.value.log  # the kernel's BTF checker explains itself


def test_map_with_btf_key_value_types() -> None:
    with load_btf(INT_BTF) as btf:
        with create_map(MapType.ARRAY, 4, 4, 1, name="btfmap", btf_fd=btf,
                        btf_key_type_id=1, btf_value_type_id=1) as m:
            assert map_info(m).btf_id > 0


def test_map_value_through_fd_array_and_map_idx() -> None:
    """ld_imm64 src 6 (BPF_PSEUDO_MAP_IDX_VALUE): imm indexes fd_array, not an fd."""
    with create_map(MapType.ARRAY, 4, 8, 1, name="data") as m:
        update_elem(m, bytes(4), struct.pack("<q", 1234))
        insns = code(ld_imm64(1, PseudoLdImm64.MAP_IDX_VALUE, 1),  # fd_array[1], offset 0
                     ldx_mem(Size.DW, 0, 1, 0), exit_())
        with load_program(syscall_prog(insns, fd_array=(-1, m.fileno()))) as p:
            assert run_program(p, bytes(8)).retval == 1234
            assert len(prog_info(p).map_ids) == 1


def test_prog_info_tag_and_xlated() -> None:
    insns = code(mov64_imm(0, 7), exit_())
    with load_program(syscall_prog(insns, name="tagged")) as fd:
        info = prog_info(fd)
    assert info.name == "tagged" and info.type == ProgType.SYSCALL
    assert info.xlated_insns == insns
    assert info.tag == hashlib.sha256(insns).digest()[:8]
    assert info.gpl_compatible


def test_helper_call_runs() -> None:
    # bpf_get_smp_processor_id (8) is allowed in syscall programs; any CPU number >= 0.
    with load_program(syscall_prog(code(call_helper(8), exit_()))) as fd:
        assert run_program(fd, bytes(8)).retval >= 0


def test_empty_program_rejected_before_the_kernel() -> None:
    with pytest.raises(KernelError) as info:
        load_program(syscall_prog(b""))
    assert info.value.errno == errno.EINVAL


def test_run_with_context_shorter_than_the_program_reads_is_einval() -> None:
    """The kernel checks ctx_size_in against the largest ctx offset the verifier saw."""
    with load_program(syscall_prog(code(ldx_mem(Size.W, 0, 1, 4), exit_()))) as fd:
        for short in (b"", bytes(4)):
            with pytest.raises(KernelError) as info:
                run_program(fd, short)
            assert info.value.errno == errno.EINVAL
        assert run_program(fd, bytes(8)).retval == 0


def test_pin_and_get_back(tmp_path) -> None:
    from sigbpf.kernel.bpffs import BPFFS, obj_get, obj_pin

    path = f"{BPFFS}/sigbpf-test-pin-{os.getpid()}"
    with create_map(MapType.ARRAY, 4, 4, 1, name="pinned") as m:
        obj_pin(m, path)
        try:
            with obj_get(path) as again:
                assert map_info(again).id == map_info(m).id
        finally:
            os.unlink(path)
    with pytest.raises(KernelError) as info:
        obj_get(path)
    assert info.value.errno == errno.ENOENT


def test_log_buffer_grows_to_the_whole_log(monkeypatch) -> None:
    """A log that does not fit (ENOSPC) is fetched again whole, using log_true_size."""
    from sigbpf.kernel import log as log_mod

    with pytest.raises(KernelError) as full:
        load_program(syscall_prog(code(exit_()), name="noret"))
    monkeypatch.setattr(log_mod, "FIRST_LOG_SIZE", 16)
    with pytest.raises(KernelError) as grown:
        load_program(syscall_prog(code(exit_()), name="noret"))
    assert grown.value.errno == errno.EACCES  # the verdict, not ENOSPC
    assert grown.value.log == full.value.log and len(full.value.log) > 16
