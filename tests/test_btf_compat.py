"""Type compatibility: libbpf's bpf_core_types_are_compat, strict mode, C prototypes.

Real cases first: the kfunc externs of clang objects against the running
kernel (and libbpf's own verdict, through ``bpftool prog loadall``, which
refuses bad_proto.o with "func_proto [6] incompatible with kernel [N]" and
loads bad_strict_proto.o), and prototype drift between the corpus kernels.
Then hand-built BTF for each rule of libbpf 1.1's ``__bpf_core_types_are_compat``.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import BPFTOOL, CORPUS_KERNELS

from sigbpf.btf import (
    BTF, BTFBuilder, Array, Const, Enum, Enum64, EnumValue, Func, FuncLinkage, FuncProto, Fwd,
    Int, IntEncoding, Kind, Param, Ptr, Restrict, Struct, Typedef, TypeTag, Union, Volatile,
)
from sigbpf.btf.compat import (
    MAX_COMPAT_DEPTH, CompatReport, compare_func_protos, core_types_are_compat, format_func_proto,
    types_are_compat,
)


@pytest.fixture(scope="module")
def vmlinux(kernel) -> BTF:
    """The running kernel's BTF (the kernel fixture: a failure, not a skip, in CI)."""
    return BTF.load_vmlinux()


def extern_funcs(btf: BTF) -> dict[str, int]:
    """name -> FUNC id of the extern (``__ksym``) functions of an object."""
    return {btf[i].name: i for i in btf.ids_of_kind(Kind.FUNC)
            if btf[i].linkage == FuncLinkage.EXTERN}


def check(obj_btf: BTF, name: str, kernel: BTF, strict: bool = True) -> CompatReport:
    local = extern_funcs(obj_btf)[name]
    return compare_func_protos(obj_btf, local, kernel, kernel.find_by_name_kind(name, Kind.FUNC),
                               strict=strict)


# ---- real objects against the running kernel --------------------------------------

def test_bad_proto_is_incompatible(bpf_object, vmlinux):
    obj = BTF.from_file(bpf_object("bad_proto"))
    report = check(obj, "bpf_task_from_pid", vmlinux)
    assert not report.compatible and not report.ok
    assert [str(d) for d in report.differences] == ["params: 2 params vs 1"]
    assert report.differences[0].breaks_compat
    assert report.target == "struct task_struct *bpf_task_from_pid(s32 pid)"
    assert report.local == "struct task_struct *bpf_task_from_pid(s32, s32)"
    assert "local:  struct task_struct *bpf_task_from_pid(s32, s32)" in report.side_by_side()
    # the other extern of the same object is fine
    assert check(obj, "bpf_task_release", vmlinux).ok


def test_bad_strict_proto_compatible_but_strict_differences(bpf_object, vmlinux):
    obj = BTF.from_file(bpf_object("bad_strict_proto"))
    report = check(obj, "bpf_task_from_pid", vmlinux)
    assert report.compatible and not report.ok
    assert [str(d) for d in report.differences] == [
        "param 1 (pid): int size 8 vs 4",
        "param 1 (pid): signedness differs (unsigned vs signed)",
    ]
    assert report.strict_differences == report.differences
    lax = check(obj, "bpf_task_from_pid", vmlinux, strict=False)
    assert lax.compatible and lax.ok and lax.differences == ()
    assert "compatible by libbpf's rules, but differs" in str(report)


@pytest.mark.parametrize("name", ["kfunc_task", "kfunc_cpumask", "kfunc_obj_new", "kfunc_iter",
                                  "kfunc_rcu_maps", "kfunc_weak"])
def test_good_kfunc_objects_match_kernel_strictly(bpf_object, vmlinux, name):
    obj = BTF.from_file(bpf_object(name))
    checked = 0
    for func, local in extern_funcs(obj).items():
        try:
            target = vmlinux.find_by_name_kind(func, Kind.FUNC)
        except Exception:
            continue  # kfunc_weak's deliberately missing kfunc
        report = compare_func_protos(obj, local, vmlinux, target)
        assert report.ok, str(report)
        checked += 1
    assert checked >= 1


def test_plain_char_is_not_a_strict_difference(bpf_object, vmlinux):
    """clang records `char` as SIGNED, pahole (gcc) without encoding: same C type."""
    report = check(BTF.from_file(bpf_object("bad_not_kfunc")), "vfs_read", vmlinux)
    assert report.ok, str(report)


def _bpftool_loadall(obj: Path) -> subprocess.CompletedProcess:
    pin = Path("/sys/fs/bpf") / f"sigbpf-compat-{uuid.uuid4().hex[:8]}"
    try:
        return subprocess.run([BPFTOOL, "-d", "prog", "loadall", str(obj), str(pin)],
                              capture_output=True, text=True)
    finally:
        subprocess.run(["rm", "-rf", str(pin)], check=False)


def _need_bpffs() -> None:
    if not os.path.ismount("/sys/fs/bpf"):
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], capture_output=True)
    if not os.path.ismount("/sys/fs/bpf"):
        pytest.skip("bpffs not mounted")


def test_libbpf_loader_agrees_on_bad_proto(kernel, bpf_object, vmlinux):
    """libbpf (via bpftool) refuses bad_proto.o with the same two FUNC_PROTO ids."""
    _need_bpffs()
    path = bpf_object("bad_proto")
    proc = _bpftool_loadall(path)
    assert proc.returncode != 0
    found = re.search(r"extern \(func ksym\) 'bpf_task_from_pid': func_proto \[(\d+)\] "
                      r"incompatible with kernel \[(\d+)\]", proc.stderr)
    assert found, proc.stderr[-2000:]
    obj = BTF.from_file(path)
    local_proto = obj[extern_funcs(obj)["bpf_task_from_pid"]].type
    kernel_proto = vmlinux[vmlinux.find_by_name_kind("bpf_task_from_pid", Kind.FUNC)].type
    assert (int(found[1]), int(found[2])) == (local_proto, kernel_proto)
    assert not types_are_compat(obj, local_proto, vmlinux, kernel_proto)


def test_libbpf_loader_agrees_on_bad_strict_proto(kernel, bpf_object, vmlinux):
    """libbpf loads bad_strict_proto.o: u64 vs s32 is compatible by its rule."""
    _need_bpffs()
    proc = _bpftool_loadall(bpf_object("bad_strict_proto"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "incompatible" not in proc.stderr


# ---- prototype drift between real kernels ---------------------------------------------

@pytest.fixture(scope="module")
def k61(corpus_btf) -> BTF:
    return BTF.from_file(corpus_btf(f"{CORPUS_KERNELS[0]}.btf"))


@pytest.fixture(scope="module")
def k612(corpus_btf) -> BTF:
    return BTF.from_file(corpus_btf(f"{CORPUS_KERNELS[1]}.btf"))


def drift(old: BTF, new: BTF, name: str, strict: bool = True) -> CompatReport:
    return compare_func_protos(old, old.find_by_name_kind(name, Kind.FUNC),
                               new, new.find_by_name_kind(name, Kind.FUNC), strict=strict)


def test_drift_kfunc_verify_pkcs7_signature_6_1_to_6_12(k61, k612):
    """A kfunc of both kernels: dynptr type renamed; libbpf cannot see it."""
    report = drift(k61, k612, "bpf_verify_pkcs7_signature")
    assert report.compatible
    assert [str(d) for d in report.differences] == [
        "param 1 (data_ptr) pointee: struct name 'bpf_dynptr_kern' vs 'bpf_dynptr'",
        "param 2 (sig_ptr) pointee: struct name 'bpf_dynptr_kern' vs 'bpf_dynptr'",
    ]
    assert report.local == ("int bpf_verify_pkcs7_signature(struct bpf_dynptr_kern *data_ptr, "
                            "struct bpf_dynptr_kern *sig_ptr, struct bpf_key *trusted_keyring)")
    assert report.target == ("int bpf_verify_pkcs7_signature(struct bpf_dynptr *data_p, "
                             "struct bpf_dynptr *sig_p, struct bpf_key *trusted_keyring)")


def test_drift_unchanged_kfuncs_6_1_to_6_12(k61, k612):
    for name in ("bpf_lookup_user_key", "bpf_lookup_system_key", "bpf_key_put"):
        assert drift(k61, k612, name).ok, name


def test_drift_param_count_change_is_incompatible(k61, k612):
    report = drift(k61, k612, "bpf_prog_free_id")
    assert not report.compatible
    assert [str(d) for d in report.differences] == ["params: 2 params vs 1"]


def test_drift_int_widening_only_strict(k61, k612):
    report = drift(k61, k612, "bpf_vlog_reset")
    assert report.compatible
    assert [str(d) for d in report.differences] == ["param 2 (new_pos): int size 4 vs 8"]
    ret = drift(k61, k612, "bpf_struct_ops_map_delete_elem")
    assert [str(d) for d in ret.differences] == ["return: int size 4 vs 8"]


def test_drift_const_added(k61, k612):
    report = drift(k61, k612, "bpf_lsm_sb_kern_mount")
    assert report.compatible
    assert [str(d) for d in report.differences] == [
        "param 1 (sb) pointee: const differs (only the target has it)"]


def test_drift_pointer_became_int(k61, k612):
    report = drift(k61, k612, "bpf_helper_changes_pkt_data")
    assert not report.compatible
    assert [str(d) for d in report.differences] == [
        "param 1 (func): pointer vs enum ('void *' vs 'enum bpf_func_id')"]


def test_walk_agrees_with_libbpf_rule_on_real_pairs(k61, k612):
    """Over every bpf_* FUNC of both corpus kernels: a report is incompatible
    exactly when the side-by-side walk found a difference libbpf's rule rejects."""
    pairs = incompatible = 0
    for fid in k61.ids_of_kind(Kind.FUNC):
        name = k61[fid].name
        if not name.startswith("bpf_"):
            continue
        try:
            gid = k612.find_by_name_kind(name, Kind.FUNC)
        except Exception:
            continue
        report = compare_func_protos(k61, fid, k612, gid)
        assert report.compatible != any(d.breaks_compat for d in report.differences), str(report)
        pairs += 1
        incompatible += not report.compatible
    assert pairs > 1000 and 10 < incompatible < pairs


def test_drift_6_12_to_running_kernel(k612, vmlinux):
    """Known drift up to 6.18: u32 -> s32, and const added."""
    for name, expected in (
        ("bpf_lookup_user_key", ["param 1 (serial): signedness differs (unsigned vs signed)"]),
        ("bpf_path_d_path", ["param 1 (path) pointee: const differs (only the target has it)"]),
    ):
        try:
            report = drift(k612, vmlinux, name)
        except Exception:
            pytest.skip(f"{name} not in this kernel")
        assert report.compatible
        if [str(d) for d in report.differences] != expected:
            pytest.skip(f"{name} has another prototype on this kernel: {report.target}")


# ---- each rule, on hand-built BTF ---------------------------------------------------------

INT = Int("int", 4, IntEncoding.SIGNED, 0, 32)
U64 = Int("long long unsigned int", 8, IntEncoding.NONE, 0, 64)


def build(*types) -> BTF:
    b = BTFBuilder()
    b.add_all(types)
    return BTF.parse(b.encode())


def compat(a: BTF, ai: int, b: BTF, bi: int) -> int:
    return core_types_are_compat(a, ai, b, bi)


def test_ints_match_any_int_but_bitfield_like():
    a = build(INT, U64, Int("int", 4, IntEncoding.SIGNED, 3, 5))
    assert compat(a, 1, a, 2) == 1
    assert compat(a, 1, a, 3) == 0  # bitfield-like int (offset != 0)


def test_typedefs_and_modifiers_are_skipped():
    chain = [INT, Typedef("s32", 1), Const(2), Volatile(3), Restrict(4), TypeTag("user", 5)]
    a = build(*chain, *(Ptr(i) for i in range(1, 7)))  # ids 7..12 point at 1..6
    b = build(U64, Typedef("u64", 1), Ptr(2))
    for ptr in range(7, 13):
        assert compat(a, ptr, b, 3) == 1


def test_first_kind_check_is_before_skipping():
    """libbpf compares the kinds once before skipping typedefs (a top-level typedef vs int)."""
    a = build(INT, Typedef("s32", 1))
    assert compat(a, 2, a, 1) == 0
    assert compat(a, 2, a, 2) == 1


def test_enum_and_enum64_are_compatible_names_ignored():
    a = build(Enum("a", 4, (EnumValue("X", 1),)), Enum64("b", 8, (EnumValue("Y", 1 << 40),)),
              Struct("s", 4), Struct("t", 8), Union("u", 4), Fwd("s"))
    assert compat(a, 1, a, 2) == 1
    assert compat(a, 3, a, 4) == 1  # names ignored
    assert compat(a, 3, a, 5) == 0  # struct vs union
    assert compat(a, 6, a, 3) == 0  # fwd vs struct: kinds differ


def test_pointers_and_arrays_recurse():
    a = build(INT, Ptr(1), Array(1, 1, 4), Ptr(3), Struct("s", 4), Ptr(5))
    assert compat(a, 2, a, 2) == 1
    assert compat(a, 3, a, 3) == 1
    assert compat(a, 2, a, 6) == 0  # int * vs struct s *
    assert compat(a, 4, a, 2) == 0  # int (*)[4] vs int *


def test_func_protos_param_count_and_types():
    a = build(INT, Ptr(1),
              FuncProto(1, (Param("a", 1),)),
              FuncProto(1, (Param("a", 1), Param("b", 1))),
              FuncProto(1, (Param("x", 2),)),
              FuncProto(2, (Param("z", 1),)))
    assert compat(a, 3, a, 3) == 1
    assert compat(a, 3, a, 4) == 0  # 1 vs 2 params
    assert compat(a, 3, a, 5) == 0  # int vs int *
    assert compat(a, 3, a, 6) == 0  # return int vs int *


def test_recursion_depth_limit_is_an_error():
    """depth 32 along a pointer chain: 31 pointers fine, more is -EINVAL."""
    types = [INT] + [Ptr(i) for i in range(1, 40)]  # id k+1 = k pointers to int
    a = build(*types)
    assert compat(a, MAX_COMPAT_DEPTH, a, MAX_COMPAT_DEPTH) == 1
    assert compat(a, MAX_COMPAT_DEPTH + 1, a, MAX_COMPAT_DEPTH + 1) == -errno.EINVAL
    assert not types_are_compat(a, MAX_COMPAT_DEPTH + 1, a, MAX_COMPAT_DEPTH + 1)


def test_funcs_themselves_are_not_compat_kinds():
    a = build(INT, FuncProto(1, ()), Func("f", 2))
    assert compat(a, 3, a, 3) == 0  # FUNC: libbpf's "unexpected kind"
    report = compare_func_protos(a, 3, a, 3)  # but the report takes FUNC ids
    assert report.ok and report.local == "int f(void)"


def test_strict_qualifiers_below_pointers_only():
    a = build(INT, Const(1), Ptr(2), Ptr(1),
              FuncProto(1, (Param("p", 3), Param("v", 2))),
              FuncProto(1, (Param("p", 4), Param("v", 1))))
    report = compare_func_protos(a, 5, a, 6)
    assert report.compatible
    assert [str(d) for d in report.differences] == [
        "param 1 (p) pointee: const differs (only the local has it)"]


def test_strict_names_sizes_and_arrays():
    a = build(INT, Struct("task_struct", 8), Struct("task_struct___v2", 8), Struct("cgroup", 8),
              Ptr(2), Ptr(3), Ptr(4), Array(1, 1, 4), Array(1, 1, 8), Ptr(8), Ptr(9),
              Enum("e", 4, (EnumValue("A", 0),)), Enum64("e", 8, (EnumValue("A", 0),)),
              FuncProto(1, (Param("t", 5), Param("arr", 10), Param("e", 12))),
              FuncProto(1, (Param("t", 6), Param("arr", 11), Param("e", 13))),
              FuncProto(1, (Param("t", 7), Param("arr", 10), Param("e", 12))))
    # task_struct vs task_struct___v2: a CO-RE flavor, the same name
    diffs = [str(d) for d in compare_func_protos(a, 14, a, 15).differences]
    assert diffs == ["param 2 (arr) pointee: array length 4 vs 8", "param 3 (e): enum size 4 vs 8"]
    diffs = [str(d) for d in compare_func_protos(a, 14, a, 16).differences]
    assert diffs == ["param 1 (t) pointee: struct name 'task_struct' vs 'cgroup'"]


def test_strict_function_pointer_params():
    a = build(INT, U64, FuncProto(1, (Param("x", 1),)), FuncProto(1, (Param("x", 2),)),
              Ptr(3), Ptr(4), FuncProto(0, (Param("cb", 5),)), FuncProto(0, (Param("cb", 6),)))
    report = compare_func_protos(a, 7, a, 8)
    assert report.compatible
    assert [str(d) for d in report.differences] == [
        "param 1 (cb) pointee param 1 (x): int size 4 vs 8",
        "param 1 (cb) pointee param 1 (x): signedness differs (signed vs unsigned)"]
    assert report.local == "void(int (*cb)(int x))"  # a bare FUNC_PROTO, as libbpf writes it


def test_format_func_proto(vmlinux):
    fid = vmlinux.find_by_name_kind("bpf_task_from_pid", Kind.FUNC)
    assert format_func_proto(vmlinux, fid) == "struct task_struct *bpf_task_from_pid(s32 pid)"
    assert format_func_proto(vmlinux, vmlinux[fid].type) == "struct task_struct *(s32 pid)"
    assert format_func_proto(vmlinux, fid, "f") == "struct task_struct *f(s32 pid)"
    a = build(INT, Ptr(0), FuncProto(1, (Param("fmt", 2), Param("", 0))), Func("printk", 3))
    assert format_func_proto(a, 4) == "int printk(void *fmt, ...)"
