"""Verdicts the generated kernels do not reach, on the test programs and real kernels.

Weak kfuncs, typeless ksyms, LSM / iterator / struct_ops attach targets and a
target's declared prototype, on Debian 6.1 and 6.12 (corpus) and this kernel;
the facts asserted are the kernels' own (libbpf finds the same ids), and
``sigbpf resolve`` / the loader decide the same way (they share the code).
Also the CLI's ``--html`` and ``--jobs`` and the progress bar on a terminal.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest

from resolve_support import Libbpf, task_from_pid_btf

from sigbpf.fleet.model import Cell, Verdict

K61, K612 = "6.1.0-56-amd64", "6.12.95+deb12-amd64"
VMLINUX = "/sys/kernel/btf/vmlinux"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGBPF_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def kernels(corpus_btf, tmp_path_factory):
    """The corpus kernels alone in a directory (no .BTF_ids or module siblings), and this one."""
    import shutil

    d = tmp_path_factory.mktemp("alone")
    for k in (K61, K612):
        shutil.copy(corpus_btf(f"{k}.btf"), d / f"{k}.btf")
    return [str(d / f"{K61}.btf"), str(d / f"{K612}.btf"), VMLINUX]


def check(cli, obj, *kernels):
    proc = cli("check", obj, *kernels, "--json")
    assert proc.returncode in (0, 1) and not proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    return [{c["check"]: c for c in k["cells"]} for k in out["kernels"]]


def test_weak_kfuncs(cli, bpf_object, kernels):
    """A weak kfunc no kernel has is missing-weak (a warning: its call is dead code), and so is
    bpf_rcu_read_lock on 6.1 (added in 6.2); the program loads everywhere."""
    k61, k612, here = check(cli, bpf_object("kfunc_weak"), *kernels)
    for cells in (k61, k612, here):
        absent = cells["kfunc:bpf_sigbpf_no_such_kfunc"]
        assert (absent["verdict"], absent["code"]) == ("warn", "missing-weak")
        assert cells["program:weak_kfuncs"]["code"] == "accepts"
    assert k61["kfunc:bpf_rcu_read_lock"]["code"] == "missing-weak"
    assert k612["kfunc:bpf_rcu_read_lock"]["code"] == "kfunc-unknown"  # untagged, no .BTF_ids
    assert here["kfunc:bpf_rcu_read_lock"]["code"] == "resolves"


def test_ksyms_typed_and_typeless(cli, bpf_object, kernels):
    k61, k612, here = check(cli, bpf_object("ksym_vars"), *kernels)
    for cells, path in zip((k61, k612, here), kernels):
        lib = Libbpf(path)
        try:
            var = lib.lib.btf__find_by_name_kind(lib.btf, b"bpf_prog_active", 14)
        finally:
            lib.close()
        assert (cells["ksym:bpf_prog_active"]["code"], cells["ksym:bpf_prog_active"]["value"]) == \
            ("resolves", var)
        assert cells["ksym:sigbpf_no_such_var"]["code"] == "missing-weak"
        # typeless: bound through /proc/kallsyms; _stext is no FUNC or VAR of any BTF
        assert (cells["ksym:_stext"]["verdict"], cells["ksym:_stext"]["code"]) == ("warn", "kallsyms-unknown")
        assert cells["ksym:runqueues"]["code"] == "resolves"


@pytest.mark.parametrize("program, key", [("attach_lsm", "attach:bpf_lsm_file_open"),
                                          ("attach_iter", "attach:bpf_iter_task")])
def test_lsm_and_iterator_targets(cli, bpf_object, kernels, program, key):
    results = check(cli, bpf_object(program), *kernels)
    for cells, path in zip(results, kernels):
        lib = Libbpf(path)
        try:
            want = lib.find_func(key.split(":")[1])
        finally:
            lib.close()
        assert (cells[key]["code"], cells[key]["value"]) == ("resolves", want) and want > 0


def test_struct_ops_target_and_member(cli, bpf_object, kernels):
    """struct_ops: the struct by name, and the member the program implements."""
    results = check(cli, bpf_object("struct_ops_cc"), *kernels)
    keys = [k for k in results[0] if k.startswith("attach:")]
    assert keys == ["attach:tcp_congestion_ops.ssthresh", "attach:tcp_congestion_ops.undo_cwnd",
                    "attach:tcp_congestion_ops.cong_avoid"]
    for cells, path in zip(results, kernels):
        lib = Libbpf(path)
        try:
            struct = lib.lib.btf__find_by_name_kind(lib.btf, b"tcp_congestion_ops", 4)
        finally:
            lib.close()
        assert [(cells[k]["code"], cells[k]["value"]) for k in keys] == [("resolves", struct)] * 3


def test_a_declared_target_prototype_is_compared(corpus_btf):
    """When the program BTF has a FUNC of the target's name, libbpf's rule and the strict one."""
    from sigbpf.btf import BTF, Kind
    from sigbpf.fleet.attach_verdicts import _with_prototype

    kernel = BTF.from_file(corpus_btf(f"{K612}.btf"), validate=False)
    kid = kernel.find_by_name_kind("bpf_task_from_pid", Kind.FUNC)
    base = Cell("attach:bpf_task_from_pid", Verdict.OK, "resolves", f"[{kid}]", kid)
    same = task_from_pid_btf("s32").build()
    assert _with_prototype(base, "bpf_task_from_pid", same, kernel, kid) == base
    drift = _with_prototype(base, "bpf_task_from_pid", task_from_pid_btf("u64").build(), kernel, kid)
    assert (drift.verdict, drift.code) == (Verdict.WARN, "drift") and "int size 8 vs 4" in drift.detail
    bad = _with_prototype(base, "bpf_task_from_pid", task_from_pid_btf(extra_param=True).build(), kernel, kid)
    assert (bad.verdict, bad.code) == (Verdict.FAIL, "incompatible")
    assert _with_prototype(base, "other_name", same, kernel, kid) == base  # nothing declared


def test_html_and_jobs(cli, bpf_object, kernels, tmp_path):
    page = tmp_path / "report.html"
    proc = cli("check", bpf_object("fleet_all"), *kernels, "--html", page, "--jobs", "1", "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "http://" not in text.split("<body")[0]
    assert json.dumps(report["kernels"][0]["name"])[1:-1] in text
    one = cli("check", bpf_object("fleet_all"), *kernels, "--jobs", "2", "--json", "--no-cache")
    assert json.loads(one.stdout) == report


def test_progress_on_a_terminal_only(bpf_object, kernels, tmp_path):
    """stderr a terminal: the bar is drawn (and wiped); a pipe or --json: nothing."""
    env = {**os.environ, "SIGBPF_CACHE": str(tmp_path)}
    argv = [sys.executable, "-m", "sigbpf", "check", str(bpf_object("fleet_all")), *kernels, "--no-cache"]
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=secondary, env=env, timeout=300)
        os.close(secondary)
        secondary = -1
        drawn = b""
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:
                break
            if not data:
                break
            drawn += data
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    assert proc.returncode == 1
    assert b"kernels" in drawn and b"3/3" in drawn
    piped = subprocess.run(argv, capture_output=True, env=env, timeout=300)
    assert piped.stderr == b""


def test_a_typeless_ksym_the_btf_shows(bpf_object, corpus_btf):
    """Typeless ksyms are bound through /proc/kallsyms: 'kallsyms' when the kernel's BTF has a
    VAR or FUNC of that name (here the per-CPU VAR bpf_prog_active, the FUNC vfs_read)."""
    from dataclasses import replace

    from sigbpf.artifact.format import Ksym
    from sigbpf.fleet.attach_verdicts import ksym_cells
    from sigbpf.fleet.needs import load_artifact
    from sigbpf.fleet.scanbtf import ScanBTF

    path = bpf_object("fleet_all")
    art = replace(load_artifact(path.read_bytes(), str(path)),
                  ksyms=(Ksym("bpf_prog_active", 0), Ksym("vfs_read", 0), Ksym("sigbpf_nowhere", 0)))
    vmlinux = ScanBTF.parse(corpus_btf(f"{K612}.btf").read_bytes(), validate=False)
    got = [(c.check, c.verdict, c.code) for c in ksym_cells(art, None, vmlinux, ())]
    assert got == [("ksym:bpf_prog_active", Verdict.OK, "kallsyms"),
                   ("ksym:vfs_read", Verdict.OK, "kallsyms"),
                   ("ksym:sigbpf_nowhere", Verdict.WARN, "kallsyms-unknown")]
