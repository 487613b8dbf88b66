"""The attach tests this machine's kernel cannot run, run in one that can (the VM bench).

This 6.18 kernel has no kprobes (``CONFIG_KPROBES`` off) and refuses every
trampoline program -- fentry/fexit/fmod_ret and LSM -- with EPERM, for libbpf
as for sigbpf (tests/test_attach.py asserts that parity here).  Debian's 7.3
kernel has all three; booted by the VM bench with the BPF LSM enabled, it runs
tests/test_attach.py's kprobe, kprobe.multi, fentry/fexit and LSM tests in
full (``SIGBPF_REQUIRE_FULL_ATTACH=1``: none may fall back to a "this kernel
refuses" path).  The test objects are compiled on the host (clang under TCG
would take minutes) and handed to the guest through the 9p mount.
"""

from __future__ import annotations

import re

import pytest

NAMES = ("attach_kprobe", "attach_kmulti", "attach_btf", "attach_lsm")
#: Debian's default LSM order with bpf appended (CONFIG_LSM lacks it).
LSM = "lsm=lockdown,capability,landlock,yama,apparmor,tomoyo,bpf"


def test_kprobe_fentry_and_lsm_attach_in_debian_73(vm, bpf_object) -> None:
    from testbench.vm import run_pytest

    objects = {name: bpf_object(name) for name in NAMES}
    (prebuilt,) = {path.parent for path in objects.values()}
    result = run_pytest(["tests/test_attach.py", "-q", "-rA", "-k",
                         "kprobe or fentry or lsm"],
                        kernel=vm, timeout=1500, append=LSM,
                        env={"SIGBPF_REQUIRE_KERNEL": "1", "SIGBPF_REQUIRE_FULL_ATTACH": "1",
                             "SIGBPF_PREBUILT_OBJECTS": str(prebuilt)})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:] + result.log_tail()
    for name in ("test_kprobe", "test_kprobe_multi", "test_fentry_fexit_run",
                 "test_lsm_counts_and_denies_file_open"):
        assert re.search(rf"PASSED tests/test_attach.py::{name}\b", out), (name, out[-3000:])
    assert "SKIPPED" not in out, out[-3000:]
