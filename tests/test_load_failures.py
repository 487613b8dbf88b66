"""``sigbpf load`` on C programs that must fail: each a clear message and exit 1.

tests/progs/bad_*.c: a strong kfunc this kernel lacks (bad_missing_kfunc.c), a
real kfunc declared with the wrong prototype (bad_proto.c), a kernel function
that is not a kfunc (bad_not_kfunc.c).  Each is refused by sigbpf before the
kernel sees it; with sigbpf's checks switched off, the kernel's own verdict is
shown: the full verifier log when it refuses, and for the wrong prototype it
does not refuse at all (the verifier checks the registers against the kernel's
prototype, never the program's).
"""

from __future__ import annotations

import json

import pytest

from conftest import assert_one_line_error

pytestmark = pytest.mark.usefixtures("kernel")

CTX = "00" * 8


def test_kfunc_missing_on_this_kernel(cli, bpf_object) -> None:
    proc = cli("load", bpf_object("bad_missing_kfunc"), "--run", "--ctx", CTX)
    assert_one_line_error(proc, 1, "bpf_sigbpf_no_such_kfunc not found in vmlinux BTF")
    assert "rejected before loading" in proc.stderr
    assert "absent from this kernel\n" in proc.stdout  # strong: not "bound away"
    doc = json.loads(cli("load", bpf_object("bad_missing_kfunc"), "--json").stdout)
    assert doc["programs"][0]["loaded"] is False
    assert doc["kfuncs"] == [{"name": "bpf_sigbpf_no_such_kfunc", "btf_id": 0}]


def test_prototype_incompatible(cli, bpf_object) -> None:
    proc = cli("load", bpf_object("bad_proto"), "--run", "--ctx", CTX)
    assert_one_line_error(proc, 1, "bpf_task_from_pid: prototype incompatible")
    assert "sigbpf: error:" not in proc.stderr[len("sigbpf: error:"):]  # said once
    assert "kernel 'struct task_struct *bpf_task_from_pid(s32 pid)'" in proc.stdout
    # Without the check, name-only resolution hands the mismatch to the verifier, which
    # compares the registers with the kernel's one-argument prototype only: it loads.
    unchecked = cli("load", bpf_object("bad_proto"), "--no-proto-check")
    assert unchecked.returncode == 0, unchecked.stderr
    assert unchecked.stderr == ""
    doc = json.loads(cli("load", bpf_object("bad_proto"), "--no-proto-check", "--json").stdout)
    assert doc["programs"][0]["loaded"] is True


def test_not_a_kfunc(cli, bpf_object) -> None:
    proc = cli("load", bpf_object("bad_not_kfunc"), "--no-proto-check")
    assert_one_line_error(proc, 1, "vfs_read")
    assert "is not a kfunc" in proc.stderr
    unchecked = cli("load", bpf_object("bad_not_kfunc"), "--no-proto-check",
                    "--no-kfunc-check")
    assert_one_line_error(unchecked, 1, "EACCES")
    assert "verifier log:" in unchecked.stdout
    assert "calling kernel function vfs_read is not allowed" in unchecked.stdout
