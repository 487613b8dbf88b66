"""The checks beyond the seed: prototype, is-it-a-kfunc, module replacement (library level).

Real data wherever it exists: the running kernel's BTF, the Debian 6.1 / 6.12
corpus (vmlinux, nf_conntrack and xfs module BTF, .BTF_ids).  The CLI side
(flags, JSON, exit codes) is tests/test_resolve_cli.py.
"""

from __future__ import annotations

import errno

import pytest

from resolve_support import module_btf_bytes, prog_btf, task_from_pid_btf
from sigbpf.asm import call_kfunc, exit_
from sigbpf.btf import BTF, Kind
from sigbpf.errors import NotFoundError
from sigbpf.resolve.findings import CheckName, Severity
from sigbpf.resolve.modules import ModuleBTF, check_module_collisions
from sigbpf.resolve.prototype import check_prototypes
from sigbpf.resolve.report import CheckOptions, analyze
from sigbpf.resolve.resolver import KfuncCall, resolve_kfunc_calls

K61, K612 = "6.1.0-56-amd64", "6.12.95+deb12-amd64"
NO_EXTRA = CheckOptions(prototype=False, kfunc=False, module=False)


@pytest.fixture(scope="module")
def vmlinux() -> BTF:
    return BTF.load_vmlinux()


@pytest.fixture(scope="module")
def corpus(corpus_btf):
    """name -> parsed corpus vmlinux BTF."""
    cache: dict[str, BTF] = {}

    def get(kernel: str) -> BTF:
        if kernel not in cache:
            cache[kernel] = BTF.from_file(corpus_btf(f"{kernel}.btf"), validate=False)
        return cache[kernel]

    return get


def call3(imm: int):
    return call_kfunc(imm, src=3)


def func_id(btf: BTF, name: str) -> int | None:
    try:
        return btf.find_by_name_kind(name, Kind.FUNC)
    except NotFoundError:
        return None


# ------------------------------------------------------------------ prototype

def task_prog(**kw) -> tuple[BTF, int]:
    b = task_from_pid_btf(**kw)
    return b.build(), b.type_count


def test_prototype_incompatible_is_an_einval_error_showing_both_prototypes(vmlinux):
    # tests/progs/bad_proto.c: bpf_task_from_pid(s32 pid, s32 extra) vs the kernel's (s32 pid).
    btf, fid = task_prog(extra_param=True)
    report = analyze([call3(fid), exit_()], btf, vmlinux,
                     options=CheckOptions(kfunc=False, module=False))
    assert report.resolution.ok, "the seed alone resolves it by name"
    assert not report.ok and report.errno == errno.EINVAL and report.errno_name == "EINVAL"
    (f,) = report.findings
    assert (f.check, f.severity, f.insn, f.name) == (CheckName.PROTOTYPE, Severity.ERROR, 0,
                                                      "bpf_task_from_pid")
    assert f.prototypes == ("struct task_struct *bpf_task_from_pid(int pid, int extra)",
                            "struct task_struct *bpf_task_from_pid(s32 pid)")
    assert "params: 2 params vs 1" in f.detail
    assert f.prototypes[0] in f.message and f.prototypes[1] in f.message
    assert report.log[-1].startswith("sigbpf: error: kfunc call insn 0: bpf_task_from_pid")
    assert report.after is None


def test_prototype_strict_difference_is_only_a_warning(vmlinux):
    # tests/progs/bad_strict_proto.c: (u64 pid) vs (s32 pid): libbpf accepts, strict mode does not.
    btf, fid = task_prog(param_type="u64")
    report = analyze([call3(fid), exit_()], btf, vmlinux,
                     options=CheckOptions(kfunc=False, module=False))
    assert report.ok and report.errno is None
    (f,) = report.findings
    assert f.severity is Severity.WARNING and f.errno is None
    assert f.detail == ("param 1 (pid): int size 8 vs 4",
                        "param 1 (pid): signedness differs (unsigned vs signed)")
    assert f.prototypes[1] == "struct task_struct *bpf_task_from_pid(s32 pid)"
    assert report.after is not None


def test_prototype_equal_gives_nothing(vmlinux):
    btf, fid = task_prog()
    report = analyze([call3(fid), exit_()], btf, vmlinux,
                     options=CheckOptions(kfunc=False, module=False))
    assert report.ok and report.findings == ()


def test_prototype_check_off(vmlinux):
    btf, fid = task_prog(extra_param=True)
    report = analyze([call3(fid), exit_()], btf, vmlinux,
                     options=CheckOptions(prototype=False, kfunc=False, module=False))
    assert report.ok and report.findings == () and report.checks["prototype"] == "off"


def test_prototype_checked_once_per_func(vmlinux):
    btf, fid = task_prog(extra_param=True)
    report = analyze([call3(fid), call3(fid), exit_()], btf, vmlinux,
                     options=CheckOptions(kfunc=False, module=False))
    assert [f.insn for f in report.findings] == [0]


def tagged_kfunc_names(btf: BTF) -> set[str]:
    """Names of FUNCs with DECL_TAG bpf_kfunc (the running kernel has 203)."""
    names = set()
    for tid in btf.ids_of_kind(Kind.DECL_TAG):
        tag = btf[tid]
        if tag.name == "bpf_kfunc" and tag.component_idx == -1:
            names.add(btf.name_of(tag.type))
    return names


def drift(old: BTF, new: BTF, names: set[str]) -> dict[str, tuple[bool, tuple[str, ...]]]:
    """name -> (compatible, differences) for every name whose prototype differs old -> new.

    The old kernel's whole BTF plays the program BTF: a program built against
    that kernel carries exactly that prototype.
    """
    calls = []
    for name in sorted(names):
        old_id, new_id = func_id(old, name), func_id(new, name)
        if old_id and new_id:
            calls.append(KfuncCall(len(calls), old_id, name, new_id))
    out = {}
    for f in check_prototypes(calls, old, new):
        out[f.name] = (not f.is_error, f.detail)
    return out


def test_real_prototype_drift_between_corpus_kernels_and_this_one(vmlinux, corpus):
    names = tagged_kfunc_names(vmlinux)
    assert len(names) == 203
    # Debian 6.12 -> 6.18 (this kernel): two kfuncs changed, both only strict warnings.
    assert drift(corpus(K612), vmlinux, names) == {
        "bpf_lookup_user_key": (True, ("param 1 (serial): signedness differs (unsigned vs signed)",)),
        "bpf_path_d_path": (True, ("param 1 (path) pointee: const differs (only the target has it)",)),
    }
    # Debian 6.1 -> 6.18: bpf_lookup_user_key already had u32 in 6.1.
    assert drift(corpus(K61), vmlinux, names) == {
        "bpf_lookup_user_key": (True, ("param 1 (serial): signedness differs (unsigned vs signed)",)),
    }
    # Debian 6.1 -> 6.12: of the 18 names both have (and 6.18 tags as kfuncs), none changed.
    both = {n for n in names if func_id(corpus(K61), n) and func_id(corpus(K612), n)}
    assert sorted(both) == [
        "bpf_fentry_test1", "bpf_key_put", "bpf_kfunc_call_memb_release",
        "bpf_kfunc_call_test_release", "bpf_lookup_system_key", "bpf_lookup_user_key",
        "bpf_modify_return_test", "cubictcp_acked", "cubictcp_cong_avoid", "cubictcp_cwnd_event",
        "cubictcp_init", "cubictcp_recalc_ssthresh", "cubictcp_state", "tcp_cong_avoid_ai",
        "tcp_reno_cong_avoid", "tcp_reno_ssthresh", "tcp_reno_undo_cwnd", "tcp_slow_start"]
    assert drift(corpus(K61), corpus(K612), names) == {}


def test_drifted_kfunc_through_the_resolver(vmlinux, corpus):
    # A program built against Debian 6.12 calling bpf_lookup_user_key(u32, u64), resolved here.
    old = corpus(K612)
    fid = func_id(old, "bpf_lookup_user_key")
    report = analyze([call3(fid), exit_()], old, vmlinux, options=CheckOptions(kfunc=False, module=False))
    assert report.ok
    (f,) = report.findings
    assert f.severity is Severity.WARNING
    assert f.prototypes == ("struct bpf_key *bpf_lookup_user_key(u32 serial, u64 flags)",
                            "struct bpf_key *bpf_lookup_user_key(s32 serial, u64 flags)")


# ---------------------------------------------------------------- modules

def module_defining(base: BTF, *names: str) -> ModuleBTF:
    """A module BTF (split on *base*) that defines FUNCs called *names*."""
    return ModuleBTF("sigbpf_test_mod", BTF.parse(module_btf_bytes(base, *names), base))


def test_module_redefining_a_kfunc_is_reported_and_vmlinux_wins(vmlinux):
    module = module_defining(vmlinux, "bpf_rcu_read_lock")
    prog = prog_btf("bpf_rcu_read_lock")
    insns = [call3(prog.funcs["bpf_rcu_read_lock"]), exit_()]
    report = analyze(insns, prog.btf, vmlinux, modules=[module],
                     options=CheckOptions(prototype=False, kfunc=False))
    assert report.ok
    vm_id = vmlinux.find_by_name_kind("bpf_rcu_read_lock", Kind.FUNC)
    mod_id = module.own_funcs("bpf_rcu_read_lock")[0]
    assert mod_id > vmlinux.type_count
    # pinned to vmlinux: src 2, imm = the vmlinux id, off = 0 (no module fd_array slot).
    assert (report.resolution.insns[0].src, report.resolution.insns[0].imm,
            report.resolution.insns[0].off) == (2, vm_id, 0)
    (f,) = report.findings
    assert (f.check, f.severity, f.module) == (CheckName.MODULE, Severity.WARNING, "sigbpf_test_mod")
    assert "pinned to vmlinux" in f.message and f"FUNC [{mod_id}]" in f.message
    assert f"vmlinux FUNC [{vm_id}]" in f.message


def test_module_check_off(vmlinux):
    module = module_defining(vmlinux, "bpf_rcu_read_lock")
    prog = prog_btf("bpf_rcu_read_lock")
    report = analyze([call3(prog.funcs["bpf_rcu_read_lock"])], prog.btf, vmlinux, modules=[module],
                     options=CheckOptions(prototype=False, kfunc=False, module=False))
    assert report.findings == () and report.checks["module"] == "off"


def test_real_shared_func_name_vmlinux_and_xfs(corpus, corpus_btf):
    # Debian 6.12: vmlinux and the xfs module both have a FUNC "stats_show" (a
    # static function in each; not a kfunc). The one name they share.
    kernel = corpus(K612)
    xfs = ModuleBTF.from_file(str(corpus_btf(f"{K612}.xfs.btf")), kernel)
    assert xfs.name == "xfs"
    own = {xfs.btf.name_of(i) for i in xfs.btf.ids_of_kind(Kind.FUNC) if i >= xfs.btf.start_id}
    vm = {kernel.name_of(i) for i in kernel.ids_of_kind(Kind.FUNC)}
    assert own & vm == {"stats_show"}
    prog = prog_btf("stats_show")
    res = resolve_kfunc_calls([call3(prog.funcs["stats_show"])], prog.btf, kernel)
    (f,) = check_module_collisions(res.calls, [xfs])
    assert f.severity is Severity.WARNING and f.module == "xfs"
    assert res.calls[0].btf_id == kernel.find_by_name_kind("stats_show", Kind.FUNC)


def test_module_kfunc_not_in_vmlinux_is_enoent_with_a_note(corpus, corpus_btf):
    # Debian 6.12 builds nf_conntrack as a module: its kfuncs (bpf_ct_release, ...)
    # are not in vmlinux BTF, so the seed's vmlinux-only lookup fails.
    kernel = corpus(K612)
    ct = ModuleBTF.from_file(str(corpus_btf(f"{K612}.nf_conntrack.btf")), kernel)
    assert ct.own_funcs("bpf_ct_release")
    prog = prog_btf("bpf_ct_release")
    report = analyze([call3(prog.funcs["bpf_ct_release"])], prog.btf, kernel, modules=[ct],
                     options=CheckOptions(prototype=False, kfunc=False))
    assert report.errno == errno.ENOENT
    assert report.resolution.log == ("kfunc call insn 0: bpf_ct_release not found in vmlinux BTF",)
    (f,) = report.findings
    assert f.severity is Severity.NOTE and f.module == "nf_conntrack"
    assert "searches vmlinux only" in f.message


def test_kfunc_names_do_not_collide_in_the_corpus(corpus, corpus_btf):
    # KERNEL-FACTS: kfunc names were unique across vmlinux plus modules. For the
    # nf_conntrack kfuncs: they exist in the module only, never in vmlinux too.
    for kernel_name in (K61, K612):
        kernel = corpus(kernel_name)
        ct = ModuleBTF.from_file(str(corpus_btf(f"{kernel_name}.nf_conntrack.btf")), kernel)
        mod_bpf = {ct.btf.name_of(i) for i in ct.btf.ids_of_kind(Kind.FUNC)
                   if i >= ct.btf.start_id and ct.btf.name_of(i).startswith("bpf_")}
        assert "bpf_ct_release" in mod_bpf
        assert all(func_id(kernel, n) is None for n in mod_bpf)


# ------------------------------------------------------------------ is it a kfunc

def kfunc_report(vmlinux, name, kfunc_set):
    from sigbpf.resolve.kfunc_check import check_is_kfunc

    prog = prog_btf(name)
    res = resolve_kfunc_calls([call3(prog.funcs[name]), exit_()], prog.btf, vmlinux)
    assert res.ok
    return check_is_kfunc(res.calls, kfunc_set)


def test_kfunc_set_of_this_kernel_is_its_decl_tags(vmlinux):
    from sigbpf.resolve.kfunc_check import KfuncSet

    ks = KfuncSet.for_kernel(vmlinux)
    assert ks.known and ks.source == "bpf_kfunc decl tags"
    assert len(ks.ids) == 203  # KERNEL-FACTS, measured on this 6.18 kernel
    assert {vmlinux.name_of(i) for i in ks.ids} == tagged_kfunc_names(vmlinux)


def test_not_a_kfunc_is_an_eacces_error(vmlinux):
    from sigbpf.resolve.kfunc_check import KfuncSet

    findings, source = kfunc_report(vmlinux, "vfs_read", KfuncSet.for_kernel(vmlinux))
    (f,) = findings
    assert (f.check, f.severity, f.errno) == (CheckName.KFUNC, Severity.ERROR, errno.EACCES)
    assert "calling kernel function vfs_read is not allowed" in f.message
    assert source == "bpf_kfunc decl tags"


def test_a_kfunc_passes(vmlinux):
    from sigbpf.resolve.kfunc_check import KfuncSet

    findings, _ = kfunc_report(vmlinux, "bpf_task_from_pid", KfuncSet.for_kernel(vmlinux))
    assert findings == []


def test_untagged_kernel_without_btf_ids_is_unknown(corpus):
    from sigbpf.resolve.kfunc_check import KfuncSet

    kernel = corpus(K612)
    ks = KfuncSet.for_kernel(kernel)
    assert not ks.known and "no bpf_kfunc decl tags" in ks.source
    findings, source = kfunc_report(kernel, "vfs_read", ks)
    (f,) = findings
    assert f.severity is Severity.NOTE and "cannot tell" in f.message
    report = analyze([call3(prog_btf("vfs_read").funcs["vfs_read"])], prog_btf("vfs_read").btf,
                     kernel, kfunc_set=ks, options=CheckOptions(prototype=False, module=False))
    assert report.ok, "unknown is not a rejection"


def test_kfunc_check_off(vmlinux):
    prog = prog_btf("vfs_read")
    report = analyze([call3(prog.funcs["vfs_read"]), exit_()], prog.btf, vmlinux,
                     options=CheckOptions(prototype=False, kfunc=False, module=False))
    assert report.ok and report.checks["kfunc"] == "off"


def test_the_kernel_refuses_what_the_kfunc_check_reports(vmlinux, kernel):
    """The real verifier, given the resolved call: EACCES, the message the check quotes."""
    from sigbpf.asm import Instruction, mov64_imm
    from sigbpf.errors import KernelError
    from sigbpf.kernel.program import ProgFlags, ProgLoad, ProgType, load_program
    from sigbpf.resolve.kfunc_check import KfuncSet

    prog = prog_btf("vfs_read")
    res = resolve_kfunc_calls([mov64_imm(1, 0), mov64_imm(2, 0), mov64_imm(3, 0), mov64_imm(4, 0),
                               call3(prog.funcs["vfs_read"]), exit_()], prog.btf, vmlinux)
    (f,), _ = kfunc_report(vmlinux, "vfs_read", KfuncSet.for_kernel(vmlinux))
    with pytest.raises(KernelError) as info:
        load_program(ProgLoad(ProgType.SYSCALL, Instruction.encode(res.insns),
                              flags=ProgFlags.SLEEPABLE, name="not_kfunc"))
    assert info.value.errno == f.errno == errno.EACCES
    assert "calling kernel function vfs_read is not allowed" in info.value.log


def test_btf_ids_kfunc_sets_of_untagged_kernels(corpus, corpus_btf):
    from sigbpf.resolve.kfunc_check import KfuncSet

    sets = {}
    for kernel_name in (K61, K612):
        kernel = corpus(kernel_name)
        ks = KfuncSet.for_kernel(kernel, [str(corpus_btf(f"{kernel_name}.BTF_ids"))])
        assert ks.known and ks.source == ".BTF_ids kfunc sets"
        sets[kernel_name] = {kernel.name_of(i) for i in ks.ids}
    assert {"bpf_task_from_pid", "bpf_task_release", "bpf_rcu_read_lock", "bpf_iter_num_new",
            "bpf_obj_new_impl", "bpf_cpumask_create"} <= sets[K612]
    assert "bpf_lookup_user_key" in sets[K61] and "bpf_task_from_pid" not in sets[K61]
    assert "vfs_read" not in sets[K61] | sets[K612]
    # With the list, the untagged kernel's verdict on vfs_read is definite.
    kernel = corpus(K612)
    ks = KfuncSet.for_kernel(kernel, [str(corpus_btf(f"{K612}.BTF_ids"))])
    (f,), _ = kfunc_report(kernel, "vfs_read", ks)
    assert f.severity is Severity.ERROR and f.errno == errno.EACCES
    assert kfunc_report(kernel, "bpf_task_from_pid", ks)[0] == []


def test_btf_ids_without_any_kfunc_set_is_bad_input(corpus, tmp_path):
    from sigbpf.errors import FormatError
    from sigbpf.resolve.kfunc_check import KfuncSet

    empty = tmp_path / "zero.BTF_ids"
    empty.write_bytes(bytes(64))
    with pytest.raises(FormatError) as info:
        KfuncSet.for_kernel(corpus(K612), [str(empty)])
    assert info.value.exit_code == 2 and info.value.file == str(empty)


def test_real_drift_between_debian_6_1_and_6_12_kfuncs(corpus, corpus_btf):
    """Every kfunc both Debian kernels list in .BTF_ids, old prototype vs new."""
    from sigbpf.resolve.kfunc_check import KfuncSet

    old, new = corpus(K61), corpus(K612)
    lists = {}
    for name, btf in ((K61, old), (K612, new)):
        ks = KfuncSet.for_kernel(btf, [str(corpus_btf(f"{name}.BTF_ids"))])
        lists[name] = {btf.name_of(i) for i in ks.ids}
    common = lists[K61] & lists[K612]
    assert len(common) == 20
    # One changed: the dynptr arguments of bpf_verify_pkcs7_signature went from the
    # kernel-internal struct bpf_dynptr_kern * to struct bpf_dynptr *: libbpf's rule
    # (any struct matches any struct) lets it through; the strict check warns.
    assert drift(old, new, common) == {
        "bpf_verify_pkcs7_signature": (True, (
            "param 1 (data_ptr) pointee: struct name 'bpf_dynptr_kern' vs 'bpf_dynptr'",
            "param 2 (sig_ptr) pointee: struct name 'bpf_dynptr_kern' vs 'bpf_dynptr'")),
    }


def test_the_kernel_does_not_notice_an_incompatible_prototype(bpf_object, build_dir, kernel):
    """Why the prototype check exists: name-only resolution + the real verifier accept bad_proto.c.

    The verifier checks the registers against the *kernel's* prototype
    (one argument), so the program's two-argument declaration, which is what
    was reviewed and signed, is never compared; it loads and runs.
    """
    import os
    import struct

    from resolve_support import build_artifact_file
    from sigbpf.artifact.format import Artifact
    from sigbpf.kernel.loader import load_artifact

    art = Artifact.decode(build_artifact_file(bpf_object("bad_proto"), build_dir).read_bytes())
    ctx = struct.pack("<ii", os.getpid(), 0)
    with load_artifact(art, run=True, ctx=ctx, checks=CheckOptions(prototype=False)) as loaded:
        (outcome,) = loaded.report.programs
    assert outcome.loaded and outcome.ran and outcome.retval == 0
    with load_artifact(art, run=True, ctx=ctx) as loaded:
        (outcome,) = loaded.report.programs
    assert not outcome.loaded and outcome.errno == errno.EINVAL
    assert "prototype incompatible" in outcome.log


def test_kernel_facts_drift_examples_newer_prototypes_on_this_kernel(vmlinux):
    """KERNEL-FACTS' Debian 7.3 prototypes (rebuilt by hand: no 7.3 BTF here) resolved on 6.18.

    u32 -> u64 arguments and an added const are strict warnings (libbpf's rule
    lets both through); ``()`` -> ``(void *)`` changes the parameter count: error.
    """
    from sigbpf.btf import BTFBuilder, Const, Func, FuncLinkage, FuncProto, Int, IntEncoding, Param, Ptr, Struct

    b = BTFBuilder()
    s32 = b.add(Int("int", 4, IntEncoding.SIGNED, 0, 32))
    u64 = b.add(Int("u64", 8, IntEncoding.NONE, 0, 64))
    dynptr = b.add(Struct("bpf_dynptr", 16, ()))
    cdynptr = b.add(Ptr(b.add(Const(dynptr))))
    key = b.add(Ptr(b.add(Struct("bpf_key", 0, ()))))
    void_ptr = b.add(Ptr(0))
    funcs = {
        "bpf_dynptr_adjust": FuncProto(s32, (Param("p", cdynptr), Param("start", u64), Param("end", u64))),
        "bpf_verify_pkcs7_signature": FuncProto(s32, (Param("data_p", cdynptr), Param("sig_p", cdynptr),
                                                      Param("trusted_keyring", key))),
        "bpf_session_cookie": FuncProto(b.add(Ptr(u64)), (Param("ctx", void_ptr),)),
    }
    ids = {name: b.add(Func(name, b.add(proto), FuncLinkage.GLOBAL)) for name, proto in funcs.items()}
    prog = b.build()
    report = analyze([call3(ids[n]) for n in funcs] + [exit_()], prog, vmlinux,
                     options=CheckOptions(kfunc=False, module=False))
    got = {f.name: (f.severity, f.detail) for f in report.findings}
    assert got == {
        "bpf_dynptr_adjust": (Severity.WARNING, ("param 2 (start): int size 8 vs 4",
                                                 "param 3 (end): int size 8 vs 4")),
        "bpf_verify_pkcs7_signature": (Severity.WARNING, (
            "param 1 (data_p) pointee: const differs (only the local has it)",
            "param 2 (sig_p) pointee: const differs (only the local has it)")),
        "bpf_session_cookie": (Severity.ERROR, ("params: 1 params vs 0",)),
    }
    assert not report.ok and report.errno == errno.EINVAL
