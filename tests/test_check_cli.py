"""``sigbpf check``: artifacts of the test programs against Debian 6.1, Debian 6.12 and this kernel.

Real facts, asserted from the corpus BTF: the kfuncs the test programs call
appeared after 6.1 (bpf_rcu_read_lock, bpf_task_from_pid, bpf_obj_new_impl
in 6.2; bpf_cpumask_* in 6.3; bpf_iter_num_* in 6.4), so Debian 6.1 rejects
every one of those artifacts while Debian 6.12 and the running 6.18 accept
them.  Every btf_id in the matrix is the id libbpf's ``btf__find_by_name_kind``
gives for the same kernel file.
"""

from __future__ import annotations

import json

import pytest

from conftest import assert_one_line_error
from resolve_support import Libbpf, build_artifact_file, module_btf_bytes

from sigbpf.btf import BTF

K61, K612 = "6.1.0-56-amd64", "6.12.95+deb12-amd64"
VMLINUX = "/sys/kernel/btf/vmlinux"

PROGRAMS = {
    "kfunc_task": ["bpf_task_from_pid", "bpf_task_release"],
    "kfunc_iter": ["bpf_iter_num_new", "bpf_iter_num_next", "bpf_iter_num_destroy"],
    "kfunc_cpumask": ["bpf_cpumask_create", "bpf_cpumask_set_cpu", "bpf_cpumask_test_cpu",
                      "bpf_cpumask_release"],
    "kfunc_obj_new": ["bpf_obj_new_impl", "bpf_obj_drop_impl"],
    "kfunc_rcu_maps": ["bpf_rcu_read_lock", "bpf_rcu_read_unlock"],
}


@pytest.fixture(scope="module")
def art(bpf_object, build_dir):
    return lambda name: build_artifact_file(bpf_object(name), build_dir)


@pytest.fixture(scope="module")
def kernels(corpus_btf):
    return {"6.1": str(corpus_btf(f"{K61}.btf")), "6.12": str(corpus_btf(f"{K612}.btf")),
            "running": VMLINUX}


@pytest.fixture(scope="module")
def libbpf(kernels):
    libs = {k: Libbpf(path) for k, path in kernels.items()}
    yield libs
    for lib in libs.values():
        lib.close()


def check_json(cli, *args):
    proc = cli("check", *args, "--json")
    assert not proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_matrix_across_three_kernels(cli, art, kernels, libbpf, program):
    code, out = check_json(cli, art(program), "--btf", kernels["6.1"], "--btf", kernels["6.12"],
                           "--btf", kernels["running"])
    assert code == 1 and out["ok"] is False
    assert [k["btf"] for k in out["kernels"]] == [kernels["6.1"], kernels["6.12"], VMLINUX]
    assert [k["ok"] for k in out["kernels"]] == [False, True, True]
    # 6.1's verdict is the seed's: the first call of the program fails with ENOENT.
    (prog61,) = out["kernels"][0]["programs"]
    assert prog61["errno"] == "ENOENT"
    assert prog61["log"][0].endswith(f": {PROGRAMS[program][0]} not found in vmlinux BTF")
    assert [row["name"] for row in out["kfuncs"]] == PROGRAMS[program]
    for row in out["kfuncs"]:
        k61, k612, here = row["kernels"]
        assert (k61["resolves"], k61["btf_id"]) == (False, None)
        assert libbpf["6.1"].find_func(row["name"]) < 0
        for cell, key in ((k612, "6.12"), (here, "running")):
            assert cell["resolves"] and cell["btf_id"] == libbpf[key].find_func(row["name"]) > 0
            assert cell["prototype"] == "compatible" and cell["strict"] == []
            assert cell["ok"] is True
        assert k612["kfunc"] == "unknown"  # Debian 6.12 BTF has no bpf_kfunc tags
        assert here["kfunc"] == "yes"


def test_only_newer_kernels_accept(cli, art, kernels):
    code, out = check_json(cli, art("kfunc_iter"), "--btf", kernels["6.12"], "--btf", kernels["running"])
    assert code == 0 and out["ok"] is True


def test_text_matrix(cli, art, kernels):
    proc = cli("check", art("kfunc_task"), "--btf", kernels["6.1"], "--btf", kernels["running"])
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"K1 = {kernels['6.1']}: REJECTS the artifact"
    assert any(line.startswith("bpf_task_from_pid") and "missing" in line for line in lines)


def test_incompatible_prototype_everywhere_it_resolves(cli, art, kernels):
    code, out = check_json(cli, art("bad_proto"), "--btf", kernels["6.12"], "--btf", kernels["running"])
    assert code == 1
    row = next(r for r in out["kfuncs"] if r["name"] == "bpf_task_from_pid")
    assert [c["prototype"] for c in row["kernels"]] == ["incompatible", "incompatible"]
    code, out = check_json(cli, art("bad_proto"), "--btf", kernels["running"], "--no-proto-check")
    assert code == 0
    assert out["kfuncs"][0]["kernels"][0]["prototype"] == "off"


def test_strict_differences_are_listed(cli, art, kernels):
    code, out = check_json(cli, art("bad_strict_proto"), "--btf", kernels["running"])
    assert code == 0
    cell = out["kfuncs"][0]["kernels"][0]
    assert cell["prototype"] == "compatible"
    assert cell["strict"] == ["param 1 (dummy_ksym): int size 8 vs 4",
                              "param 1 (dummy_ksym): signedness differs (unsigned vs signed)"]


def test_not_a_kfunc_on_the_tagged_kernel_unknown_on_the_corpus(cli, art, kernels):
    code, out = check_json(cli, art("bad_not_kfunc"), "--btf", kernels["6.12"], "--btf", kernels["running"])
    assert code == 1
    (row,) = out["kfuncs"]
    assert [c["kfunc"] for c in row["kernels"]] == ["unknown", "no"]
    assert [k["ok"] for k in out["kernels"]] == [True, False]
    assert out["kernels"][1]["programs"][0]["errno"] == "EACCES"
    code, out = check_json(cli, art("bad_not_kfunc"), "--btf", kernels["running"], "--no-kfunc-check")
    assert code == 0 and out["kfuncs"][0]["kernels"][0]["kfunc"] == "off"


def test_modules_belong_to_the_btf_they_follow(cli, art, kernels, corpus_btf, tmp_path):
    vm = BTF.load_vmlinux()
    mod = tmp_path / "sigbpf_mod.btf"
    mod.write_bytes(module_btf_bytes(vm, "bpf_task_from_pid"))
    code, out = check_json(cli, art("kfunc_task"),
                           "--btf", kernels["6.12"], "--module", corpus_btf(f"{K612}.nf_conntrack.btf"),
                           "--btf", kernels["running"], "--module", mod)
    assert code == 0
    assert [k["modules"] for k in out["kernels"]] == [["nf_conntrack"], ["sigbpf_mod"]]
    row = next(r for r in out["kfuncs"] if r["name"] == "bpf_task_from_pid")
    assert [c["modules"] for c in row["kernels"]] == [[], ["sigbpf_mod"]]
    code, out = check_json(cli, art("kfunc_task"), "--btf", kernels["running"], "--module", mod,
                           "--no-module-check")
    assert out["kfuncs"][0]["kernels"][0]["modules"] == []


def test_usage_errors(cli, art, tmp_path):
    assert_one_line_error(cli("check", art("kfunc_task")), 2, "--btf")
    assert_one_line_error(cli("check", art("kfunc_task"), "--module", "m.btf", "--btf", VMLINUX), 2,
                          "must follow the --btf")


def test_bad_kernel_btf_and_artifact(cli, art, tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00" * 33)
    assert_one_line_error(cli("check", art("kfunc_task"), "--btf", junk), 2, str(junk))
    assert_one_line_error(cli("check", junk, "--btf", VMLINUX), 2, str(junk))


def test_btf_ids_make_the_kfunc_column_definite(cli, art, kernels, corpus_btf):
    ids = corpus_btf(f"{K612}.BTF_ids")
    code, out = check_json(cli, art("kfunc_task"), "--btf", kernels["6.12"], "--btf-ids", ids)
    assert code == 0
    assert [c["kernels"][0]["kfunc"] for c in out["kfuncs"]] == ["yes", "yes"]
    assert out["kernels"][0]["kfunc_list"] == ".BTF_ids kfunc sets"
    code, out = check_json(cli, art("bad_not_kfunc"), "--btf", kernels["6.12"], "--btf-ids", ids)
    assert code == 1 and out["kfuncs"][0]["kernels"][0]["kfunc"] == "no"
    assert out["kernels"][0]["programs"][0]["errno"] == "EACCES"


def test_btf_ids_garbage(cli, art, kernels, tmp_path):
    odd = tmp_path / "odd.BTF_ids"
    odd.write_bytes(bytes(7))
    assert_one_line_error(cli("check", art("kfunc_task"), "--btf", kernels["6.12"], "--btf-ids", odd),
                          2, str(odd))
    zero = tmp_path / "zero.BTF_ids"
    zero.write_bytes(bytes(64))
    assert_one_line_error(cli("check", art("kfunc_task"), "--btf", kernels["6.12"], "--btf-ids", zero),
                          2, str(zero))


def test_build_then_resolve_then_check_from_the_command_line(cli, bpf_object, kernels, tmp_path):
    out = tmp_path / "rcu.sbpf"
    proc = cli("build", bpf_object("kfunc_rcu_maps"), "-o", out)
    assert proc.returncode == 0, proc.stderr
    proc = cli("resolve", out)
    assert proc.returncode == 0, proc.stderr
    assert "program rcu_maps: resolved 2 kfunc call(s)" in proc.stdout
    code, result = check_json(cli, out, "--btf", kernels["6.1"], "--btf", kernels["running"])
    assert code == 1 and [k["ok"] for k in result["kernels"]] == [False, True]


def test_digest_on_by_default_and_no_digest_turns_it_off(cli, art, bpf_object):
    """The digest report, like every check beyond the seed, is on unless --no-digest."""
    from sigbpf.artifact.build import build_from_file
    from sigbpf.resolve.digest import prog_sha256, prog_tag

    code, out = check_json(cli, art("kfunc_iter"), "--btf", VMLINUX)
    assert code == 0
    (prog,) = out["kernels"][0]["programs"]
    (insns,) = [p.insns for p in build_from_file(bpf_object("kfunc_iter")).programs]
    assert prog["digest"]["before"] == {"tag": prog_tag(insns).hex(),
                                        "sha256": prog_sha256(insns).hex()}
    assert prog["digest"]["after"]["tag"] != prog["digest"]["before"]["tag"]
    code, off = check_json(cli, art("kfunc_iter"), "--btf", VMLINUX, "--no-digest")
    assert code == 0 and off["kernels"][0]["programs"][0]["digest"] is None
    assert off["kfuncs"] == out["kfuncs"]  # nothing else changes


def test_an_elf_object_is_refused_with_a_hint(cli, bpf_object):
    assert_one_line_error(cli("check", bpf_object("kfunc_task"), "--btf", VMLINUX), 2,
                          "bad magic (not a sigbpf artifact; a BPF object (ELF): build it first "
                          "with `sigbpf build`)")
