"""What this kernel (6.18) answers to kfunc CALLs: the facts sigbpf's loader relies on.

Each message is asserted in the kernel's own words (KERNEL-FACTS.md, "Measured
on this machine"); btf_ids come from libbpf (the reference), not from sigbpf.
"""

from __future__ import annotations

import errno

import pytest

from libbpf_ref import vmlinux

from sigbpf.asm import Instruction, PseudoCall, call_kfunc, exit_, mov64_imm
from sigbpf.errors import KernelError
from sigbpf.kernel.info import prog_info
from sigbpf.kernel.program import ProgFlags, ProgLoad, ProgType, load_program
from sigbpf.kernel.run import run_program

pytestmark = pytest.mark.usefixtures("kernel")


def rcu_prog(src: int = PseudoCall.KFUNC_CALL, lock_imm: int | None = None, off: int = 0) -> bytes:
    ref = vmlinux()
    lock = ref.func_id("bpf_rcu_read_lock") if lock_imm is None else lock_imm
    unlock = ref.func_id("bpf_rcu_read_unlock")
    return Instruction.encode([call_kfunc(lock, src, off), call_kfunc(unlock), mov64_imm(0, 3), exit_()])


def load(insns: bytes, **kw) -> object:
    kw.setdefault("flags", ProgFlags.SLEEPABLE)
    return load_program(ProgLoad(ProgType.SYSCALL, insns, name="kf", **kw))


def refusal(insns: bytes, **kw) -> KernelError:
    with pytest.raises(KernelError) as info:
        load(insns, **kw)
    return info.value


def test_vmlinux_kfunc_call_loads_and_runs() -> None:
    with load(rcu_prog()) as fd:
        assert run_program(fd, bytes(8)).retval == 3


def test_prog_btf_pseudo_call_is_reserved_here() -> None:
    """The native-support probe's signal: src_reg 3 is 'BPF_CALL uses reserved fields'."""
    err = refusal(rcu_prog(src=PseudoCall.KFUNC_CALL_PROG_BTF, lock_imm=1))
    assert err.errno == errno.EINVAL
    assert "BPF_CALL uses reserved fields" in err.log


def test_kfunc_needs_gpl_license() -> None:
    err = refusal(rcu_prog(), license="Proprietary")
    assert "cannot call kernel function from non-GPL compatible program" in err.log


def test_btf_id_that_is_not_a_function() -> None:
    err = refusal(rcu_prog(lock_imm=1))
    assert err.errno == errno.EINVAL
    assert "kernel btf_id 1 is not a function" in err.log


def test_function_that_is_not_a_kfunc() -> None:
    err = refusal(rcu_prog(lock_imm=vmlinux().func_id("vfs_read")))
    assert err.errno == errno.EACCES
    assert "calling kernel function vfs_read is not allowed" in err.log


def test_module_offset_without_fd_array() -> None:
    err = refusal(rcu_prog(off=1))
    assert err.errno == errno.EPROTO
    assert "failed to find BTF for kernel function" in err.log or \
        "kfunc offset > 0 without fd_array is invalid" in err.log


def test_unreleased_reference_is_refused() -> None:
    ref = vmlinux()
    insns = Instruction.encode([mov64_imm(1, 1), call_kfunc(ref.func_id("bpf_task_from_pid")),
                                mov64_imm(0, 0), exit_()])
    err = refusal(insns)
    assert err.errno == errno.EINVAL
    assert "Unreleased reference" in err.log


def test_xlated_kfunc_calls_are_rewritten_but_tag_is_of_loaded_insns() -> None:
    """The tag hashes the instructions as passed (vmlinux ids), not the JIT-ready rewrite."""
    import hashlib

    insns = rcu_prog()
    with load(insns) as fd:
        info = prog_info(fd)
    assert info.tag == hashlib.sha256(insns).digest()[:8]
    assert info.xlated_insns != insns  # fixup_kfunc_call put call offsets in imm
    assert len(info.xlated_insns) == len(insns)
