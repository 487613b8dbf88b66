"""``sigbpf load --attach/--pin`` and ``sigbpf unload`` from the command line, on the real kernel.

Pinning (``bpftool map dump pinned`` reads what sigbpf pinned), unloading,
staying attached in the foreground (``--duration``, SIGTERM, SIGINT), and
the one-line errors: a missing or wrong target, a pin directory that
exists or is not on bpffs, no permission.  After every error nothing stays
attached or pinned: no program of the object is left in the kernel, no
link, no pin directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from attach_support import (bpffs_dir, bpffs_root, cgroup_dir, links_of,  # noqa: F401
                            loaded_programs, netns_pair, wait_for)
from conftest import BPFTOOL, ROOT, assert_one_line_error

pytestmark = pytest.mark.usefixtures("kernel")

TRACE_PROGS = {"tp_getppid", "raw_sys_enter", "up_getpid", "uret_getpid", "upm_getppid"}


def assert_nothing_left(names: set[str], pin_dir: Path | None = None) -> None:
    """No program named *names* in the kernel (so no link either) and no pin directory."""
    assert wait_for(lambda: not loaded_programs(names)), loaded_programs(names)
    if pin_dir is not None:
        assert not pin_dir.exists(), sorted(pin_dir.rglob("*"))


def read_pinned_counts(path: Path, slots: int = 8) -> list[int]:
    """The counters of a pinned ``counts`` map, through BPF_OBJ_GET and lookup_elem."""
    from sigbpf.kernel.bpffs import obj_get
    from sigbpf.kernel.maps import lookup_elem

    with obj_get(str(path), "map") as fd:
        return [struct.unpack("<Q", lookup_elem(fd, struct.pack("<I", i), 8))[0]
                for i in range(slots)]


# --- --pin, bpftool, unload ------------------------------------------------------------------

def test_pin_then_bpftool_dump_then_unload(cli, bpf_object, bpffs_dir) -> None:
    obj = bpf_object("attach_trace")
    proc = cli("load", obj, "--attach", "--pin", bpffs_dir, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert list(doc)[:3] == ["resolution", "programs", "kfuncs"]
    assert {"attached", "not_attached", "pinned"} <= set(doc)
    assert {a["program"] for a in doc["attached"]} == TRACE_PROGS
    tp = next(a for a in doc["attached"] if a["program"] == "tp_getppid")
    assert tp == {"program": "tp_getppid", "section": "tp/syscalls/sys_enter_getppid",
                  "kind": "tracepoint", "target": "tracepoint syscalls/sys_enter_getppid",
                  "links": [{"id": tp["links"][0]["id"], "type": "perf_event",
                             "pinned": f"{bpffs_dir}/links/tp_getppid"}]}
    assert doc["pinned"]["maps"] == {"counts": f"{bpffs_dir}/maps/counts"}
    assert sorted(os.listdir(bpffs_dir)) == ["links", "maps", "progs"]
    assert sorted(os.listdir(bpffs_dir / "links")) == sorted(TRACE_PROGS)
    assert sorted(os.listdir(bpffs_dir / "progs")) == sorted(TRACE_PROGS)

    # sigbpf has exited: the pinned links keep the programs attached and running.
    before = read_pinned_counts(bpffs_dir / "maps" / "counts")
    for _ in range(10):
        os.getppid()
    after = read_pinned_counts(bpffs_dir / "maps" / "counts")
    assert after[0] - before[0] >= 10 and after[1] - before[1] >= 10
    dump = subprocess.run([BPFTOOL, "-j", "map", "dump", "pinned", str(bpffs_dir / "maps" / "counts")],
                          capture_output=True, text=True)
    assert dump.returncode == 0, dump.stderr
    # With BTF, bpftool prints the typed key and value under "formatted".
    values = {e["formatted"]["key"]: e["formatted"]["value"] for e in json.loads(dump.stdout)}
    assert values[0] >= after[0]
    pinned_link = subprocess.run([BPFTOOL, "-j", "link", "show", "pinned",
                                  str(bpffs_dir / "links" / "raw_sys_enter")],
                                 capture_output=True, text=True)
    assert json.loads(pinned_link.stdout)["type"] == "raw_tracepoint"

    proc = cli("unload", bpffs_dir, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] is True and not bpffs_dir.exists()
    kinds = [o["kind"] for o in result["unpinned"]]
    assert kinds == ["link"] * 5 + ["prog"] * 5 + ["map"]
    assert result["removed_dirs"][-1] == str(bpffs_dir)
    assert_nothing_left(TRACE_PROGS)


def test_pin_without_attach_pins_maps_and_programs(cli, bpf_object, bpffs_dir) -> None:
    proc = cli("load", bpf_object("attach_iter"), "--pin", bpffs_dir)
    assert proc.returncode == 0, proc.stderr
    assert "pinned under" in proc.stdout and "attached:" not in proc.stdout
    # A '.' is refused by bpffs: the .rodata map is pinned as libbpf names it, with '_'.
    assert sorted(os.listdir(bpffs_dir / "maps")) == ["attach_i_rodata", "counts"]
    assert os.listdir(bpffs_dir / "links") == []
    show = subprocess.run([BPFTOOL, "-j", "prog", "show", "pinned", str(bpffs_dir / "progs" / "dump_task")],
                          capture_output=True, text=True)
    assert json.loads(show.stdout)["name"] == "dump_task"
    proc = cli("unload", bpffs_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"removed {bpffs_dir}" in proc.stdout
    assert_nothing_left({"dump_task"}, bpffs_dir)


def test_xdp_pinned_in_a_netns_counts_packets_then_unload_detaches(cli, bpf_object, bpffs_dir,
                                                                    netns_pair) -> None:
    """XDP on a veth inside a namespace (sigbpf runs there with nsenter), pinned; packets from
    the peer namespace are counted; `unload` detaches the XDP link (BPF_LINK_DETACH)."""
    argv = netns_pair.argv_in_a(sys.executable, "-m", "sigbpf", "load",
                                str(bpf_object("attach_xdp")), "--attach", "--iface",
                                netns_pair.iface_a, "--pin", str(bpffs_dir))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert f"attached: program xdp_count (xdp) attached to XDP on {netns_pair.iface_a}" in proc.stdout
    netns_pair.send_udp(5)
    counts = bpffs_dir / "maps" / "counts"
    assert wait_for(lambda: read_pinned_counts(counts)[1] >= 5), read_pinned_counts(counts)
    ip = subprocess.run(["ip", "-n", netns_pair.a, "-d", "link", "show", netns_pair.iface_a],
                        capture_output=True, text=True).stdout
    assert "xdp" in ip
    proc = cli("unload", bpffs_dir, "--json")
    assert proc.returncode == 0, proc.stderr
    link = json.loads(proc.stdout)["unpinned"][0]
    assert (link["kind"], link["type"], link["detached"]) == ("link", "xdp", True)
    ip = subprocess.run(["ip", "-n", netns_pair.a, "-d", "link", "show", netns_pair.iface_a],
                        capture_output=True, text=True).stdout
    assert "prog/xdp" not in ip
    assert_nothing_left({"xdp_count"}, bpffs_dir)


def test_perf_event_links_pinned_per_cpu(cli, bpf_object, bpffs_dir) -> None:
    from sigbpf.kernel.perf_event import online_cpus

    proc = cli("load", bpf_object("attach_perf"), "--attach", "--perf-event", "cpu-clock:freq=500",
               "--pin", bpffs_dir)
    assert proc.returncode == 0, proc.stderr
    cpus = online_cpus()
    assert sorted(os.listdir(bpffs_dir / "links")) == sorted(f"on_sample_cpu{c}" for c in cpus)
    # The pinned links keep the sampling events alive and enabled after sigbpf has exited.
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        pass
    assert read_pinned_counts(bpffs_dir / "maps" / "counts")[0] > 0
    proc = cli("unload", bpffs_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("(perf_event): unpinned (detached on release)") == len(cpus)
    assert_nothing_left({"on_sample"}, bpffs_dir)


# --- foreground: --duration, SIGTERM, SIGINT ---------------------------------------------------

def test_duration_detaches_and_exits_0(cli, bpf_object) -> None:
    start = time.monotonic()
    proc = cli("load", bpf_object("attach_trace"), "--programs", "tp_getppid", "--attach",
               "--duration", "1")
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert elapsed >= 1.0
    lines = proc.stdout.splitlines()
    assert "holding 1 attachments for 1 s" in lines
    assert lines[-1] == "detached 1 attachments (1s elapsed)"
    assert proc.stderr == ""
    assert_nothing_left({"tp_getppid"})


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_detaches_and_exits_0(bpf_object, sig) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "sigbpf", "load", str(bpf_object("attach_trace")),
                             "--programs", "tp_getppid,raw_sys_enter", "--attach"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("holding"):
                break
        assert lines[-1] == "holding 2 attachments until SIGINT or SIGTERM", lines
        ids = loaded_programs({"tp_getppid", "raw_sys_enter"})
        assert len(ids) == 2 and len(links_of(ids)) == 2
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.strip().splitlines()[-1] == f"detached 2 attachments ({sig.name})"
    assert err == ""
    assert_nothing_left({"tp_getppid", "raw_sys_enter"})


def test_attach_json_without_pin(cli, bpf_object, cgroup_dir) -> None:
    proc = cli("load", bpf_object("attach_cgroup"), "--attach", "--cgroup", cgroup_dir,
               "--duration", "0.2", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [a["kind"] for a in doc["attached"]] == ["cgroup", "cgroup"]
    assert all(a["links"][0]["pinned"] is None and a["links"][0]["type"] == "cgroup"
               for a in doc["attached"])
    assert "pinned" not in doc
    assert_nothing_left({"sock_create", "connect4"})


def test_programs_libbpf_leaves_alone_are_reported(cli, bpf_object, bpffs_dir) -> None:
    """A syscall program is loaded but not attached (as libbpf's skeleton attach skips it)."""
    proc = cli("load", ROOT / "examples" / "task_iter.bpf.o", "--attach", "--pin", bpffs_dir,
               "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["attached"] == []
    assert doc["not_attached"] == [{"program": "task_iter", "section": "syscall",
                                    "reason": "syscall programs are run (--run), not attached"}]
    assert cli("unload", bpffs_dir).returncode == 0


# --- one-line errors; nothing left behind ------------------------------------------------------

MIXED = {"mixed_tp", "xdp_pass"}


def test_missing_iface(cli, bpf_object) -> None:
    proc = cli("load", bpf_object("attach_mixed"), "--attach")
    assert_one_line_error(proc, 2, "program 'xdp_pass' (section xdp) needs --iface")
    assert proc.stdout == ""
    assert_nothing_left(MIXED)


def test_nonexistent_interface(cli, bpf_object) -> None:
    proc = cli("load", bpf_object("attach_mixed"), "--attach", "--iface", "sgbnope0")
    assert_one_line_error(proc, 2, "program 'xdp_pass' (section xdp): no network interface "
                                   "'sgbnope0' (--iface)")
    assert_nothing_left(MIXED)


def test_nonexistent_cgroup(cli, bpf_object, tmp_path) -> None:
    proc = cli("load", bpf_object("attach_cgroup"), "--attach", "--cgroup", tmp_path / "nope")
    assert_one_line_error(proc, 2, f"cgroup {tmp_path}/nope (--cgroup) does not exist")
    assert_nothing_left({"sock_create", "connect4"})


def test_pin_dir_exists(cli, bpf_object, bpffs_dir) -> None:
    bpffs_dir.mkdir()
    (bpffs_dir / "other").mkdir()
    proc = cli("load", bpf_object("attach_mixed"), "--attach", "--iface", "lo", "--pin", bpffs_dir)
    assert_one_line_error(proc, 2, f"--pin {bpffs_dir}: exists and is not empty")
    assert sorted(os.listdir(bpffs_dir)) == ["other"]
    assert_nothing_left(MIXED)
    (bpffs_dir / "other").rmdir()
    bpffs_dir.rmdir()


def test_pin_dir_not_on_bpffs(cli, bpf_object, tmp_path) -> None:
    proc = cli("load", bpf_object("attach_trace"), "--attach", "--pin", tmp_path / "pins")
    assert_one_line_error(proc, 2, f"--pin {tmp_path}/pins: {tmp_path} is not on a BPF filesystem")
    assert_nothing_left(TRACE_PROGS, tmp_path / "pins")


def test_attach_failure_undoes_everything(cli, bpf_object, bpffs_dir) -> None:
    """The uprobe fails after the tracepoint is attached: exit 1, one line naming the program,
    the target and the errno; the tracepoint is detached and nothing is pinned."""
    proc = cli("load", bpf_object("attach_fail"), "--attach", "--pin", bpffs_dir)
    assert_one_line_error(proc, 1, "program 'fail_uprobe' (section uprobe/libc.so.6:"
                                   "sigbpf_no_such_function): attaching to uprobe ")
    assert "(ENOENT)" in proc.stderr
    assert proc.stdout == ""
    assert_nothing_left({"fail_tp", "fail_uprobe"}, bpffs_dir)


def test_no_permission_to_pin_undoes_the_attachments(cli, bpf_object, bpffs_root) -> None:
    """Root without CAP_DAC_OVERRIDE cannot make the pin directory in a 0555 bpffs directory:
    the error comes after the programs are attached, and they are all detached again."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not installed")
    parent = bpffs_root / f"ro{os.getpid()}"
    parent.mkdir(mode=0o555)
    parent.chmod(0o555)
    target = parent / "pins"
    drop = "-dac_override,-dac_read_search,-fowner"
    try:
        proc = subprocess.run(["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}",
                               sys.executable, "-m", "sigbpf", "load", str(bpf_object("attach_trace")),
                               "--attach", "--pin", str(target)],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert_one_line_error(proc, 2, f"--pin: cannot make directory {target}: Permission denied")
        assert_nothing_left(TRACE_PROGS, target)
    finally:
        parent.rmdir()


def test_no_permission_unprivileged_user(bpf_object, bpffs_dir) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not installed")
    d = Path(tempfile.mkdtemp(prefix="sigbpf-perm-"))
    try:
        shutil.copytree(ROOT / "sigbpf", d / "sigbpf", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(bpf_object("attach_mixed"), d / "attach_mixed.o")
        for path in [d, *d.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               sys.executable, "-m", "sigbpf", "load", str(d / "attach_mixed.o"),
                               "--attach", "--iface", "lo"],
                              capture_output=True, text=True, timeout=120, cwd="/",
                              env={**os.environ, "PYTHONPATH": str(d),
                                   "PYTHONDONTWRITEBYTECODE": "1"})
    finally:
        shutil.rmtree(d)
    assert_one_line_error(proc, 1, "EPERM")
    assert "no permission to use bpf()" in proc.stderr
    assert_nothing_left(MIXED)


def test_struct_ops_refused(cli, bpf_object) -> None:
    proc = cli("load", bpf_object("attach_structops"), "--attach")
    assert_one_line_error(proc, 2, "program 'ops_test_1' (section struct_ops/test_1): struct_ops "
                                   "programs are registered through a struct_ops map")
    assert_nothing_left({"ops_test_1"})


def test_kprobe_without_kprobes_is_one_line(cli, bpf_object) -> None:
    if Path("/sys/bus/event_source/devices/kprobe/type").exists():
        pytest.skip("this kernel has kprobes (tests/test_attach.py runs them)")
    proc = cli("load", bpf_object("attach_kprobe"), "--attach")
    assert_one_line_error(proc, 1, "program 'kp_openat2' (section kprobe/do_sys_openat2): "
                                   "attaching to kprobe do_sys_openat2 (perf_event_open): this "
                                   "kernel has no kprobe PMU")
    assert_nothing_left({"kp_openat2", "kret_openat2"})


@pytest.mark.parametrize("args,message", [
    (["--iface", "lo"], "--iface goes with --attach"),
    (["--duration", "1"], "--duration goes with --attach"),
    (["--attach", "--duration", "1", "--pin", "/sys/fs/bpf/x"], "--duration and --pin exclude"),
    (["--attach", "--duration", "0"], "--duration 0: must be a positive number"),
    (["--attach", "--perf-event", "nope"], "--perf-event 'nope': not an event name"),
])
def test_usage_errors(cli, bpf_object, args, message) -> None:
    obj = bpf_object("attach_perf") if "--perf-event" in args else bpf_object("attach_trace")
    proc = cli("load", obj, *args)
    assert_one_line_error(proc, 2, message)


def test_unload_refuses_what_it_did_not_make(cli, bpffs_dir, tmp_path) -> None:
    assert_one_line_error(cli("unload", bpffs_dir), 2, "no such directory")
    assert_one_line_error(cli("unload", tmp_path), 2, "not on a BPF filesystem")
    bpffs_dir.mkdir()
    (bpffs_dir / "maps").mkdir()
    (bpffs_dir / "mine").mkdir()
    proc = cli("unload", bpffs_dir)
    assert_one_line_error(proc, 2, "holds 'mine', which `sigbpf load --pin` does not make")
    assert sorted(os.listdir(bpffs_dir)) == ["maps", "mine"]
    (bpffs_dir / "maps").rmdir()
    (bpffs_dir / "mine").rmdir()
    bpffs_dir.rmdir()
