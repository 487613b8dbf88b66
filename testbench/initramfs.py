"""The test bench's initramfs: busybox, the 9p/overlay modules, and ``/init``.

``/init`` (a busybox sh script, :data:`INIT`) loads the modules, mounts the
host's root read-only over 9p (``mount_tag=hostroot``) at ``/lower``, puts a
tmpfs-backed overlay on top of it (falling back to the bare read-only mount
with tmpfs on ``/tmp`` and ``/var/tmp`` when overlayfs is unavailable), mounts
proc, sys, devtmpfs, devpts, ``/dev/shm``, ``/run``, bpffs, debugfs, tracefs
and cgroup2 inside it, chroots there and runs the job script whose host path
is ``sigbpf.job=PATH`` on the kernel command line. The job's stdout goes to
ttyS1, its stderr to ttyS2, and status lines (``sigbpf-vm: start <uptime>``,
``sigbpf-vm: exit <rc> <uptime>``, ``sigbpf-vm: fail <why>``) to ttyS3; what
the command left running is killed, then ``poweroff -f``. The kernel log is on ttyS0.

The archive is cpio "newc", gzip-compressed, written here in Python
(deterministic: every mtime is 0). It is cached next to the kernel, keyed by a
hash of everything that goes in.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import re
import stat
import struct
import tempfile
import zlib
from pathlib import Path

from testbench.debian import Kernel, fetch_busybox

#: Modules the init needs (with their dependencies). ``overlay`` is optional.
REQUIRED_MODULES = ("netfs", "9pnet", "9pnet_virtio", "9p")
OPTIONAL_MODULES = ("overlay",)

INIT = r"""#!/bin/busybox sh
# sigbpf testbench /init: mount the host root (9p), chroot, run one job, power off.
/bin/busybox mkdir -p /proc /sys /dev /lower /rw /newroot /out
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for p in 1 2 3; do stty -F /dev/ttyS$p raw -echo 2>/dev/null; done
up() { cut -d' ' -f1 /proc/uptime; }
st() { echo "sigbpf-vm: $*" > /dev/ttyS3; }
fail() {
    st "fail $*"
    echo "sigbpf-vm: fail $*"
    poweroff -f
    exit 1
}
st "init $(up)"
while read -r m need; do
    insmod /lib/modules/$m.ko 2>/dev/null || {
        [ "$need" = required ] && fail "insmod $m"
        st "note insmod $m failed"
    }
done < /modules

job=; overlay=1
for w in $(cat /proc/cmdline); do
    case "$w" in
        sigbpf.job=*) job=${w#sigbpf.job=} ;;
        sigbpf.overlay=*) overlay=${w#sigbpf.overlay=} ;;
    esac
done
[ -n "$job" ] || fail "no sigbpf.job= on the kernel command line"

mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /lower \
    || fail "mount -t 9p hostroot"
R=/newroot
mount -t tmpfs -o mode=0755 tmpfs /rw
if [ "$overlay" = 1 ] && mkdir -p /rw/upper /rw/work \
   && mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay $R 2>/dev/null; then
    st "root overlay"
else
    mount --bind /lower $R || fail "bind mount of the host root"
    mount -t tmpfs -o mode=1777 tmpfs $R/tmp
    mount -t tmpfs -o mode=1777 tmpfs $R/var/tmp
    st "root 9p-ro"
fi
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
ln -sf /proc/self/fd $R/dev/fd
ln -sf /proc/self/fd/0 $R/dev/stdin
ln -sf /proc/self/fd/1 $R/dev/stdout
ln -sf /proc/self/fd/2 $R/dev/stderr
mount -t tmpfs -o mode=0755 tmpfs $R/run
mount -t bpf bpf $R/sys/fs/bpf || st "note no bpffs"
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
hostname sigbpf-vm
ip link set lo up 2>/dev/null
cp /lower$job $R/run/sigbpf-job.sh || fail "cannot read the job $job"

mkfifo /out/o /out/e
cat /out/o > /dev/ttyS1 &
p1=$!
cat /out/e > /dev/ttyS2 &
p2=$!
st "start $(up)"
chroot $R /bin/sh /run/sigbpf-job.sh > /out/o 2> /out/e < /dev/null
rc=$?
# What the command left running (it may hold the pipes open) goes now.
for d in /proc/[0-9]*; do
    p=${d#/proc/}
    case " 1 $p1 $p2 " in *" $p "*) ;; *) kill -9 $p 2>/dev/null ;; esac
done
wait $p1 $p2
st "exit $rc $(up)"
poweroff -f
exit $rc
"""


# ------------------------------------------------------------------------ cpio

class Cpio:
    """A cpio "newc" archive writer (what the kernel's initramfs unpacker reads)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1000

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
               nlink: int = 1) -> None:
        self.ino += 1
        name_b = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0)
        self.buf.write(b"070701" + b"".join(b"%08X" % f for f in fields))
        self.buf.write(name_b)
        self.buf.write(b"\0" * (-(110 + len(name_b)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name: str, perm: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | perm, nlink=2)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0, nlink=1)
        data = self.buf.getvalue()
        return data + b"\0" * (-len(data) % 512)


# --------------------------------------------------------------------- modules

def _decompress(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(raw)
    if path.name.endswith(".gz"):
        return gzip.decompress(raw)
    if path.name.endswith(".zst"):
        import subprocess
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    return raw


def modinfo(ko: bytes) -> dict[str, list[str]]:
    """The ``.modinfo`` section of an ELF64 little-endian module: key -> values."""
    if ko[:4] != b"\x7fELF" or ko[4] != 2 or ko[5] != 1:
        raise ValueError("not an ELF64 little-endian object")
    e_shoff, = struct.unpack_from("<Q", ko, 0x28)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", ko, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _typ, _flags, _addr, off, size = struct.unpack_from("<IIQQQQ", ko, e_shoff + i * e_shentsize)
        return name, off, size

    _, stroff, _ = section(e_shstrndx)
    info: dict[str, list[str]] = {}
    for i in range(e_shnum):
        name, off, size = section(i)
        end = ko.index(b"\0", stroff + name)
        if ko[stroff + name:end] == b".modinfo":
            for item in ko[off:off + size].split(b"\0"):
                if b"=" in item:
                    k, v = item.decode(errors="replace").split("=", 1)
                    info.setdefault(k, []).append(v)
    return info


def _norm(name: str) -> str:
    return name.replace("-", "_")


def _module_index(modules_dir: Path) -> tuple[dict[str, Path], set[str]]:
    index: dict[str, Path] = {}
    for p in (modules_dir / "kernel").rglob("*.ko*"):
        m = re.fullmatch(r"(.+)\.ko(\.xz|\.gz|\.zst)?", p.name)
        if m:
            index[_norm(m.group(1))] = p
    builtin: set[str] = set()
    b = modules_dir / "modules.builtin"
    if b.exists():
        for line in b.read_text().split():
            builtin.add(_norm(Path(line).name.removesuffix(".ko")))
    return index, builtin


def resolve_modules(modules_dir: Path, names: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """(name, decompressed .ko) for *names* and their dependencies, in load order.

    Dependencies are the modules' own ``depends=`` (what depmod writes to
    modules.dep); built-in modules are skipped; a missing module raises KeyError.
    """
    index, builtin = _module_index(modules_dir)
    order: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        name = _norm(name)
        if name in seen or name in builtin:
            return
        seen.add(name)
        if name not in index:
            raise KeyError(f"module {name} not in {modules_dir}")
        ko = _decompress(index[name])
        for deps in modinfo(ko).get("depends", []):
            for dep in filter(None, deps.split(",")):
                visit(dep)
        order.append((name, ko))

    for n in names:
        visit(n)
    return order


# ------------------------------------------------------------------- initramfs

def build_initramfs(kernel: Kernel, busybox: Path | None = None,
                    modules: tuple[str, ...] = REQUIRED_MODULES,
                    optional: tuple[str, ...] = OPTIONAL_MODULES) -> Path:
    """The initramfs for *kernel* (cached in the kernel's cache directory)."""
    busybox = busybox or fetch_busybox()
    bb = busybox.read_bytes()
    key = hashlib.sha256()
    for part in (INIT.encode(), kernel.release.encode(), kernel.version.encode(),
                 repr((modules, optional)).encode(), hashlib.sha256(bb).digest()):
        key.update(hashlib.sha256(part).digest())
    out = kernel.dir / f"initramfs-{key.hexdigest()[:16]}.cpio.gz"
    if out.exists():
        return out

    mods = [(n, ko, "required") for n, ko in resolve_modules(kernel.modules_dir, modules)]
    have = {n for n, _, _ in mods}
    for opt in optional:
        try:
            mods += [(n, ko, "optional") for n, ko in resolve_modules(kernel.modules_dir, (opt,))
                     if n not in have]
        except KeyError:
            pass

    c = Cpio()
    for d in ("bin", "dev", "lib", "lib/modules", "proc", "sys", "lower", "rw", "newroot", "out"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.file("bin/busybox", bb, 0o755)
    c.symlink("bin/sh", "busybox")
    c.file("init", INIT.encode(), 0o755)
    lines = []
    for name, ko, need in mods:
        c.file(f"lib/modules/{name}.ko", ko)
        lines.append(f"{name} {need}\n")
    c.file("modules", "".join(lines).encode())
    data = c.finish()

    fd, tmp = tempfile.mkstemp(prefix=".initramfs-", dir=kernel.dir)
    with os.fdopen(fd, "wb") as fh:
        co = zlib.compressobj(6, zlib.DEFLATED, 31)  # gzip wrapper, no name/mtime: deterministic
        fh.write(co.compress(data) + co.flush())
    os.replace(tmp, out)
    return out
