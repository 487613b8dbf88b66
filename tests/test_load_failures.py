"""``sigbpf load`` on C programs that must fail: each a clear message and exit 1.

tests/progs/load_fail_*.c: a strong kfunc this kernel lacks, a real kfunc
declared with the wrong prototype, a kernel function that is not a kfunc.
Each is refused by sigbpf before the kernel sees it; with sigbpf's checks
switched off, the kernel's own verdict (and full verifier log) is shown.
"""

from __future__ import annotations

import json

import pytest

from conftest import assert_one_line_error

pytestmark = pytest.mark.usefixtures("kernel")

CTX = "00" * 8


def test_kfunc_missing_on_this_kernel(cli, bpf_object) -> None:
    proc = cli("load", bpf_object("load_fail_missing"), "--run", "--ctx", CTX)
    assert_one_line_error(proc, 1, "bpf_sigbpf_no_such_kfunc not found in vmlinux BTF")
    assert "rejected before loading" in proc.stderr
    assert "absent from this kernel\n" in proc.stdout  # strong: not "bound away"
    doc = json.loads(cli("load", bpf_object("load_fail_missing"), "--json").stdout)
    assert doc["programs"][0]["loaded"] is False
    assert doc["kfuncs"] == [{"name": "bpf_sigbpf_no_such_kfunc", "btf_id": 0}]


def test_prototype_incompatible(cli, bpf_object) -> None:
    proc = cli("load", bpf_object("load_fail_proto"), "--run", "--ctx", CTX)
    assert_one_line_error(proc, 1, "bpf_task_from_pid: prototype incompatible")
    assert "sigbpf: error:" not in proc.stderr[len("sigbpf: error:"):]  # said once
    assert "kernel 'struct task_struct *bpf_task_from_pid(s32 pid)'" in proc.stdout
    # Without the check, name-only resolution hands the mismatch to the verifier.
    unchecked = cli("load", bpf_object("load_fail_proto"), "--no-proto-check")
    assert_one_line_error(unchecked, 1, "EINVAL")
    assert "verifier log:" in unchecked.stdout and "R1 is not a scalar" in unchecked.stdout


def test_not_a_kfunc(cli, bpf_object) -> None:
    proc = cli("load", bpf_object("load_fail_not_kfunc"), "--no-proto-check")
    assert_one_line_error(proc, 1, "vfs_read")
    assert "is not a kfunc" in proc.stderr
    unchecked = cli("load", bpf_object("load_fail_not_kfunc"), "--no-proto-check",
                    "--no-kfunc-check")
    assert_one_line_error(unchecked, 1, "EACCES")
    assert "calling kernel function vfs_read is not allowed" in unchecked.stdout
