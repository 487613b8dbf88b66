"""``sigbpf check`` with the ``--btf`` options: artifacts of the test programs against Debian 6.1,
Debian 6.12 and this kernel.

Real facts, asserted from the corpus BTF: the kfuncs the test programs call
appeared after 6.1 (bpf_rcu_read_lock, bpf_task_from_pid, bpf_obj_new_impl
in 6.2; bpf_cpumask_* in 6.3; bpf_iter_num_* in 6.4), so Debian 6.1 rejects
every one of those artifacts while Debian 6.12 and the running 6.18 accept
them.  Every kfunc cell's id is the id libbpf's ``btf__find_by_name_kind``
gives for the same kernel file.  The report is the fleet check's
(docs/FLEET.md); tests/test_fleet_*.py cover the other kinds of KERNEL.
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


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test its own (empty) fleet cache."""
    monkeypatch.setenv("SIGBPF_CACHE", str(tmp_path / "cache"))


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


def cells(kernel: dict, kind: str | None = None) -> dict[str, dict]:
    """A kernel's cells by check key (only those of *kind* when given)."""
    return {c["check"]: c for c in kernel["cells"] if kind is None or c["check"].startswith(kind + ":")}


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_matrix_across_three_kernels(cli, art, kernels, libbpf, program):
    code, out = check_json(cli, art(program), "--btf", kernels["6.1"], "--btf", kernels["6.12"],
                           "--btf", kernels["running"])
    assert code == 1 and out["ok"] is False and out["exit"] == 1
    assert [k["source"] for k in out["kernels"]] == [kernels["6.1"], kernels["6.12"], VMLINUX]
    assert [k["accepts"] for k in out["kernels"]] == [False, True, True]
    # 6.1's program verdict is the seed's: the first call of the program fails with ENOENT.
    (prog61,) = cells(out["kernels"][0], "program").values()
    assert prog61["verdict"] == "fail" and prog61["code"] == "rejected" and prog61["value"] == 2
    assert f": {PROGRAMS[program][0]} not found in vmlinux BTF" in prog61["detail"]
    assert [c["name"] for c in out["checks"] if c["kind"] == "kfunc"] == PROGRAMS[program]
    k61, k612, here = (cells(k, "kfunc") for k in out["kernels"])
    for name in PROGRAMS[program]:
        key = f"kfunc:{name}"
        assert (k61[key]["verdict"], k61[key]["code"]) == ("fail", "missing")
        assert libbpf["6.1"].find_func(name) < 0
        for cell, which in ((k612[key], "6.12"), (here[key], "running")):
            assert cell["value"] == libbpf[which].find_func(name) > 0
        # Debian 6.12 BTF has no bpf_kfunc tags (and no --btf-ids here): kfunc-ness unknown
        assert (k612[key]["verdict"], k612[key]["code"]) == ("warn", "kfunc-unknown")
        assert (here[key]["verdict"], here[key]["code"]) == ("ok", "resolves")


def test_only_newer_kernels_accept(cli, art, kernels):
    code, out = check_json(cli, art("kfunc_iter"), "--btf", kernels["6.12"], "--btf", kernels["running"])
    assert code == 0 and out["ok"] is True


def test_text_matrix(cli, art, kernels):
    proc = cli("check", art("kfunc_task"), "--btf", kernels["6.1"], "--btf", kernels["running"])
    assert proc.returncode == 1, proc.stderr
    assert "1 refuse" in proc.stdout.splitlines()[0]
    assert "kfunc:bpf_task_from_pid" in proc.stdout and "not found in vmlinux BTF" in proc.stdout


def test_incompatible_prototype_everywhere_it_resolves(cli, art, kernels):
    code, out = check_json(cli, art("bad_proto"), "--btf", kernels["6.12"], "--btf", kernels["running"])
    assert code == 1
    assert [cells(k)["kfunc:bpf_task_from_pid"]["code"] for k in out["kernels"]] == \
        ["incompatible", "incompatible"]
    code, out = check_json(cli, art("bad_proto"), "--btf", kernels["running"], "--no-proto-check")
    assert code == 0
    assert cells(out["kernels"][0])["kfunc:bpf_task_from_pid"]["code"] == "resolves"


def test_strict_differences_are_listed(cli, art, kernels):
    code, out = check_json(cli, art("bad_strict_proto"), "--btf", kernels["running"])
    assert code == 0
    cell = cells(out["kernels"][0])["kfunc:bpf_task_from_pid"]
    assert (cell["verdict"], cell["code"]) == ("warn", "drift")
    assert cell["detail"].endswith("prototype drift: param 1 (dummy_ksym): int size 8 vs 4; "
                                   "param 1 (dummy_ksym): signedness differs (unsigned vs signed)")


def test_not_a_kfunc_on_the_tagged_kernel_unknown_on_the_corpus(cli, art, kernels):
    code, out = check_json(cli, art("bad_not_kfunc"), "--btf", kernels["6.12"], "--btf", kernels["running"])
    assert code == 1
    assert [cells(k)["kfunc:vfs_read"]["code"] for k in out["kernels"]] == ["kfunc-unknown", "not-kfunc"]
    assert [k["accepts"] for k in out["kernels"]] == [True, False]
    prog = cells(out["kernels"][1], "program")["program:not_kfunc"]
    assert prog["code"] == "rejected" and prog["value"] == 13  # EACCES
    code, out = check_json(cli, art("bad_not_kfunc"), "--btf", kernels["running"], "--no-kfunc-check")
    assert code == 0 and cells(out["kernels"][0])["kfunc:vfs_read"]["code"] == "resolves"


def test_modules_belong_to_the_btf_they_follow(cli, art, kernels, corpus_btf, tmp_path):
    vm = BTF.load_vmlinux()
    mod = tmp_path / "sigbpf_mod.btf"
    mod.write_bytes(module_btf_bytes(vm, "bpf_task_from_pid"))
    code, out = check_json(cli, art("kfunc_task"),
                           "--btf", kernels["6.12"], "--module", corpus_btf(f"{K612}.nf_conntrack.btf"),
                           "--btf", kernels["running"], "--module", mod)
    assert code == 0
    k612, here = (cells(k)["kfunc:bpf_task_from_pid"] for k in out["kernels"])
    assert k612["code"] == "kfunc-unknown" and "shadowed" not in k612["also"]
    assert (here["verdict"], here["code"]) == ("warn", "shadowed") and "sigbpf_mod" in here["detail"]
    code, out = check_json(cli, art("kfunc_task"), "--btf", kernels["running"], "--module", mod,
                           "--no-module-check")
    assert cells(out["kernels"][0])["kfunc:bpf_task_from_pid"]["code"] == "resolves"


def test_usage_errors(cli, art, tmp_path):
    assert_one_line_error(cli("check", art("kfunc_task")), 2, "KERNEL")
    assert_one_line_error(cli("check", art("kfunc_task"), "--module", "m.btf", "--btf", VMLINUX), 2,
                          "must follow the --btf")


def test_bad_kernel_btf_is_a_row_and_a_bad_artifact_one_line(cli, art, kernels, tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00" * 33)
    proc = cli("check", art("kfunc_task"), "--btf", junk, "--btf", kernels["running"], "--json")
    assert proc.returncode == 2
    out = json.loads(proc.stdout)
    bad, good = out["kernels"]
    assert bad["verdict"] == "unreadable" and bad["accepts"] is False and str(junk) in bad["error"]
    assert good["accepts"] is True
    assert_one_line_error(proc, 2, "1 of 2 kernel(s) could not be read")
    assert_one_line_error(cli("check", junk, "--btf", VMLINUX), 2, str(junk))


def test_btf_ids_make_the_kfunc_column_definite(cli, art, kernels, corpus_btf):
    ids = corpus_btf(f"{K612}.BTF_ids")
    code, out = check_json(cli, art("kfunc_task"), "--btf", kernels["6.12"], "--btf-ids", ids)
    assert code == 0
    assert [c["code"] for c in cells(out["kernels"][0], "kfunc").values()] == ["resolves", "resolves"]
    code, out = check_json(cli, art("bad_not_kfunc"), "--btf", kernels["6.12"], "--btf-ids", ids)
    assert code == 1 and cells(out["kernels"][0])["kfunc:vfs_read"]["code"] == "not-kfunc"
    assert cells(out["kernels"][0])["program:not_kfunc"]["value"] == 13  # EACCES


def test_btf_ids_garbage(cli, art, kernels, tmp_path):
    for name, data in (("odd.BTF_ids", bytes(7)), ("zero.BTF_ids", bytes(64))):
        bad = tmp_path / name
        bad.write_bytes(data)
        proc = cli("check", art("kfunc_task"), "--btf", kernels["6.12"], "--btf-ids", bad, "--json")
        (kernel,) = json.loads(proc.stdout)["kernels"]
        assert proc.returncode == 2 and str(bad) in kernel["error"], kernel


def test_build_then_resolve_then_check_from_the_command_line(cli, bpf_object, kernels, tmp_path):
    out = tmp_path / "rcu.sbpf"
    proc = cli("build", bpf_object("kfunc_rcu_maps"), "-o", out)
    assert proc.returncode == 0, proc.stderr
    proc = cli("resolve", out)
    assert proc.returncode == 0, proc.stderr
    assert "program rcu_maps: resolved 2 kfunc call(s)" in proc.stdout
    code, result = check_json(cli, out, "--btf", kernels["6.1"], "--btf", kernels["running"])
    assert code == 1 and [k["accepts"] for k in result["kernels"]] == [False, True]


def test_an_elf_object_is_built_in_memory(cli, art, bpf_object, kernels):
    """OBJ: the object is built into an artifact in memory; the answers are the artifact's."""
    code, from_obj = check_json(cli, bpf_object("kfunc_task"), "--btf", kernels["6.1"],
                                "--btf", kernels["running"])
    code2, from_art = check_json(cli, art("kfunc_task"), "--btf", kernels["6.1"], "--btf", kernels["running"])
    assert code == code2 == 1
    assert [k["cells"] for k in from_obj["kernels"]] == [k["cells"] for k in from_art["kernels"]]
