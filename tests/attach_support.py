"""Helpers and fixtures of the attach tests (tests/test_attach*.py).

* ``bpffs_dir``   a fresh, unique directory on bpffs (under /sys/fs/bpf, or on a bpffs
                  the fixture mounts in a temporary directory when /sys/fs/bpf is not usable)
* ``netns_pair``  two network namespaces joined by a veth pair with IPv4 addresses
* ``cgroup_dir``  a fresh cgroup v2 directory
* ``counts(loaded)``  the test programs' ``counts`` map (tests/progs/attach_common.h)
* ``in_netns(name)``  run a block of this process in another network namespace (setns)
* ``loaded_programs(names)``  ids of the programs with these names the kernel holds now
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from conftest import BPFTOOL

CLONE_NEWNET = 0x40000000


def wait_for(predicate, timeout: float = 5.0) -> bool:
    """Poll *predicate* until it holds or *timeout* seconds pass; its last answer."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def counts(loaded, slots: int = 8) -> list[int]:
    """The u64 counters of the ``counts`` ARRAY map, read with lookup_elem."""
    from sigbpf.kernel.maps import lookup_elem

    fd = map_fd(loaded, "counts")
    return [struct.unpack("<Q", lookup_elem(fd, struct.pack("<I", i), 8))[0] for i in range(slots)]


def map_fd(loaded, name: str):
    return {m.name: fd for m, fd in zip(loaded.artifact.maps, loaded.map_fds)}[name]


def set_u64(loaded, name: str, key: int, value: int) -> None:
    from sigbpf.kernel.maps import update_elem

    update_elem(map_fd(loaded, name), struct.pack("<I", key), struct.pack("<Q", value))


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """This thread in network namespace *name* (``/run/netns/NAME``) for the block."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(home)
        os.close(target)


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, timeout=60)


def bpftool_json(*args: str):
    return json.loads(run(BPFTOOL, "-j", *args).stdout or "null")


def loaded_programs(names: set[str]) -> list[int]:
    """Ids of the programs named *names* in the kernel now (bpftool prog show)."""
    return [p["id"] for p in bpftool_json("prog", "show") or [] if p.get("name") in names]


def links_of(prog_ids: list[int]) -> list[dict]:
    """The links (bpftool link show) of these programs."""
    return [link for link in bpftool_json("link", "show") or [] if link.get("prog_id") in prog_ids]


@dataclass(frozen=True)
class NetnsPair:
    """Namespaces ``a`` and ``b``; ``iface_a`` (ip_a, in a) is the veth peer of ``iface_b``."""

    a: str
    b: str
    iface_a: str
    iface_b: str
    ip_a: str
    ip_b: str

    def send_udp(self, count: int = 5, port: int = 9) -> None:
        """*count* UDP datagrams from namespace b to ip_a."""
        code = ("import socket,time\n"
                "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                f"for i in range({count}):\n"
                f"    s.sendto(b'sigbpf', ('{self.ip_a}', {port})); time.sleep(0.02)\n")
        run("nsenter", f"--net=/run/netns/{self.b}", sys.executable, "-c", code)

    def argv_in_a(self, *argv: str) -> list[str]:
        """*argv* run in namespace a (only the network namespace changes, not the mounts)."""
        return ["nsenter", f"--net=/run/netns/{self.a}", *argv]


@pytest.fixture(scope="module")
def netns_pair() -> Iterator[NetnsPair]:
    if shutil.which("ip") is None or shutil.which("nsenter") is None:
        pytest.skip("iproute2 / nsenter not installed")
    tag = uuid.uuid4().hex[:6]
    pair = NetnsPair(f"sgb-{tag}-a", f"sgb-{tag}-b", f"sgb{tag}a", f"sgb{tag}b",
                     "10.213.7.1", "10.213.7.2")
    try:
        run("ip", "netns", "add", pair.a)
        run("ip", "netns", "add", pair.b)
        run("ip", "link", "add", pair.iface_a, "type", "veth", "peer", "name", pair.iface_b)
        run("ip", "link", "set", pair.iface_a, "netns", pair.a)
        run("ip", "link", "set", pair.iface_b, "netns", pair.b)
        run("ip", "-n", pair.a, "addr", "add", f"{pair.ip_a}/24", "dev", pair.iface_a)
        run("ip", "-n", pair.b, "addr", "add", f"{pair.ip_b}/24", "dev", pair.iface_b)
        for ns, iface in ((pair.a, pair.iface_a), (pair.b, pair.iface_b)):
            run("ip", "-n", ns, "link", "set", iface, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        yield pair
    finally:
        run("ip", "netns", "del", pair.a, check=False)
        run("ip", "netns", "del", pair.b, check=False)


@pytest.fixture(scope="session")
def bpffs_root() -> Iterator[Path]:
    """A directory on bpffs the tests may create entries in."""
    from sigbpf.kernel.bpffs import BPFFS, is_bpffs

    if is_bpffs(BPFFS) and os.access(BPFFS, os.W_OK):
        base = Path(BPFFS) / f"sigbpf-test-{uuid.uuid4().hex[:8]}"
        base.mkdir()
        try:
            yield base
        finally:
            shutil.rmtree(base, ignore_errors=True)
        return
    mnt = Path(tempfile.mkdtemp(prefix="sigbpf-bpffs-"))
    proc = run("mount", "-t", "bpf", "bpf", str(mnt), check=False)
    if proc.returncode != 0:
        os.rmdir(mnt)
        pytest.skip(f"no usable bpffs: /sys/fs/bpf is not one and mount failed: {proc.stderr}")
    try:
        yield mnt
    finally:
        run("umount", str(mnt), check=False)
        os.rmdir(mnt)


@pytest.fixture
def bpffs_dir(bpffs_root: Path) -> Iterator[Path]:
    """A path on bpffs that does not exist yet (removed afterwards if a test left it)."""
    path = bpffs_root / f"t{uuid.uuid4().hex[:8]}"
    yield path
    if path.exists():
        subprocess.run([sys.executable, "-m", "sigbpf", "unload", str(path)],
                       capture_output=True, env={**os.environ,
                                                 "PYTHONPATH": str(Path(__file__).parent.parent)})
        shutil.rmtree(path, ignore_errors=True)


def cgroup2_mount() -> Path | None:
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


@pytest.fixture
def cgroup_dir() -> Iterator[Path]:
    root = cgroup2_mount()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    path = root / f"sigbpf-test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        yield path
    finally:
        os.rmdir(path)


def run_in_cgroup(cgroup: Path, code: str) -> subprocess.CompletedProcess:
    """Python *code* in a new process that first moves itself into *cgroup*."""
    return subprocess.run(["sh", "-c", f'echo $$ > "{cgroup}/cgroup.procs" && exec "$0" -c "$1"',
                           sys.executable, code], capture_output=True, text=True, timeout=60)
