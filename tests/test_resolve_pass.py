"""The seed's PROG_BTF resolution pass (sigbpf.resolve.resolver), rule by rule.

Every expected log line below is the seed's ``verbose()`` format verbatim
(kernel/bpf/verifier.c, resolve_loader_kfunc), and every errno the value the
seed returns.  Instruction streams and program BTF are built by hand with
sigbpf.asm and BTFBuilder; ids found in vmlinux are checked against libbpf's
``btf__find_by_name_kind`` (libbpf 1.1 through ctypes), which searches the
same way as the kernel's ``btf_find_by_name_kind``: first id wins.
"""

from __future__ import annotations

import errno

import pytest

from resolve_support import Libbpf, prog_btf
from sigbpf.asm import (Instruction, call_helper, call_kfunc, call_pseudo, exit_, ld_imm64,
                        mov64_imm)
from sigbpf.btf import BTF, BTFBuilder, Func, FuncLinkage, FuncProto, Int, IntEncoding, Kind
from sigbpf.resolve.resolver import (Resolution, is_prog_btf_kfunc_call,
                                     resolve_kfunc_calls)

VMLINUX_PATH = "/sys/kernel/btf/vmlinux"
KFUNCS = ("bpf_rcu_read_lock", "bpf_rcu_read_unlock", "bpf_task_from_pid", "bpf_task_release",
          "bpf_cpumask_create", "bpf_iter_num_new", "bpf_obj_new_impl")


@pytest.fixture(scope="module")
def vmlinux() -> BTF:
    return BTF.load_vmlinux()


@pytest.fixture(scope="module")
def libbpf_vmlinux():
    lib = Libbpf(VMLINUX_PATH)
    yield lib
    lib.close()


def call3(imm: int, off: int = 0) -> Instruction:
    return call_kfunc(imm, src=3, off=off)


def test_resolves_by_name_to_the_vmlinux_id_libbpf_finds(vmlinux, libbpf_vmlinux):
    prog = prog_btf(*KFUNCS)
    insns = [call3(prog.funcs[n]) for n in KFUNCS] + [mov64_imm(0, 0), exit_()]
    before = list(insns)
    res = resolve_kfunc_calls(insns, prog.btf, vmlinux)
    assert res.ok and res.errno is None and res.errno_name is None and res.log == ()
    assert insns == before, "the pass must not touch its input"
    for index, name in enumerate(KFUNCS):
        want = libbpf_vmlinux.find_func(name)
        assert want > 0
        # src_reg 3 -> 2 (BPF_PSEUDO_KFUNC_CALL), imm -> vmlinux id; code/dst/off unchanged.
        assert res.insns[index] == Instruction(0x85, 0, 2, 0, want)
        call = res.calls[index]
        assert (call.insn, call.name, call.btf_id, call.prog_btf_id) == (index, name, want,
                                                                        prog.funcs[name])
    assert res.insns[len(KFUNCS):] == tuple(insns[len(KFUNCS):])
    assert vmlinux.kind_of(res.insns[0].imm) == Kind.FUNC


@pytest.mark.parametrize("case", ["no prog BTF", "no vmlinux BTF", "off 1", "off -1"])
def test_check1_requires_prog_btf_vmlinux_and_off_zero(vmlinux, case):
    prog = prog_btf("bpf_rcu_read_lock")
    fid = prog.funcs["bpf_rcu_read_lock"]
    insns = [mov64_imm(1, 0), call3(fid, off={"off 1": 1, "off -1": -1}.get(case, 0)), exit_()]
    res = resolve_kfunc_calls(insns, None if case == "no prog BTF" else prog.btf,
                              None if case == "no vmlinux BTF" else vmlinux)
    assert not res.ok
    assert res.errno == errno.EINVAL and res.errno_name == "EINVAL"
    assert res.log == ("kfunc call insn 1: PROG_BTF resolution requires prog BTF and insn->off == 0",)
    assert res.failed_insn == 1
    assert res.insns == tuple(insns)


@pytest.mark.parametrize("imm_kind", ["void (0)", "-1", "INT_MIN", "last id + 1", "INT_MAX",
                                      "an INT", "a FUNC_PROTO"])
def test_check2_imm_is_not_a_func(vmlinux, imm_kind):
    prog = prog_btf("bpf_rcu_read_lock")
    imm = {"void (0)": 0, "-1": -1, "INT_MIN": -2**31, "last id + 1": prog.btf.type_count + 1,
           "INT_MAX": 2**31 - 1, "an INT": prog.int_id, "a FUNC_PROTO": prog.proto_id}[imm_kind]
    res = resolve_kfunc_calls([call3(imm), exit_()], prog.btf, vmlinux)
    assert res.errno == errno.EINVAL
    # imm is printed with %d: signed.
    assert res.log == (f"kfunc call insn 0: imm {imm} is not a FUNC in prog BTF",)
    assert res.calls[0].btf_id is None and res.calls[0].name == ""


def test_check2_prints_negative_imm_signed(vmlinux):
    prog = prog_btf("bpf_rcu_read_lock")
    res = resolve_kfunc_calls([call3(-2**31)], prog.btf, vmlinux)
    assert res.log == ("kfunc call insn 0: imm -2147483648 is not a FUNC in prog BTF",)


def test_check3_nameless_func(vmlinux):
    # Only reachable for BTF the kernel did not validate: BPF_BTF_LOAD refuses a
    # nameless FUNC ("[2] FUNC (anon) type_id=1 Invalid name", measured here).
    prog = prog_btf(nameless=True)
    res = resolve_kfunc_calls([call3(prog.funcs[""]), exit_()], prog.btf, vmlinux)
    assert res.errno == errno.EINVAL
    assert res.log == ("kfunc call insn 0: prog-BTF FUNC has no name",)


def test_check4_name_not_in_vmlinux_is_enoent(vmlinux, libbpf_vmlinux):
    name = "bpf_sigbpf_no_such_kfunc"
    assert libbpf_vmlinux.find_func(name) == -errno.ENOENT
    prog = prog_btf(name)
    res = resolve_kfunc_calls([mov64_imm(0, 0), call3(prog.funcs[name]), exit_()], prog.btf, vmlinux)
    assert res.errno == errno.ENOENT and res.errno_name == "ENOENT"
    assert res.log == (f"kfunc call insn 1: {name} not found in vmlinux BTF",)
    assert res.calls[0].name == name and res.calls[0].btf_id is None


def test_check4_only_funcs_count(vmlinux):
    # "task_struct" is a STRUCT in vmlinux, not a FUNC: btf_find_by_name_kind(.., FUNC) fails.
    assert vmlinux.find_by_name_kind("task_struct", Kind.STRUCT) > 0
    prog = prog_btf("task_struct")
    res = resolve_kfunc_calls([call3(prog.funcs["task_struct"])], prog.btf, vmlinux)
    assert res.log == ("kfunc call insn 0: task_struct not found in vmlinux BTF",)


def test_check_order_off_before_imm(vmlinux):
    # off != 0 and a bad imm: check 1 wins.
    prog = prog_btf("bpf_rcu_read_lock")
    res = resolve_kfunc_calls([call3(0, off=3)], prog.btf, vmlinux)
    assert res.log == ("kfunc call insn 0: PROG_BTF resolution requires prog BTF and insn->off == 0",)


def test_other_calls_are_untouched(vmlinux):
    prog = prog_btf("bpf_rcu_read_lock")
    fid = prog.funcs["bpf_rcu_read_lock"]
    others = [
        call_helper(1),                          # helper call, src 0
        call_pseudo(4),                          # bpf-to-bpf call, src 1
        call_kfunc(123456789, src=2),            # normal kfunc call, any imm
        call_kfunc(fid, src=2, off=5),           # module kfunc call
        Instruction(0x86, 0, 3, 0, fid),         # BPF_JMP32|BPF_CALL with src_reg 3: not ours
        Instruction(0x8D, 0, 3, 0, fid),         # BPF_JMP|BPF_CALL|BPF_X (callx) with src 3
        *ld_imm64(1, 3, fid),                    # ld_imm64 with src 3 (BPF_PSEUDO_BTF_ID)
    ]
    for insn in others:
        assert not is_prog_btf_kfunc_call(insn)
    insns = others + [call3(fid), exit_()]
    res = resolve_kfunc_calls(insns, prog.btf, vmlinux)
    assert res.ok
    assert res.insns[:len(others)] == tuple(others)
    assert [c.insn for c in res.calls] == [len(others)]
    assert res.insns[len(others)].src == 2


def test_jmp32_call_src3_is_left_even_with_a_bad_imm(vmlinux):
    # The seed's helper checks code == (BPF_JMP | BPF_CALL) only: with BPF_JMP32 the
    # pass does not look at the insn at all, so no "not a FUNC" error either.
    prog = prog_btf("bpf_rcu_read_lock")
    res = resolve_kfunc_calls([Instruction(0x86, 0, 3, 7, -1), exit_()], prog.btf, vmlinux)
    assert res.ok and res.calls == () and res.log == ()


def test_indexes_are_slots_ld_imm64_counts_twice(vmlinux):
    prog = prog_btf("bpf_sigbpf_no_such_kfunc")
    insns = [*ld_imm64(1, 0, 1 << 40), *ld_imm64(2, 0, 7), call3(prog.funcs["bpf_sigbpf_no_such_kfunc"])]
    res = resolve_kfunc_calls(insns, prog.btf, vmlinux)
    assert res.log == ("kfunc call insn 4: bpf_sigbpf_no_such_kfunc not found in vmlinux BTF",)
    assert res.failed_insn == 4


def test_first_failure_stops_and_earlier_rewrites_stay(vmlinux, libbpf_vmlinux):
    prog = prog_btf("bpf_rcu_read_lock", "bpf_sigbpf_missing_1", "bpf_sigbpf_missing_2")
    f = prog.funcs
    insns = [call3(f["bpf_rcu_read_lock"]), call3(f["bpf_sigbpf_missing_1"]),
             call3(0), call3(f["bpf_sigbpf_missing_2"]), exit_()]
    res = resolve_kfunc_calls(insns, prog.btf, vmlinux)
    assert res.errno == errno.ENOENT
    assert res.log == ("kfunc call insn 1: bpf_sigbpf_missing_1 not found in vmlinux BTF",)
    # The kernel rewrites in place: insn 0 already resolved, 1.. untouched.
    assert res.insns[0] == Instruction(0x85, 0, 2, 0, libbpf_vmlinux.find_func("bpf_rcu_read_lock"))
    assert res.insns[1:] == tuple(insns[1:])
    assert [c.insn for c in res.calls] == [0, 1]


def test_no_calls_is_ok(vmlinux):
    res = resolve_kfunc_calls([mov64_imm(0, 0), exit_()], None, None)
    assert res.ok and res.calls == () and res.log == ()


def test_same_func_called_twice_resolves_both(vmlinux):
    prog = prog_btf("bpf_rcu_read_lock")
    fid = prog.funcs["bpf_rcu_read_lock"]
    res = resolve_kfunc_calls([call3(fid), call3(fid), exit_()], prog.btf, vmlinux)
    assert res.insns[0] == res.insns[1] and res.insns[0].src == 2


def test_first_id_wins_for_duplicate_names():
    # A hand-built "vmlinux" with two FUNCs named the same: the lower id is chosen.
    b = BTFBuilder()
    proto = b.add(FuncProto(0, ()))
    first = b.add(Func("dup", proto, FuncLinkage.STATIC))
    b.add(Int("dup", 4, IntEncoding.SIGNED, 0, 32))
    second = b.add(Func("dup", proto, FuncLinkage.GLOBAL))
    kernel = b.build()
    prog = prog_btf("dup")
    res = resolve_kfunc_calls([call3(prog.funcs["dup"])], prog.btf, kernel)
    assert res.calls[0].btf_id == first != second


def test_corpus_duplicate_func_names_resolve_like_libbpf(corpus_btf):
    # Debian 6.1's vmlinux BTF has 404 FUNC names that occur more than once.
    path = corpus_btf("6.1.0-56-amd64.btf")
    kernel = BTF.from_file(path, validate=False)
    funcs = kernel.ids_of_kind(Kind.FUNC)
    seen: dict[str, list[int]] = {}
    for fid in funcs:
        seen.setdefault(kernel.name_of(fid), []).append(fid)
    dups = {n: ids for n, ids in seen.items() if len(ids) > 1}
    assert len(dups) == 404
    names = sorted(dups)[:40]
    prog = prog_btf(*names)
    res = resolve_kfunc_calls([call3(prog.funcs[n]) for n in names], prog.btf, kernel)
    assert res.ok
    lib = Libbpf(str(path))
    try:
        for call in res.calls:
            assert call.btf_id == min(dups[call.name]) == lib.find_func(call.name)
    finally:
        lib.close()


def test_error_carries_log_and_errno(vmlinux):
    prog = prog_btf("bpf_sigbpf_missing")
    res = resolve_kfunc_calls([call3(prog.funcs["bpf_sigbpf_missing"])], prog.btf, vmlinux)
    err = res.error()
    assert err.errno == errno.ENOENT and err.insn == 0 and err.exit_code == 1
    assert err.log == list(res.log)
    with pytest.raises(type(err)):
        res.raise_for_error()
    assert isinstance(res, Resolution)
