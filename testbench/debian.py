"""Fetch a Debian kernel and busybox-static, cached outside the repository.

Everything goes through ``apt-get`` with a *private* apt state in a temporary
directory: its own sources list, lists, cache and an empty dpkg status. The
archive URI is read from this machine's own apt sources
(``/etc/apt/sources.list.d/debian.sources``, the ``URIs:`` line of the main
archive; only the suite changes), or from ``SIGBPF_DEBIAN_MIRROR``. Release
files are checked against ``/usr/share/keyrings/debian-archive-keyring.gpg``.
The system's apt configuration is never modified.

Cache (``${SIGBPF_CACHE:-~/.cache/sigbpf}/vm/``)::

    vm/
      7.3.4+deb13-amd64_7.3.4-1~bpo13+1/      one kernel: <ABI name>_<package version>
        debs/*.deb                            what apt-get download fetched
        root/                                 dpkg -x of those debs
        kernel.json                           metadata, written last (= complete)
        initramfs-<hash>.cpio.gz              built by testbench.initramfs
      busybox-static_1%3a1.35.0-4+deb12u1+b1/
        *.deb, root/bin/busybox, package.json
      index-<suite>-<series>-<flavour>.json   when the archive was last asked

A kernel already in the cache is used without any network access. The archive
is asked again (``apt-get update``, indexes only) when that was more than
``SIGBPF_VM_REFRESH_HOURS`` (default 24) hours ago, or always with
``SIGBPF_VM_REFRESH=1`` (never with ``SIGBPF_VM_REFRESH=0``); a newer upload is
then downloaded into its own directory. If the archive cannot be reached, the
newest cached kernel is used.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
SYSTEM_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
ARCH = "amd64"


class FetchError(RuntimeError):
    """The kernel or busybox could not be had (no apt, no archive, no such package)."""


# --------------------------------------------------------------------------- cache

def cache_root() -> Path:
    base = os.environ.get("SIGBPF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "sigbpf")
    return Path(base) / "vm"


@contextlib.contextmanager
def _locked(root: Path):
    """One fetcher at a time per cache (concurrent test sessions)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def staged(dest: Path, prefix: str = ".staging-"):
    """A directory next to *dest* to fill; it becomes *dest* (replacing it) when the block
    succeeds and is removed when it fails: a cache entry is complete or absent."""
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=dest.parent))
    try:
        yield staging
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fs_version(version: str) -> str:
    """A package version as apt spells it in file names (':' -> '%3a')."""
    return version.replace(":", "%3a")


# ------------------------------------------------------------ Debian version order

def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _cmp_part(a: str, b: str) -> int:
    """dpkg's verrevcmp for an upstream version or a revision."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split_version(v: str) -> tuple[int, str, str]:
    epoch = 0
    if ":" in v:
        e, v = v.split(":", 1)
        epoch = int(e)
    upstream, _, revision = v.rpartition("-") if "-" in v else (v, "", "")
    return epoch, upstream, revision


def compare_versions(a: str, b: str) -> int:
    """<0, 0, >0 as Debian version *a* sorts before, equal to, after *b*."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return ea - eb
    return _cmp_part(ua, ub) or _cmp_part(ra, rb)


class _VersionKey:
    def __init__(self, v: str):
        self.v = v

    def __lt__(self, other: "_VersionKey") -> bool:
        return compare_versions(self.v, other.v) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _VersionKey) and compare_versions(self.v, other.v) == 0


# ------------------------------------------------------------------- private apt

def archive_uri() -> str:
    """The Debian archive URI this machine's apt already uses (never hard-coded here)."""
    env = os.environ.get("SIGBPF_DEBIAN_MIRROR")
    if env:
        return env.rstrip("/")
    deb822, oneline = SYSTEM_SOURCES
    if deb822.exists():
        for stanza in re.split(r"\n\s*\n", deb822.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
            suites = fields.get("suites", "").split()
            if "deb" in fields.get("types", "deb").split() and fields.get("uris") and suites \
                    and not any(s.endswith("-security") for s in suites):
                return fields["uris"].split()[0].rstrip("/")
    if oneline.exists():
        for line in oneline.read_text().splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 3 and parts[0] == "deb":
                rest = [p for p in parts[1:] if not p.startswith("[")]
                if len(rest) >= 2 and not rest[1].endswith("-security") and "://" in rest[0]:
                    return rest[0].rstrip("/")
    raise FetchError(f"no Debian archive URI in {deb822} or {oneline}; set SIGBPF_DEBIAN_MIRROR")


class PrivateApt:
    """apt-get with its own state, sources and cache in a temporary directory."""

    def __init__(self, suites: list[str], tmp: Path):
        if shutil.which("apt-get") is None:
            raise FetchError("apt-get is not installed")
        self.tmp = tmp
        uri = archive_uri()
        opts = f"arch={ARCH}"
        if KEYRING.exists():
            opts += f" signed-by={KEYRING}"
        else:  # pragma: no cover - every Debian has the keyring
            opts += " trusted=yes"
        for d in ("state/lists/partial", "cache/archives/partial", "etc"):
            (tmp / d).mkdir(parents=True, exist_ok=True)
        (tmp / "state" / "status").write_text("")
        self.sources = tmp / "etc" / "sources.list"
        self.sources.write_text("".join(f"deb [{opts}] {uri} {s} main\n" for s in suites))
        self.options = [
            "-o", f"Dir::State={tmp / 'state'}",
            "-o", f"Dir::State::status={tmp / 'state' / 'status'}",
            "-o", f"Dir::Etc::SourceList={self.sources}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", "Dir::Etc::Preferences=/dev/null",
            "-o", "Dir::Etc::PreferencesParts=/dev/null",
            "-o", f"Dir::Cache={tmp / 'cache'}",
            "-o", "Acquire::Languages=none",
            "-o", "Acquire::PDiffs=false",
            "-o", "Debug::NoLocking=1",
        ]
        if os.geteuid() == 0:  # the private dirs are not readable by _apt
            self.options += ["-o", "APT::Sandbox::User=root"]

    def _run(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(["apt-get", "-q", *self.options, *args], cwd=cwd,
                              capture_output=True, text=True,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"})
        if proc.returncode != 0 or re.search(r"^(E:|W: GPG error|W: Failed to fetch)", proc.stderr, re.M):
            raise FetchError(f"apt-get {args[0]} failed ({proc.returncode}): "
                             + (proc.stderr.strip() or proc.stdout.strip())[-2000:])
        return proc.stdout

    def update(self) -> None:
        self._run("update")

    def packages(self) -> dict[str, list[str]]:
        """Package name -> versions in the private indexes (``apt-cache dumpavail``)."""
        proc = subprocess.run(["apt-cache", *self.options, "dumpavail"], capture_output=True,
                              text=True, errors="replace", env={**os.environ, "LC_ALL": "C"})
        if proc.returncode != 0:
            raise FetchError(f"apt-cache dumpavail failed: {proc.stderr.strip()[-2000:]}")
        out: dict[str, list[str]] = {}
        name = None
        for line in proc.stdout.splitlines():
            if line.startswith("Package: "):
                name = line[9:].strip()
            elif line.startswith("Version: ") and name is not None:
                out.setdefault(name, []).append(line[9:].strip())
            elif not line:
                name = None
        return out

    def download(self, specs: list[str], dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        before = set(dest.glob("*.deb"))
        self._run("download", *specs, cwd=dest)
        return sorted(set(dest.glob("*.deb")) - before)


@contextlib.contextmanager
def updated_archive(suite: str):
    """A :class:`PrivateApt` for *suite* with fresh indexes, in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="sigbpf-apt-") as tmp:
        apt = PrivateApt([suite], Path(tmp))
        apt.update()
        yield apt


def should_ask(cached: list, stamp: Path, refresh: bool | None) -> bool:
    """Ask the archive? Always with nothing cached; else *refresh*, or the 24 h rule."""
    return not cached or (refresh if refresh is not None else _want_refresh(stamp))


def _dpkg_x(deb: Path, root: Path) -> None:
    tool = shutil.which("dpkg-deb") or shutil.which("dpkg")
    if tool is None:
        raise FetchError("dpkg is not installed (needed to extract .deb files)")
    subprocess.run([tool, "-x", str(deb), str(root)], check=True, capture_output=True)


# ------------------------------------------------------------------------ kernel

@dataclass
class Kernel:
    """A Debian kernel in the cache."""

    release: str            # uname -r, e.g. 7.3.4+deb13-amd64
    version: str            # package version, e.g. 7.3.4-1~bpo13+1
    suite: str
    packages: list[str]     # name=version of what was downloaded
    dir: Path               # the cache directory
    vmlinuz: Path
    modules_dir: Path       # .../lib/modules/<release>
    config: Path | None
    downloaded: list[str] = field(default_factory=list)  # .debs fetched by *this* call
    index_updated: bool = False                          # apt-get update ran in this call

    def config_value(self, name: str) -> str | None:
        """``y``/``m``/a value for CONFIG_<name>, or None (not set / no config)."""
        if self.config is None:
            return None
        m = re.search(rf"^CONFIG_{re.escape(name)}=(.*)$", self.config.read_text(), re.M)
        return m.group(1).strip('"') if m else None


def _abi_pattern(series: str, flavour: str) -> str:
    return rf"{re.escape(series)}\.\d+[^-]*-{re.escape(flavour)}"


def _kernel_from_dir(d: Path) -> Kernel | None:
    meta_path = d / "kernel.json"
    if not meta_path.exists():
        return None
    meta = json.loads(meta_path.read_text())
    k = Kernel(release=meta["release"], version=meta["version"], suite=meta["suite"],
               packages=meta["packages"], dir=d, vmlinuz=d / meta["vmlinuz"],
               modules_dir=d / meta["modules_dir"],
               config=(d / meta["config"]) if meta.get("config") else None)
    if not k.vmlinuz.exists() or not k.modules_dir.is_dir():
        return None
    return k


def cached_kernels(series: str = "7.3", flavour: str = "amd64") -> list[Kernel]:
    """Complete kernels of *series* in the cache, newest first."""
    root = cache_root()
    found = []
    if root.is_dir():
        pat = re.compile(_abi_pattern(series, flavour) + "_")
        for d in root.iterdir():
            if d.is_dir() and pat.fullmatch(d.name[: d.name.find("_") + 1]):
                k = _kernel_from_dir(d)
                if k is not None:
                    found.append(k)
    found.sort(key=lambda k: _VersionKey(k.version), reverse=True)
    return found


def _choose(avail: dict[str, list[str]], series: str, flavour: str) -> tuple[str, str, str, list[str]]:
    """(release, version, image package, [all packages]) of the newest *series* kernel."""
    abi = _abi_pattern(series, flavour)
    # Newer Debian (2025+): linux-binary-<abi> holds vmlinuz, linux-modules-<abi> the modules.
    # Older: linux-image-<abi>-unsigned or linux-image-<abi> hold both.
    for image_re in (rf"linux-binary-({abi})", rf"linux-image-({abi})-unsigned", rf"linux-image-({abi})"):
        cands = []
        for name, versions in avail.items():
            m = re.fullmatch(image_re, name)
            if m:
                for v in versions:
                    cands.append((v, m.group(1), name))
        if not cands:
            continue
        # Newest package version; ties (several ABIs in one upload) broken by the ABI name.
        cands.sort(key=lambda c: (_VersionKey(c[0]), _VersionKey(c[1])))
        version, release, image = cands[-1]
        pkgs = [image]
        for extra in (f"linux-modules-{release}", f"linux-base-{release}"):
            if version in avail.get(extra, []):
                pkgs.append(extra)
        return release, version, image, pkgs
    raise FetchError(f"no linux-binary-{series}*-{flavour} (nor linux-image-…) in the index")


def _index_stamp(suite: str, series: str, flavour: str) -> Path:
    return cache_root() / f"index-{suite}-{series}-{flavour}.json"


def _want_refresh(stamp: Path) -> bool:
    mode = os.environ.get("SIGBPF_VM_REFRESH", "")
    if mode == "1":
        return True
    if mode == "0":
        return False
    hours = float(os.environ.get("SIGBPF_VM_REFRESH_HOURS", "24"))
    try:
        return time.time() - json.loads(stamp.read_text())["checked"] > hours * 3600
    except (OSError, ValueError, KeyError):
        return True


def fetch_kernel(series: str = "7.3", flavour: str = "amd64", suite: str = "trixie-backports",
                 refresh: bool | None = None) -> Kernel:
    """The newest Debian *series* kernel (vmlinuz, modules, config), from the cache or apt.

    *refresh*: None follows ``SIGBPF_VM_REFRESH``/the 24 h rule; True always
    asks the archive; False never does when a kernel is cached.
    """
    root = cache_root()
    with _locked(root):
        cached = cached_kernels(series, flavour)
        stamp = _index_stamp(suite, series, flavour)
        if not should_ask(cached, stamp, refresh):
            return cached[0]
        try:
            with updated_archive(suite) as apt:
                release, version, image, pkgs = _choose(apt.packages(), series, flavour)
                stamp.write_text(json.dumps({"checked": time.time(), "release": release,
                                             "version": version}))
                dest = root / f"{release}_{_fs_version(version)}"
                k = _kernel_from_dir(dest)
                if k is not None:
                    k.index_updated = True
                    return k
                with staged(dest) as staging:
                    debs = apt.download([f"{p}={version}" for p in pkgs], staging / "debs")
                    for deb in debs:
                        _dpkg_x(deb, staging / "root")
                    _describe(staging, release, version, suite, [f"{p}={version}" for p in pkgs])
        except FetchError:
            if cached:  # offline: the newest kernel we have
                return cached[0]
            raise
        k = _kernel_from_dir(dest)
        assert k is not None
        k.downloaded = [d.name for d in debs]
        k.index_updated = True
        return k


def _describe(d: Path, release: str, version: str, suite: str, packages: list[str]) -> Kernel:
    root = d / "root"
    mod_candidates = [root / "usr/lib/modules" / release, root / "lib/modules" / release]
    modules_dir = next((m for m in mod_candidates if (m / "kernel").is_dir()), None)
    vmlinuz = next((p for p in (root / f"usr/lib/modules/{release}/vmlinuz",
                                root / f"boot/vmlinuz-{release}",
                                root / f"lib/modules/{release}/vmlinuz") if p.exists()), None)
    config = next((p for p in (root / f"usr/lib/modules/{release}/config",
                               root / f"boot/config-{release}") if p.exists()), None)
    if vmlinuz is None or modules_dir is None:
        raise FetchError(f"{packages}: no vmlinuz or no modules for {release} in the packages")
    meta = {"release": release, "version": version, "suite": suite, "packages": packages,
            "vmlinuz": str(vmlinuz.relative_to(d)), "modules_dir": str(modules_dir.relative_to(d)),
            "config": str(config.relative_to(d)) if config else None, "fetched": time.time()}
    (d / "kernel.json").write_text(json.dumps(meta, indent=1) + "\n")
    k = _kernel_from_dir(d)
    assert k is not None
    return k


# ----------------------------------------------------------------------- busybox

def fetch_busybox(suite: str = "bookworm") -> Path:
    """A static busybox binary (Debian's busybox-static), from the cache or apt."""
    root = cache_root()
    with _locked(root):
        have = []
        if root.is_dir():
            for d in root.glob("busybox-static_*"):
                meta = d / "package.json"
                if meta.exists() and (d / "root/bin/busybox").exists():
                    have.append((json.loads(meta.read_text())["version"], d))
        if have:
            have.sort(key=lambda t: _VersionKey(t[0]))
            return have[-1][1] / "root/bin/busybox"
        with updated_archive(suite) as apt:
            versions = apt.packages().get("busybox-static")
            if not versions:
                raise FetchError(f"no busybox-static in {suite}")
            version = max(versions, key=_VersionKey)
            dest = root / f"busybox-static_{_fs_version(version)}"
            with staged(dest) as staging:
                (deb,) = apt.download([f"busybox-static={version}"], staging)
                _dpkg_x(deb, staging / "root")
                if not (staging / "root/bin/busybox").exists():
                    raise FetchError(f"{deb.name}: no bin/busybox")
                (staging / "package.json").write_text(json.dumps({"version": version}) + "\n")
        return dest / "root/bin/busybox"
