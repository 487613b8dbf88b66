"""sigbpf.kernel.loader with hand-built artifacts, against the real kernel.

These artifacts are made directly with the format model (docs/FORMAT.md),
so the loader is tested independently of ``sigbpf build``: src_reg 3 calls,
MAP_IDX_VALUE global data, weak kfuncs (KSYM_ADDR + poisoned call), and every
way a program can be refused before or by the kernel.
"""

from __future__ import annotations

import errno

import pytest

from libbpf_ref import vmlinux as libbpf_vmlinux

from hand_artifacts import (ArtifactMaker, KfuncSite, flat, rcu_artifact, single_call,
                            weak_artifact)

from sigbpf.artifact.format import Artifact, ArtifactMapFlags, Map, MapKind
from sigbpf.asm import PseudoCall, PseudoLdImm64, Size, exit_, ld_imm64, ldx_mem, mov64_imm
from sigbpf.kernel.loader import Resolution, load_artifact
from sigbpf.resolve.binding import POISON_CALL_KFUNC_BASE
from sigbpf.resolve.report import CheckOptions

pytestmark = pytest.mark.usefixtures("kernel")


def test_userspace_resolution_loads_and_runs() -> None:
    with load_artifact(rcu_artifact(), run=True, ctx=bytes(8)) as loaded:
        report = loaded.report
        assert report.resolution is Resolution.USERSPACE  # this kernel: not native
        assert [(p.name, p.loaded, p.retval) for p in report.programs] == [("rcu", True, 1234)]
        ref = libbpf_vmlinux()
        assert [(k.name, k.btf_id) for k in report.kfuncs] == [
            ("bpf_rcu_read_lock", ref.func_id("bpf_rcu_read_lock")),
            ("bpf_rcu_read_unlock", ref.func_id("bpf_rcu_read_unlock"))]
        assert report.as_json()["resolution"] == "userspace"


def test_loaded_artifact_closes_every_fd() -> None:
    import os

    loaded = load_artifact(rcu_artifact())
    fds = [loaded.btf_fd.fileno(), *(m.fileno() for m in loaded.map_fds),
           *(p.fileno() for p in loaded.prog_fds.values())]
    loaded.close()
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)


def test_rodata_is_frozen_and_bss_zero() -> None:
    from sigbpf.kernel.info import map_info
    import hashlib

    ro = Map(name="hand.rodata", kind=MapKind.RODATA, map_type=2, key_size=4, value_size=8,
             max_entries=1, map_flags=0x80, section=".rodata", flags=ArtifactMapFlags.FROZEN,
             initial_data=b"\x07")
    m = ArtifactMaker()
    insns = flat(ld_imm64(1, PseudoLdImm64.MAP_IDX_VALUE, 0), ldx_mem(Size.DW, 0, 1, 0), exit_())
    with load_artifact(m.artifact(insns, [], (ro,)), run=True, ctx=bytes(8)) as loaded:
        assert loaded.report.programs[0].retval == 7
        info = map_info(loaded.map_fds[0], with_hash=True)  # only a frozen map has a hash
        assert info.hash == hashlib.sha256(b"\x07" + bytes(7)).digest()


def test_weak_kfuncs_absent_one_is_dead_code() -> None:
    with load_artifact(weak_artifact(), run=True, ctx=bytes(8)) as loaded:
        report = loaded.report
        assert [(p.loaded, p.retval) for p in report.programs] == [(True, 1)]
        bound = {k.name: k.btf_id for k in report.kfuncs}
        assert bound["bpf_sigbpf_no_such_kfunc"] == 0
        assert bound["bpf_rcu_read_lock"] == libbpf_vmlinux().func_id("bpf_rcu_read_lock")


def test_weak_binding_rewrites_like_libbpf() -> None:
    from sigbpf.btf import BTF
    from sigbpf.resolve.binding import bind_sites, lookup_kfuncs

    art = weak_artifact()
    insns = bind_sites(art.programs[0], lookup_kfuncs(art, BTF.load_vmlinux()))
    assert (insns[1].src, insns[1].imm, insns[2].imm) == (0, 0, 0)            # &missing -> 0
    assert (insns[4].src, insns[4].imm) == (0, POISON_CALL_KFUNC_BASE + 0)    # poisoned call
    assert (insns[6].src, insns[6].imm) == (PseudoLdImm64.BTF_ID,
                                            libbpf_vmlinux().func_id("bpf_rcu_read_lock"))
    assert insns[9].src == PseudoCall.KFUNC_CALL_PROG_BTF  # left to the resolution pass


def test_poisoned_call_on_a_live_path_is_refused_by_the_verifier() -> None:
    m = ArtifactMaker()
    missing = m.kfunc("bpf_sigbpf_no_such_kfunc", weak=True)
    art = m.artifact(flat(m.call(missing), mov64_imm(0, 0), exit_()), [KfuncSite(0, missing)])
    with load_artifact(art) as loaded:
        (p,) = loaded.report.programs
    assert not p.loaded
    assert f"invalid func unknown#{POISON_CALL_KFUNC_BASE}" in p.log


def test_missing_kfunc_is_the_seeds_enoent() -> None:
    with load_artifact(single_call("bpf_sigbpf_no_such_kfunc")) as loaded:
        (p,) = loaded.report.programs
    assert not p.loaded and p.errno == errno.ENOENT
    assert "kfunc call insn 1: bpf_sigbpf_no_such_kfunc not found in vmlinux BTF" in p.log
    assert loaded.report.kfuncs[0].btf_id == 0


def test_not_a_kfunc_is_refused_before_the_kernel() -> None:
    # (the prototype check would refuse it too: the artifact's vfs_read(void) is not the kernel's)
    with load_artifact(single_call("vfs_read"), checks=CheckOptions(prototype=False)) as loaded:
        (p,) = loaded.report.programs
    assert not p.loaded and p.errno == errno.EACCES
    assert "vfs_read" in p.error and "rejected before loading" in p.error


def test_not_a_kfunc_without_the_check_is_the_kernels_eacces() -> None:
    with load_artifact(single_call("vfs_read"), checks=CheckOptions(kfunc=False,
                                                                    prototype=False)) as loaded:
        (p,) = loaded.report.programs
    assert not p.loaded and p.errno == errno.EACCES
    assert "calling kernel function vfs_read is not allowed" in p.log


def test_incompatible_prototype_is_refused_before_the_kernel() -> None:
    # bpf_rcu_read_lock(void) in the kernel; the artifact claims (int x).
    with load_artifact(single_call("bpf_rcu_read_lock", proto=1)) as loaded:
        (p,) = loaded.report.programs
    assert not p.loaded and p.errno == errno.EINVAL
    assert "rejected before loading" in p.error and "bpf_rcu_read_lock" in p.log


def test_forced_kernel_resolution_on_this_kernel_is_reserved_fields() -> None:
    with load_artifact(rcu_artifact(), resolution="kernel") as loaded:
        assert loaded.report.resolution is Resolution.KERNEL
        (p,) = loaded.report.programs
    assert not p.loaded and p.errno == errno.EINVAL
    assert "BPF_CALL uses reserved fields" in p.log


def test_bad_program_btf_stops_before_maps() -> None:
    from sigbpf.errors import SigbpfError

    art = rcu_artifact()
    bad = Artifact(art.name, art.btf[:-3], art.programs, art.maps, art.kfuncs)
    with pytest.raises(SigbpfError):
        load_artifact(bad)


def test_one_refused_program_does_not_stop_the_others() -> None:
    m = ArtifactMaker()
    missing = m.kfunc("bpf_sigbpf_no_such_kfunc")
    lock, unlock = m.kfunc("bpf_rcu_read_lock"), m.kfunc("bpf_rcu_read_unlock")
    bad = m.artifact(flat(m.call(missing), mov64_imm(0, 0), exit_()), [KfuncSite(0, missing)],
                     name="bad").programs[0]
    good = m.artifact(flat(m.call(lock), m.call(unlock), mov64_imm(0, 5), exit_()),
                      [KfuncSite(0, lock), KfuncSite(1, unlock)], name="good").programs[0]
    art = Artifact("two", m.btf.encode(), (bad, good), (), tuple(m.kfuncs))
    with load_artifact(art, run=True, ctx=bytes(8)) as loaded:
        report = loaded.report
        assert [(p.name, p.loaded, p.retval) for p in report.programs] == [
            ("bad", False, None), ("good", True, 5)]
        assert not report.ok
        assert list(loaded.prog_fds) == ["good"]


def test_module_check_reports_a_module_defining_the_same_kfunc_and_stays_pinned(tmp_path) -> None:
    """The loader's module check: a module (here a made-up one, split BTF on this kernel's
    vmlinux) that also defines bpf_rcu_read_lock is reported; the call still goes to the
    vmlinux FUNC (src_reg 2, off 0) and runs.  --no-module-check (module=False) drops it."""
    from resolve_support import module_btf_bytes
    from sigbpf.btf import BTF
    from sigbpf.kernel.btf import running_module_btfs

    vm = BTF.load_vmlinux()
    moddir = tmp_path / "btf"
    moddir.mkdir()
    (moddir / "vmlinux").write_bytes(b"")  # never read: vmlinux is the base, not a module
    (moddir / "sigbpf_mod").write_bytes(module_btf_bytes(vm, "bpf_rcu_read_lock"))
    (moddir / "broken_mod").write_bytes(b"\x9f\xeb\x01")
    modules, problems = running_module_btfs(vm, str(moddir))
    assert [m.name for m in modules] == ["sigbpf_mod"]
    assert len(problems) == 1 and "broken_mod" in problems[0]
    ref = libbpf_vmlinux()
    with load_artifact(rcu_artifact(), run=True, ctx=bytes(8), modules=modules) as loaded:
        assert [(p.loaded, p.retval) for p in loaded.report.programs] == [(True, 1234)]
        (note,) = loaded.report.notes
        assert note == (f"program 'rcu': sigbpf: warning: kfunc call insn 0: bpf_rcu_read_lock is "
                        f"also defined by module sigbpf_mod (FUNC [{vm.type_count + 2}]); pinned to "
                        f"vmlinux: the call resolves to vmlinux FUNC "
                        f"[{ref.func_id('bpf_rcu_read_lock')}] with off = 0, the module's FUNC is "
                        f"never chosen")
    with load_artifact(rcu_artifact(), modules=modules,
                       checks=CheckOptions(module=False)) as loaded:
        assert loaded.report.notes == [] and loaded.report.programs[0].loaded


def test_running_kernel_module_btfs_are_read_from_sysfs() -> None:
    """This machine: /sys/kernel/btf holds only vmlinux (KERNEL-FACTS), so no module."""
    import os

    from sigbpf.btf import BTF
    from sigbpf.kernel.btf import running_module_btfs

    modules, problems = running_module_btfs(BTF.load_vmlinux())
    expected = sorted(n for n in os.listdir("/sys/kernel/btf") if n != "vmlinux")
    assert [m.name for m in modules] == expected and problems == ()
