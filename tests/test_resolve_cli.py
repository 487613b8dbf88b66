"""``sigbpf resolve`` from the command line: JSON shape, exit codes, flags, bad input.

Artifacts are built from the C programs in tests/progs (clang-19, then
sigbpf's builder); raw inputs are hand-built instruction streams and BTF.
Expected log lines are the seed's verbatim; vmlinux ids are libbpf's.
"""

from __future__ import annotations

import json

import pytest

from conftest import assert_one_line_error
from libbpf_ref import vmlinux as libbpf_vmlinux
from resolve_support import build_artifact_file, module_btf_bytes, prog_btf
from sigbpf.artifact.format import Artifact, Kfunc, KfuncSite, Program
from sigbpf.asm import Instruction, call_helper, call_kfunc, exit_, mov64_imm
from sigbpf.btf import BTF
from sigbpf.resolve.digest import prog_sha256, prog_tag

TOP_KEYS = {"ok", "errno", "log", "calls", "findings", "digest", "checks", "excl_prog_hash",
            "native_prog_btf", "btf"}


@pytest.fixture(scope="module")
def art(bpf_object, build_dir):
    """name -> artifact path of tests/progs/<name>.c."""
    return lambda name: build_artifact_file(bpf_object(name), build_dir)


@pytest.fixture()
def raw(tmp_path):
    """write(insns, btf_bytes=None) -> (insns path, btf path or None)."""

    def write(insns, btf: bytes | None = None):
        ipath = tmp_path / "prog.insns"
        ipath.write_bytes(Instruction.encode(insns))
        bpath = None
        if btf is not None:
            bpath = tmp_path / "prog.btf"
            bpath.write_bytes(btf)
        return ipath, bpath

    return write


def run_json(cli, *args):
    proc = cli("resolve", *args, "--json")
    assert not proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def call3(imm, off=0):
    return call_kfunc(imm, src=3, off=off)


# ------------------------------------------------------------------ raw input

def test_raw_resolves_json_shape(cli, raw):
    p = prog_btf("bpf_rcu_read_lock", "bpf_rcu_read_unlock")
    insns = [call3(p.funcs["bpf_rcu_read_lock"]), call3(p.funcs["bpf_rcu_read_unlock"]),
             mov64_imm(0, 0), exit_()]
    ipath, bpath = raw(insns, p.raw)
    code, out = run_json(cli, "--insns", ipath, "--prog-btf", bpath)
    assert code == 0
    assert set(out) == TOP_KEYS
    ref = libbpf_vmlinux()
    assert out["ok"] is True and out["errno"] is None and out["log"] == []
    assert out["calls"] == [
        {"insn": 0, "name": "bpf_rcu_read_lock", "btf_id": ref.func_id("bpf_rcu_read_lock")},
        {"insn": 1, "name": "bpf_rcu_read_unlock", "btf_id": ref.func_id("bpf_rcu_read_unlock")}]
    resolved = [call_kfunc(ref.func_id("bpf_rcu_read_lock")),
                call_kfunc(ref.func_id("bpf_rcu_read_unlock")), mov64_imm(0, 0), exit_()]
    assert out["digest"] == {
        "before": {"tag": prog_tag(insns).hex(), "sha256": prog_sha256(insns).hex()},
        "after": {"tag": prog_tag(resolved).hex(), "sha256": prog_sha256(resolved).hex()}}
    assert out["excl_prog_hash"]["compares"] == "after"
    assert out["checks"]["prototype"] == "on" and out["checks"]["module"].endswith("pinned to vmlinux")
    assert out["btf"] == "/sys/kernel/btf/vmlinux"


def test_raw_text_output(cli, raw):
    p = prog_btf("bpf_rcu_read_lock")
    ipath, bpath = raw([call3(p.funcs["bpf_rcu_read_lock"]), exit_()], p.raw)
    proc = cli("resolve", "--insns", ipath, "--prog-btf", bpath)
    assert proc.returncode == 0, proc.stderr
    ref = libbpf_vmlinux()
    assert f"insn 0: bpf_rcu_read_lock -> vmlinux FUNC [{ref.func_id('bpf_rcu_read_lock')}]" in proc.stdout
    assert "excl_prog_hash" in proc.stdout


@pytest.mark.parametrize("case, expect_log, expect_errno", [
    ("no prog BTF", "kfunc call insn 1: PROG_BTF resolution requires prog BTF and insn->off == 0",
     "EINVAL"),
    ("off 1", "kfunc call insn 1: PROG_BTF resolution requires prog BTF and insn->off == 0",
     "EINVAL"),
    ("imm -7", "kfunc call insn 1: imm -7 is not a FUNC in prog BTF", "EINVAL"),
    ("imm 0", "kfunc call insn 1: imm 0 is not a FUNC in prog BTF", "EINVAL"),
    ("imm INT", "kfunc call insn 1: imm 1 is not a FUNC in prog BTF", "EINVAL"),
    ("missing", "kfunc call insn 1: bpf_sigbpf_no_such_kfunc not found in vmlinux BTF", "ENOENT"),
])
def test_raw_seed_rejections(cli, raw, case, expect_log, expect_errno):
    p = prog_btf("bpf_rcu_read_lock", "bpf_sigbpf_no_such_kfunc")
    fid = p.funcs["bpf_rcu_read_lock"]
    call = {"no prog BTF": call3(fid), "off 1": call3(fid, off=1), "imm -7": call3(-7),
            "imm 0": call3(0), "imm INT": call3(p.int_id),
            "missing": call3(p.funcs["bpf_sigbpf_no_such_kfunc"])}[case]
    ipath, bpath = raw([mov64_imm(0, 0), call, exit_()], None if case == "no prog BTF" else p.raw)
    args = ["--insns", ipath] + (["--prog-btf", bpath] if bpath else [])
    code, out = run_json(cli, *args)
    assert code == 1
    assert out["ok"] is False and out["errno"] == expect_errno
    assert out["log"] == [expect_log]
    assert out["calls"][-1]["btf_id"] is None
    assert out["digest"]["after"] is None


def test_raw_first_failure_stops(cli, raw):
    p = prog_btf("bpf_rcu_read_lock", "bpf_sigbpf_missing")
    ipath, bpath = raw([call3(p.funcs["bpf_rcu_read_lock"]), call3(p.funcs["bpf_sigbpf_missing"]),
                        call3(0), exit_()], p.raw)
    code, out = run_json(cli, "--insns", ipath, "--prog-btf", bpath)
    assert code == 1 and out["errno"] == "ENOENT"
    assert out["log"] == ["kfunc call insn 1: bpf_sigbpf_missing not found in vmlinux BTF"]
    assert [c["insn"] for c in out["calls"]] == [0, 1]


def test_raw_other_calls_untouched(cli, raw):
    p = prog_btf("bpf_rcu_read_lock")
    # helper call and a JMP32|CALL with src_reg 3 and a garbage imm: not the seed's business.
    ipath, bpath = raw([call_helper(5), Instruction(0x86, 0, 3, 0, -1), mov64_imm(0, 0), exit_()],
                       p.raw)
    code, out = run_json(cli, "--insns", ipath, "--prog-btf", bpath)
    assert code == 0 and out["calls"] == [] and out["log"] == []
    assert out["digest"]["before"] == out["digest"]["after"]


def test_other_kernel_btf(cli, raw, corpus_btf):
    # bpf_rcu_read_lock appeared in 6.2: Debian 6.1 does not have it.
    p = prog_btf("bpf_rcu_read_lock")
    ipath, bpath = raw([call3(p.funcs["bpf_rcu_read_lock"]), exit_()], p.raw)
    code, out = run_json(cli, "--insns", ipath, "--prog-btf", bpath,
                         "--btf", corpus_btf("6.1.0-56-amd64.btf"))
    assert code == 1 and out["log"] == ["kfunc call insn 0: bpf_rcu_read_lock not found in vmlinux BTF"]


# ------------------------------------------------------------------ artifacts

def test_artifact_resolves(cli, art):
    code, out = run_json(cli, art("kfunc_task"))
    assert code == 0 and out["ok"] is True
    assert set(out) == TOP_KEYS - {"digest"} | {"programs"}
    (prog,) = out["programs"]
    assert prog["name"] == "task_lookup" and prog["ok"] is True
    ref = libbpf_vmlinux()
    assert [(c["name"], c["btf_id"]) for c in prog["calls"]] == [
        ("bpf_task_from_pid", ref.func_id("bpf_task_from_pid")),
        ("bpf_task_release", ref.func_id("bpf_task_release"))]
    assert [c["program"] for c in out["calls"]] == ["task_lookup", "task_lookup"]
    assert prog["findings"] == []


def test_artifact_missing_kfunc(cli, art):
    code, out = run_json(cli, art("bad_missing_kfunc"))
    assert code == 1 and out["errno"] == "ENOENT"
    (line,) = out["log"]
    assert line.startswith("kfunc call insn ") and line.endswith(
        ": bpf_sigbpf_no_such_kfunc not found in vmlinux BTF")


def test_artifact_bad_proto_and_flag(cli, art):
    code, out = run_json(cli, art("bad_proto"))
    assert code == 1 and out["errno"] == "EINVAL"
    (f,) = [f for f in out["findings"] if f["check"] == "prototype"]
    assert f["severity"] == "error" and f["errno"] == "EINVAL" and f["name"] == "bpf_task_from_pid"
    assert f["prototypes"]["kernel"] == "struct task_struct *bpf_task_from_pid(s32 pid)"
    assert f["prototypes"]["program"].count("s32") == 2
    assert any("prototype incompatible" in line for line in out["log"])
    code, out = run_json(cli, art("bad_proto"), "--no-proto-check")
    assert code == 0 and out["ok"] is True and out["checks"]["prototype"] == "off"


def test_artifact_strict_proto_warns(cli, art):
    code, out = run_json(cli, art("bad_strict_proto"))
    assert code == 0 and out["ok"] is True
    (f,) = [f for f in out["findings"] if f["check"] == "prototype"]
    assert f["severity"] == "warning"
    assert f["detail"] == ["param 1 (dummy_ksym): int size 8 vs 4",
                           "param 1 (dummy_ksym): signedness differs (unsigned vs signed)"]
    assert f["prototypes"]["program"] == "struct task_struct *bpf_task_from_pid(u64 dummy_ksym)"


def test_artifact_weak_kfunc_bound_like_the_loader(cli, art):
    code, out = run_json(cli, art("kfunc_weak"))
    assert code == 0 and out["ok"] is True
    notes = [f for f in out["findings"] if f["check"] == "binding"]
    assert {f["site"] for f in notes} == {"kfunc call", "kfunc address"}
    assert all(f["name"] == "bpf_sigbpf_no_such_kfunc" for f in notes)
    assert [c["name"] for c in out["calls"]] == ["bpf_rcu_read_lock", "bpf_rcu_read_unlock"]


def test_artifact_with_module_redefining_a_kfunc(cli, art, tmp_path):
    vm = BTF.load_vmlinux()
    mod = tmp_path / "sigbpf_mod.btf"
    mod.write_bytes(module_btf_bytes(vm, "bpf_task_release"))
    code, out = run_json(cli, art("kfunc_task"), "--module", mod)
    assert code == 0
    (f,) = [f for f in out["findings"] if f["check"] == "module"]
    assert f["severity"] == "warning" and f["module"] == "sigbpf_mod"
    assert "pinned to vmlinux" in f["message"] and f["name"] == "bpf_task_release"
    code, out = run_json(cli, art("kfunc_task"), "--module", mod, "--no-module-check")
    assert code == 0 and out["findings"] == [] and out["checks"]["module"] == "off"


def multi_program_artifact(path):
    """Two programs, each with the func_info record clang writes (FUNCs "good" and "bad"):
    the kernel attaches the program BTF to a load only with func/line info or CO-RE relos."""
    from sigbpf.artifact.format import FuncInfo

    p = prog_btf("bpf_rcu_read_lock", "bpf_sigbpf_missing", "good", "bad")
    f = p.funcs
    one = Program("good", "syscall", 31, (call3(f["bpf_rcu_read_lock"]), mov64_imm(0, 0), exit_()),
                  license="GPL", kfunc_sites=(KfuncSite(0, 0),),
                  func_info=(FuncInfo(0, f["good"]),))
    two = Program("bad", "syscall", 31, (mov64_imm(0, 0), call3(f["bpf_sigbpf_missing"]), exit_()),
                  license="GPL", kfunc_sites=(KfuncSite(1, 1),), func_info=(FuncInfo(0, f["bad"]),))
    art = Artifact("multi", p.raw, (one, two), (),
                   (Kfunc("bpf_rcu_read_lock", f["bpf_rcu_read_lock"]),
                    Kfunc("bpf_sigbpf_missing", f["bpf_sigbpf_missing"])))
    path.write_bytes(art.encode())
    return path


def test_a_program_without_func_info_gets_no_prog_btf(cli, tmp_path):
    """The kernel attaches the program BTF only to a load with func_info, line_info or CO-RE
    relocations (measured on the patched kernel, tests/test_seed_differential.py): a program
    without them meets the seed's first check, as the prediction says."""
    import dataclasses

    from sigbpf.artifact.format import Artifact

    path = multi_program_artifact(tmp_path / "multi.sbpf")
    art = Artifact.decode(path.read_bytes())
    bare = dataclasses.replace(art, programs=tuple(dataclasses.replace(p, func_info=())
                                                   for p in art.programs))
    path.write_bytes(bare.encode())
    code, out = run_json(cli, path)
    assert code == 1 and [(p["name"], p["errno"]) for p in out["programs"]] == [
        ("good", "EINVAL"), ("bad", "EINVAL")]
    assert out["programs"][0]["log"] == [
        "kfunc call insn 0: PROG_BTF resolution requires prog BTF and insn->off == 0"]


def test_artifact_with_several_programs(cli, tmp_path):
    code, out = run_json(cli, multi_program_artifact(tmp_path / "multi.sbpf"))
    assert code == 1 and out["ok"] is False and out["errno"] == "ENOENT"
    assert [(p["name"], p["ok"], p["errno"]) for p in out["programs"]] == [
        ("good", True, None), ("bad", False, "ENOENT")]
    assert out["programs"][1]["log"] == ["kfunc call insn 1: bpf_sigbpf_missing not found in vmlinux BTF"]
    assert out["log"] == ["bad: kfunc call insn 1: bpf_sigbpf_missing not found in vmlinux BTF"]
    assert [(c["program"], c["insn"]) for c in out["calls"]] == [("good", 0), ("bad", 1)]


# ------------------------------------------------------------------ bad input

def test_bad_input_odd_length_insns(cli, tmp_path):
    bad = tmp_path / "odd.insns"
    bad.write_bytes(bytes(13))
    assert_one_line_error(cli("resolve", "--insns", bad), 2, "not a multiple of 8")
    assert str(bad) in cli("resolve", "--insns", bad).stderr


def test_bad_input_empty_insns(cli, tmp_path):
    empty = tmp_path / "empty.insns"
    empty.write_bytes(b"")
    assert_one_line_error(cli("resolve", "--insns", empty), 2, "no instructions")


def test_bad_input_garbage_prog_btf(cli, raw):
    ipath, bpath = raw([exit_()], b"\x9f\xeb\x01\x00" + bytes(40))
    proc = cli("resolve", "--insns", ipath, "--prog-btf", bpath)
    assert_one_line_error(proc, 2, str(bpath))


def test_bad_input_garbage_kernel_btf(cli, raw, tmp_path):
    ipath, _ = raw([exit_()])
    junk = tmp_path / "junk.btf"
    junk.write_bytes(b"not BTF at all" * 10)
    assert_one_line_error(cli("resolve", "--insns", ipath, "--btf", junk), 2, str(junk))


def test_bad_input_garbage_artifact(cli, tmp_path):
    junk = tmp_path / "junk.sbpf"
    junk.write_bytes(b"SIGBPFA\x00" + bytes(5))
    assert_one_line_error(cli("resolve", junk), 2, str(junk))


def test_bad_input_missing_file(cli, tmp_path):
    assert_one_line_error(cli("resolve", tmp_path / "nope.sbpf"), 2, "nope.sbpf")


@pytest.mark.parametrize("args, words", [
    ((), "ARTIFACT or --insns"),
    (("x.sbpf", "--insns", "y"), "ARTIFACT or --insns"),
    (("--prog-btf", "y"), "ARTIFACT or --insns"),
    (("x.sbpf", "--prog-btf", "y"), "--prog-btf goes with --insns"),
])
def test_usage_errors(cli, args, words):
    assert_one_line_error(cli("resolve", *args), 2, words)


def test_bad_module_btf(cli, art, tmp_path):
    junk = tmp_path / "junk_mod.btf"
    junk.write_bytes(bytes(7))
    assert_one_line_error(cli("resolve", art("kfunc_task"), "--module", junk), 2, str(junk))


def test_artifact_not_a_kfunc_and_flag(cli, art):
    code, out = run_json(cli, art("bad_not_kfunc"))
    assert code == 1 and out["errno"] == "EACCES"
    (f,) = [f for f in out["findings"] if f["check"] == "kfunc"]
    assert f["name"] == "vfs_read" and f["severity"] == "error" and f["errno"] == "EACCES"
    assert out["checks"]["kfunc"] == "bpf_kfunc decl tags"
    code, out = run_json(cli, art("bad_not_kfunc"), "--no-kfunc-check")
    assert code == 0 and out["ok"] is True and out["checks"]["kfunc"] == "off"


def test_raw_seed_check_3_nameless_func_with_unvalidated_prog_btf(cli, raw):
    # The seed's check 3, through the CLI: only reachable on program BTF that
    # BPF_BTF_LOAD's checks were skipped for (--unvalidated-prog-btf).
    p = prog_btf("bpf_rcu_read_lock", nameless=True)
    ipath, bpath = raw([mov64_imm(0, 0), call3(p.funcs[""]), exit_()], p.raw)
    code, out = run_json(cli, "--insns", ipath, "--prog-btf", bpath, "--unvalidated-prog-btf")
    assert code == 1 and out["ok"] is False and out["errno"] == "EINVAL"
    assert out["log"] == ["kfunc call insn 1: prog-BTF FUNC has no name"]
    assert out["calls"] == [{"insn": 1, "name": "", "btf_id": None}]
    text = cli("resolve", "--insns", ipath, "--prog-btf", bpath, "--unvalidated-prog-btf")
    assert text.returncode == 1 and text.stderr == ""
    assert "  kfunc call insn 1: prog-BTF FUNC has no name\n" in text.stdout
    # a valid FUNC resolves the same with or without the flag
    ipath, bpath = raw([call3(p.funcs["bpf_rcu_read_lock"]), exit_()], p.raw)
    code, out = run_json(cli, "--insns", ipath, "--prog-btf", bpath, "--unvalidated-prog-btf")
    assert code == 0 and out["calls"][0]["btf_id"] == libbpf_vmlinux().func_id("bpf_rcu_read_lock")
    assert_one_line_error(cli("resolve", "--insns", ipath, "--unvalidated-prog-btf"), 2,
                          "--unvalidated-prog-btf goes with --prog-btf")


def test_digest_on_by_default_and_no_digest_turns_it_off(cli, raw, art):
    p = prog_btf("bpf_rcu_read_lock")
    ipath, bpath = raw([call3(p.funcs["bpf_rcu_read_lock"]), exit_()], p.raw)
    code, out = run_json(cli, "--insns", ipath, "--prog-btf", bpath)
    assert code == 0 and out["checks"]["digest"] == "on" and out["digest"]["after"] is not None
    code, off = run_json(cli, "--insns", ipath, "--prog-btf", bpath, "--no-digest")
    assert code == 0 and off["digest"] is None and off["checks"]["digest"] == "off"
    assert set(off) == TOP_KEYS - {"excl_prog_hash"}
    assert {k: off[k] for k in ("ok", "errno", "log", "calls")} == \
        {k: out[k] for k in ("ok", "errno", "log", "calls")}
    text = cli("resolve", "--insns", ipath, "--prog-btf", bpath, "--no-digest")
    assert text.returncode == 0
    assert "tag " not in text.stdout and "sha256" not in text.stdout
    assert "excl_prog_hash" not in text.stdout
    code, off = run_json(cli, art("kfunc_task"), "--no-digest")
    assert code == 0 and off["programs"][0]["digest"] is None and "excl_prog_hash" not in off


def test_an_elf_object_is_refused_with_a_hint(cli, bpf_object):
    assert_one_line_error(cli("resolve", bpf_object("kfunc_task")), 2,
                          "bad magic (not a sigbpf artifact; a BPF object (ELF): build it first "
                          "with `sigbpf build`)")


def test_nameless_func_is_refused_like_bpf_btf_load(cli, raw):
    # The seed's check 3 ("prog-BTF FUNC has no name") cannot fire in a real kernel:
    # BPF_BTF_LOAD already refuses the BTF ("[2] FUNC (anon) type_id=1 Invalid name",
    # measured on 6.18).  sigbpf validates program BTF the same way (exit 2); the
    # check itself is covered on unvalidated BTF in test_resolve_pass.py.
    p = prog_btf(nameless=True)
    ipath, bpath = raw([call3(p.funcs[""]), exit_()], p.raw)
    assert_one_line_error(cli("resolve", "--insns", ipath, "--prog-btf", bpath), 2, "Invalid name")


def test_extern_func_linkage_is_refused_like_bpf_btf_load(cli, raw):
    from sigbpf.btf import BTFBuilder, Func, FuncLinkage, FuncProto

    b = BTFBuilder()
    proto = b.add(FuncProto(0, ()))
    fid = b.add(Func("bpf_rcu_read_lock", proto, FuncLinkage.EXTERN))
    ipath, bpath = raw([call3(fid), exit_()], b.encode())
    proc = cli("resolve", "--insns", ipath, "--prog-btf", bpath)
    assert_one_line_error(proc, 2, "Invalid func linkage")
    assert f"type [{fid}]" in proc.stderr


def test_real_drift_program_built_against_debian_6_12(cli, raw, corpus_btf):
    # The whole Debian 6.12 vmlinux BTF as the program BTF: a call of its
    # bpf_lookup_user_key(u32 serial, u64 flags), resolved here where it is (s32, u64).
    old = BTF.from_file(corpus_btf("6.12.95+deb12-amd64.btf"), validate=False)
    fid = old.find_by_name_kind("bpf_lookup_user_key", 12)
    ipath, _ = raw([call3(fid), exit_()])
    code, out = run_json(cli, "--insns", ipath, "--prog-btf", corpus_btf("6.12.95+deb12-amd64.btf"))
    assert code == 0 and out["ok"] is True
    (f,) = out["findings"]
    assert f["check"] == "prototype" and f["severity"] == "warning"
    assert f["prototypes"] == {"program": "struct bpf_key *bpf_lookup_user_key(u32 serial, u64 flags)",
                               "kernel": "struct bpf_key *bpf_lookup_user_key(s32 serial, u64 flags)"}
