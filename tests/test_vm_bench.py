"""The VM test bench (testbench/): Debian's 7.3 kernel under qemu (TCG), the host root over 9p.

Each test that boots costs a VM (about 5-10 s to boot under TCG, more for
Python in the guest: imports go over 9p and the CPU is emulated). The
measurements (boot time, what 7.3 answers to a signed BPF_PROG_LOAD) are
printed (``pytest -s``) and recorded as properties (``--junitxml``); see
testbench/README.md for the numbers.

The unit tests at the end (cpio, Debian versions, the archive URI, module
dependencies) need no VM.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CLANG, ROOT

from testbench import debian, initramfs
from testbench.vm import VMPanic, VMResult, VMTimeout, run_in_vm, run_pytest, run_python

CTX_TASK_ITER = "020000000a000000"   # (pid 2, 10 iterations) -> 47


def _guest_facts(probe_var: str) -> dict:
    """Runs in the guest (self-contained: testbench.vm.run_python sends its source)."""
    import ctypes
    import os
    import sys

    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(168)
    rc = libc.syscall(321, 5, attr, 168)          # BPF_PROG_LOAD with an empty attr
    err = ctypes.get_errno()
    if rc >= 0:
        os.close(rc)
    with open("/proc/mounts") as fh:
        mounts = {line.split()[1]: line.split()[2] for line in fh}
    with open("/tmp/sigbpf-vm-write-test", "w") as fh:
        fh.write("x")
    return {
        "release": os.uname().release,
        "cwd": os.getcwd(),
        "executable": sys.executable,
        "uid": os.getuid(),
        "probe": os.environ.get(probe_var),
        "in_vm": os.environ.get("SIGBPF_IN_VM"),
        "bpf_errno": err if rc < 0 else 0,
        "btf_vmlinux": os.path.exists("/sys/kernel/btf/vmlinux"),
        "mounts": mounts,
        "repo_visible": os.path.exists("examples/task_iter.bpf.o"),
    }


def _report(record_property, name: str, value) -> None:
    record_property(name, value)
    print(f"\n[vm-bench] {name}: {value}")


# ----------------------------------------------------------------- in the VM

def test_boot_debian_73_and_run_python(vm, monkeypatch, record_property) -> None:
    """uname -r is 7.3.x; the host's python3 runs as root in the host's cwd, sees the repo,
    gets PYTHONPATH/SIGBPF_* passed through, can write /tmp, and bpf() answers."""
    monkeypatch.setenv("SIGBPF_VM_BENCH_PROBE", "passed-through")
    t0 = time.monotonic()
    facts = run_python(_guest_facts, args=("SIGBPF_VM_BENCH_PROBE",), kernel=vm, cwd=ROOT,
                       timeout=600)
    _report(record_property, "python_run_seconds", round(time.monotonic() - t0, 2))
    assert facts["release"].startswith("7.3."), facts["release"]
    assert facts["release"] == vm.release
    assert facts["cwd"] == str(ROOT)
    assert facts["executable"] == sys.executable
    assert facts["uid"] == 0
    assert facts["probe"] == "passed-through"
    assert facts["in_vm"] == "1"
    assert facts["repo_visible"]
    assert facts["btf_vmlinux"]
    # EINVAL (or E2BIG/EFAULT) for an empty attr: bpf() exists and we may call it.
    assert facts["bpf_errno"] not in (1, 38), facts["bpf_errno"]
    m = facts["mounts"]
    assert m.get("/") == "overlay" and m.get("/sys/fs/bpf") == "bpf", m
    assert m.get("/proc") == "proc" and m.get("/sys") == "sysfs" and m.get("/dev") == "devtmpfs"
    assert m.get("/sys/kernel/debug") == "debugfs" and m.get("/sys/kernel/tracing") == "tracefs"
    assert not Path("/tmp/sigbpf-vm-write-test").exists()   # the guest's writes stay in the guest


def test_uname_and_boot_time(vm, record_property) -> None:
    r = run_in_vm(["uname", "-r"], kernel=vm, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == vm.release and r.stdout.startswith("7.3.")
    assert r.root == "overlay"
    assert r.boot_seconds is not None and 0 < r.boot_seconds < r.seconds
    assert "Run /init as init process" in r.kernel_log
    assert not r.kernel_warnings, r.kernel_warnings
    _report(record_property, "boot_seconds", round(r.boot_seconds, 2))
    _report(record_property, "total_seconds", round(r.seconds, 2))


def test_sigbpf_loads_and_runs_the_example_in_the_guest(vm) -> None:
    """bpf() works in 7.3: the example is loaded and run (retval 47); the repo is seen through
    9p at the same path."""
    r = run_in_vm([sys.executable, "-m", "sigbpf", "load", "examples/task_iter.bpf.o", "--run",
                   "--ctx", CTX_TASK_ITER, "--json"], kernel=vm, cwd=ROOT, timeout=900,
                  env={"PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, (r.stdout, r.stderr)
    report = json.loads(r.stdout)
    assert [(p["name"], p["loaded"], p["retval"]) for p in report["programs"]] == \
        [("task_iter", True, 47)]


PLAIN_C = """\
#define SEC(n) __attribute__((section(n), used))
SEC("syscall") int plain(void *ctx) { return 42; }
char LICENSE[] SEC("license") = "GPL";
"""


def test_signed_load_is_checked_by_the_73_kernel(vm, cli, bpf_object, tmp_path,
                                                 record_property) -> None:
    """Measurement: does 7.3 check BPF program signatures (BPF_PROG_LOAD signature/keyring_id)?

    keygen, build and sign (layout insns) run on the host; the loads run in the
    guest. The answers of 7.3.4+deb13 (6.18 here answers EOPNOTSUPP to all):

    * ``plain`` (no maps, no kfuncs: sent exactly as signed), ``--keyring
      session``: accepted, runs, retval 42. ``--keyring builtin``: ENOKEY
      ("signature verification failed: -126"): the kernel really checks.
    * ``task_iter`` and sign_two_progs' ``first`` (kfunc calls, which sigbpf
      rewrites in userspace: 7.3 has no native PROG_BTF resolution):
      EKEYREJECTED ("signature verification failed: -129"): the kernel checks
      the instructions as loaded.
    * sign_two_progs' ``second`` (a map): "signature verification passed", then
      EACCES "signed program must bind maps via a continuous fd_array
      (fd_array_cnt)" (as of this writing; a loader passing fd_array_cnt loads it).
    """
    keys = tmp_path / "keys"
    assert cli("keygen", "--out", keys).returncode == 0
    key, cert = keys / "signing_key.pem", keys / "signing_cert.pem"
    (tmp_path / "plain.c").write_text(PLAIN_C)
    subprocess.run([CLANG, "-target", "bpf", "-g", "-O2", "-c", str(tmp_path / "plain.c"),
                    "-o", str(tmp_path / "plain.o")], check=True, capture_output=True)
    for name, obj in (("plain", tmp_path / "plain.o"),
                      ("task_iter", ROOT / "examples/task_iter.bpf.o"),
                      ("two", bpf_object("sign_two_progs"))):
        art = tmp_path / f"{name}.sbpf"
        assert cli("build", obj, "-o", art).returncode == 0
        proc = cli("sign", art, "--key", key, "--cert", cert, "--layout", "insns",
                   "-o", tmp_path / f"{name}.signed")
        assert proc.returncode == 0, proc.stderr
    loads = (("plain", "session", "00"), ("plain", "builtin", "00"),
             ("task_iter", "session", CTX_TASK_ITER), ("two", "session", "00" * 8))
    lines = []
    for name, keyring, ctx in loads:
        lines.append(f"{sys.executable} -m sigbpf load {tmp_path}/{name}.signed --cert {cert} "
                     f"--keyring {keyring} --run --ctx {ctx} --json > /tmp/out.json")
        lines.append(f'echo "@@ {name}/{keyring} $?"; cat /tmp/out.json')
    r = run_in_vm("\n".join(lines) + "\n", kernel=vm, cwd=ROOT, timeout=1500,
                  env={"PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, (r.stdout, r.stderr)
    parts = re.split(r"^@@ (\S+) (\d+)$", r.stdout, flags=re.M)
    docs = {name: (int(code), json.loads(body))
            for name, code, body in zip(parts[1::3], parts[2::3], parts[3::3])}
    assert len(docs) == len(loads), r.stdout
    answers = {f"{n}: {p['name']}": (f"loaded, retval {p['retval']}" if p["loaded"] else
                                     " / ".join(p["log"].strip().splitlines()[:2]))
               for n, (_, d) in docs.items() for p in d["programs"]}
    _report(record_property, "signed_load_answers_7.3", json.dumps(answers, indent=1))
    progs = {}
    for n, (code, doc) in docs.items():
        assert doc["signature"]["passed_to_kernel"] is True, (n, doc["signature"])
        for p in doc["programs"]:
            assert "EOPNOTSUPP" not in p["log"], (n, p)    # 7.3 can check signatures
            progs[f"{n}: {p['name']}"] = p
    # Sent exactly as signed, the key in the session keyring: the kernel accepts it.
    ok = progs["plain/session: plain"]
    assert ok["loaded"] is True and ok["retval"] == 42, ok
    # The same bytes against the builtin keyring, where the key is not: ENOKEY.
    nokey = progs["plain/builtin: plain"]
    assert nokey["loaded"] is False and "signature verification failed: -126" in nokey["log"], nokey
    # Rewritten by userspace kfunc resolution: the kernel's check fails.
    for p in (progs["task_iter/session: task_iter"], progs["two/session: first"]):
        assert p["loaded"] is False and "signature verification failed: -129" in p["log"], p
    second = progs["two/session: second"]
    assert second["loaded"] is True or "signature verification passed" in second["log"], second


def test_second_fetch_uses_the_cache(vm) -> None:
    """Nothing is downloaded again: the same kernel directory, the same initramfs."""
    busybox = debian.fetch_busybox()
    initrd = initramfs.build_initramfs(vm, busybox)
    mtime = initrd.stat().st_mtime_ns
    k = debian.fetch_kernel("7.3", refresh=False)
    assert k.dir == vm.dir and k.downloaded == [] and not k.index_updated
    # Asking the archive (if it can be reached) finds the same upload, already cached.
    k = debian.fetch_kernel("7.3", refresh=True)
    assert k.downloaded == []
    assert debian.fetch_busybox() == busybox
    assert initramfs.build_initramfs(k, busybox) == initrd and initrd.stat().st_mtime_ns == mtime
    assert k.dir.parent == debian.cache_root() and not str(k.dir).startswith(str(ROOT))
    assert (k.dir / "kernel.json").exists() and list((k.dir / "debs").glob("linux-*.deb"))


def test_a_guest_panic_is_reported_with_the_log_tail(vm) -> None:
    with pytest.raises(VMPanic) as info:
        run_in_vm("echo c > /proc/sysrq-trigger; sleep 60", kernel=vm, timeout=300)
    assert "panicked" in str(info.value) and "sysrq" in str(info.value).lower()
    assert info.value.result is not None and info.value.result.returncode is None


def test_a_timeout_kills_qemu(vm) -> None:
    t0 = time.monotonic()
    with pytest.raises(VMTimeout) as info:
        run_in_vm(["sleep", "600"], kernel=vm, timeout=20)
    assert time.monotonic() - t0 < 60
    assert "qemu killed after 20 s" in str(info.value)
    assert info.value.result.returncode is None


def test_run_pytest_in_the_guest(vm, tmp_path) -> None:
    test = tmp_path / "test_in_guest.py"
    test.write_text("import os\n\n"
                    "def test_kernel():\n"
                    "    assert os.uname().release.startswith('7.3.')\n"
                    "    assert os.environ['SIGBPF_IN_VM'] == '1'\n")
    r = run_pytest([str(test), "-q"], kernel=vm, timeout=900)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "1 passed" in r.stdout


def test_exit_status_and_streams(vm) -> None:
    code = "import sys; sys.stdout.buffer.write(bytes(range(256))); sys.stderr.write('e\\r\\n'); sys.exit(3)"
    r = run_python(code, kernel=vm, timeout=300)
    assert isinstance(r, VMResult)
    assert r.returncode == 3
    assert r.stdout_bytes == bytes(range(256))     # the serial ports are raw: bytes as written
    assert r.stderr == "e\r\n"


def test_what_the_command_leaves_running_does_not_hold_the_vm(vm) -> None:
    t0 = time.monotonic()
    r = run_in_vm("(sleep 300; echo late) & echo started; echo err >&2; exit 4", kernel=vm,
                  timeout=200)
    assert (r.returncode, r.stdout, r.stderr) == (4, "started\n", "err\n")
    assert time.monotonic() - t0 < 150


# ------------------------------------------------------------- no VM needed

def _read_cpio(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    out, off = {}, 0
    while True:
        assert data[off:off + 6] == b"070701"
        f = [int(data[off + 6 + 8 * i: off + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = f[11], f[6]
        name = data[off + 110: off + 110 + namesize - 1].decode()
        off += 110 + namesize
        off += -off % 4
        body = data[off: off + filesize]
        off += filesize
        off += -off % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (f[1], body, (f[9], f[10]))


def test_cpio_newc_writer() -> None:
    c = initramfs.Cpio()
    c.dir("bin")
    c.file("bin/x", b"hello", 0o755)
    c.symlink("bin/sh", "busybox")
    c.chardev("dev/console", 5, 1)
    data = c.finish()
    assert len(data) % 512 == 0
    entries = _read_cpio(data)
    assert stat.S_ISDIR(entries["bin"][0])
    assert entries["bin/x"][1] == b"hello" and entries["bin/x"][0] & 0o777 == 0o755
    assert stat.S_ISLNK(entries["bin/sh"][0]) and entries["bin/sh"][1] == b"busybox"
    assert stat.S_ISCHR(entries["dev/console"][0]) and entries["dev/console"][2] == (5, 1)


def test_initramfs_contents(vm) -> None:
    path = initramfs.build_initramfs(vm, debian.fetch_busybox())
    entries = _read_cpio(gzip.decompress(path.read_bytes()))
    assert entries["init"][1].decode() == initramfs.INIT
    assert entries["bin/busybox"][1][:4] == b"\x7fELF"
    mods = [line.split() for line in entries["modules"][1].decode().splitlines()]
    names = [m[0] for m in mods]
    for need in initramfs.REQUIRED_MODULES:
        assert [need, "required"] in mods
        assert entries[f"lib/modules/{need}.ko"][1][:4] == b"\x7fELF"   # decompressed
    # Dependencies come first (netfs before 9p, 9pnet before 9pnet_virtio).
    assert names.index("netfs") < names.index("9p") and names.index("9pnet") < names.index("9pnet_virtio")


def test_module_dependencies_from_modinfo(vm) -> None:
    mods = dict(initramfs.resolve_modules(vm.modules_dir, ("9p",)))
    assert list(mods)[-1] == "9p" and {"netfs", "9pnet"} <= set(mods)
    info = initramfs.modinfo(mods["9p"])
    assert info["name"] == ["9p"] and info["vermagic"][0].startswith(vm.release)
    with pytest.raises(KeyError):
        initramfs.resolve_modules(vm.modules_dir, ("no_such_module",))


@pytest.mark.parametrize("a, b, sign", [
    ("7.3.4-1~bpo13+1", "7.3.10-1~bpo13+1", -1), ("7.3.4-1~bpo13+1", "7.3.4-1", -1),
    ("1.0~rc1", "1.0", -1), ("1:1.0", "2.0", 1), ("1.0-1", "1.0-1", 0), ("1.0+b1", "1.0", 1),
    ("1.0-1.1", "1.0-1", 1), ("2.0a", "2.0", 1), ("0001", "1", 0),
])
def test_debian_version_order(a, b, sign) -> None:
    r = debian.compare_versions(a, b)
    assert (r > 0) - (r < 0) == sign
    if shutil.which("dpkg"):
        op = {-1: "lt", 0: "eq", 1: "gt"}[sign]
        assert subprocess.run(["dpkg", "--compare-versions", a, op, b]).returncode == 0


def test_archive_uri_comes_from_the_system_sources(tmp_path, monkeypatch) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text("Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\n"
                       "Components: main\n\nTypes: deb\nURIs: http://mirror.invalid/debian-security\n"
                       "Suites: bookworm-security\nComponents: main\n")
    monkeypatch.setattr(debian, "SYSTEM_SOURCES", (sources, tmp_path / "none.list"))
    monkeypatch.delenv("SIGBPF_DEBIAN_MIRROR", raising=False)
    assert debian.archive_uri() == "http://mirror.invalid/debian"
    monkeypatch.setenv("SIGBPF_DEBIAN_MIRROR", "http://other.invalid/debian/")
    assert debian.archive_uri() == "http://other.invalid/debian"


def test_choose_the_newest_kernel_of_the_series() -> None:
    avail = {
        "linux-binary-7.3.4+deb13-amd64": ["7.3.4-1~bpo13+1"],
        "linux-binary-7.3.10+deb13-amd64": ["7.3.10-1~bpo13+1"],
        "linux-binary-7.3.10+deb13-cloud-amd64": ["7.3.10-1~bpo13+1"],
        "linux-binary-7.2.12+deb13-amd64": ["7.2.12-1~bpo13+1"],
        "linux-modules-7.3.10+deb13-amd64": ["7.3.10-1~bpo13+1"],
        "linux-modules-7.3.4+deb13-amd64": ["7.3.4-1~bpo13+1"],
    }
    release, version, image, pkgs = debian._choose(avail, "7.3", "amd64")
    assert (release, version) == ("7.3.10+deb13-amd64", "7.3.10-1~bpo13+1")
    assert pkgs == ["linux-binary-7.3.10+deb13-amd64", "linux-modules-7.3.10+deb13-amd64"]
    # Older layout: only linux-image-<abi>-unsigned.
    old = {"linux-image-7.3.1-amd64-unsigned": ["7.3.1-1"], "linux-image-7.3.1-amd64": ["7.3.1-1"]}
    assert debian._choose(old, "7.3", "amd64")[2] == "linux-image-7.3.1-amd64-unsigned"
    with pytest.raises(debian.FetchError):
        debian._choose(avail, "7.4", "amd64")
