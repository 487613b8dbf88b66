"""The native PROG_BTF support probe against the real kernel (6.18: not native)."""

from __future__ import annotations

import errno

import pytest

from sigbpf.btf import BTF, Func, FuncLinkage, FuncProto, BTFBuilder
from sigbpf.errors import KernelError
from sigbpf.kernel import probe
from sigbpf.kernel.btf import load_btf

pytestmark = pytest.mark.usefixtures("kernel")


def test_this_kernel_does_not_resolve_prog_btf_calls() -> None:
    """KERNEL-FACTS.md: 6.18 answers a src_reg 3 CALL with 'BPF_CALL uses reserved fields'."""
    result = probe.run_probe()
    assert result.native is False
    assert probe.RESERVED_FIELDS in result.detail


def test_probe_is_cached_per_process() -> None:
    first = probe.kernel_resolves_prog_btf()
    assert probe.kernel_resolves_prog_btf() is first


def test_probe_program_shape() -> None:
    """Two src_reg 3 calls whose imm name real kfuncs in the probe's own BTF."""
    from sigbpf.asm import Instruction

    insns, raw_btf = probe.probe_program()
    btf = BTF.parse(raw_btf)
    calls = [i for i in Instruction.decode(insns) if i.is_prog_btf_kfunc_call]
    assert [btf.name_of(c.imm) for c in calls] == list(probe.PROBE_KFUNCS)
    vmlinux = BTF.load_vmlinux()
    for name in probe.PROBE_KFUNCS:
        assert vmlinux.find_by_name_kind(name, 12) > 0


def test_kernel_refuses_extern_func_linkage_in_prog_btf() -> None:
    """Why the probe (and artifacts) use GLOBAL linkage: BPF_BTF_LOAD says 'Invalid func linkage'."""
    b = BTFBuilder()
    proto = b.add(FuncProto(0, ()))
    b.add(Func("bpf_rcu_read_lock", proto, FuncLinkage.EXTERN))
    with pytest.raises(KernelError) as info:
        load_btf(b.encode())
    assert info.value.errno == errno.EINVAL
    assert "Invalid func linkage" in info.value.log


def test_interpretation_of_each_answer() -> None:
    """The native branch cannot run on this kernel; its reading of the seed's answers can be checked."""
    assert probe.interpret(None).native is True
    assert probe.interpret("0: (85) call ...\nBPF_CALL uses reserved fields\n").native is False
    seed = "kfunc call insn 0: bpf_rcu_read_lock not found in vmlinux BTF\n"
    native = probe.interpret(seed)
    assert native.native is True and "bpf_rcu_read_lock not found" in native.detail
    assert probe.interpret("Unreleased reference id=2\n") is None


def test_probe_without_permission_is_a_clear_error() -> None:
    """Run in a child without capabilities: EPERM, said in one line."""
    import shutil
    import subprocess
    import sys

    from conftest import ROOT

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not installed")
    code = ("from sigbpf.kernel.probe import run_probe\n"
            "from sigbpf.errors import KernelError\n"
            "try:\n    run_probe()\nexcept KernelError as e:\n    print(e.errno, e)\n")
    proc = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-all", sys.executable,
                           "-c", code], capture_output=True, text=True, cwd="/",
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.stdout.startswith(f"{errno.EPERM} "), proc.stdout + proc.stderr
    assert "no permission to use bpf()" in proc.stdout
