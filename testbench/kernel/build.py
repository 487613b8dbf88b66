"""Build (or reuse) sigbpf's seed test kernel: Debian's linux-source-7.3 plus the PROG_BTF patch.

The recipe, in order:

1. ``linux-source-7.3`` (the newest upload in ``trixie-backports``), fetched
   with the bench's private apt state (:class:`testbench.debian.PrivateApt`)
   and cached as its ``.tar.xz``; the archive is asked again under the same
   rule as the VM kernels (``SIGBPF_VM_REFRESH``, 24 h), and offline the
   newest cached source is used.
2. the tarball unpacked in a staging directory, the patch
   ``0001-bpf-resolve-loader-style-kfunc-CALLs-against-prog-BTF.patch``
   applied with ``patch -p1``;
3. ``make tinyconfig``, the config fragments of the flavour merged in
   (``scripts/kconfig/merge_config.sh``), ``make olddefconfig``, and every
   line of the fragments checked against the final ``.config`` (a symbol
   that Kconfig silently dropped is an error, not a surprise at boot);
   ``@TRUSTED_KEYS@`` becomes the TEST certificate
   ``tests/data/keys/seed-test.cert.pem`` (``CONFIG_SYSTEM_TRUSTED_KEYS``);
4. ``nice make -j2 bzImage``, progress printed as it goes;
5. kept: ``bzImage``, ``.config``, ``System.map``, the raw vmlinux BTF
   (``vmlinux.btf``, the bytes the guest shows as /sys/kernel/btf/vmlinux),
   ``modules.builtin`` (the bench's initramfs reads it to know 9p and
   overlay are built in, so it packs no module), ``build.log``; then
   ``kernel.json``, written last (= complete). The source and object trees
   (~2 GB) are deleted.

Cache: ``${SIGBPF_CACHE:-~/.cache/sigbpf}/vm/seed-<flavour>-<key>/``, *key* a
hash of the source package version, the patch's diff (not its message), the
flavour's fragments, the certificate and :data:`RECIPE`, so a change to any of
them builds anew and nothing else does. Flavours: :data:`FLAVOURS`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO

from testbench.debian import (
    FetchError,
    Kernel,
    _dpkg_x,
    _fs_version,
    _index_stamp,
    _kernel_from_dir,
    _locked,
    _VersionKey,
    cache_root,
    should_ask,
    staged,
    updated_archive,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PATCH = HERE / "0001-bpf-resolve-loader-style-kfunc-CALLs-against-prog-BTF.patch"
CONFIG_DIR = HERE / "config"
#: The TEST-ONLY certificate built into the kernel's builtin keyring (keyring_id 0).
TEST_CERT = REPO / "tests" / "data" / "keys" / "seed-test.cert.pem"
#: Its private key (TEST ONLY: it is public, in the repository).
TEST_KEY = REPO / "tests" / "data" / "keys" / "seed-test.key.pem"
SERIES = "7.3"
SUITE = "trixie-backports"
#: Flavour -> config fragments merged over tinyconfig, in order.
FLAVOURS: dict[str, tuple[str, ...]] = {
    "small": ("small.config",),
    "extra": ("small.config", "extra.config"),
}
#: Bumped when the recipe below changes in a way the hashed inputs do not show.
RECIPE = "seed-kernel-1"
#: Where the fragments name the certificate (filled in at build time, hashed as written).
PLACEHOLDER = "@TRUSTED_KEYS@"


class BuildError(RuntimeError):
    """The seed kernel could not be built (tools missing, patch or config refused, make failed)."""


@dataclass
class SeedKernel(Kernel):
    """A built seed kernel: a :class:`testbench.debian.Kernel` plus what the build kept."""

    flavour: str = "small"
    btf: Path | None = None           # raw vmlinux BTF (= the guest's /sys/kernel/btf/vmlinux)
    system_map: Path | None = None
    build_seconds: float | None = None


# ------------------------------------------------------------------- the source

@dataclass(frozen=True)
class Source:
    """A cached ``linux-source-<series>`` upload: its version and tarball."""

    version: str
    tarball: Path


def _source_dirs(series: str) -> list[Source]:
    root = cache_root()
    found = []
    for d in root.glob(f"linux-source-{series}_*") if root.is_dir() else ():
        meta = d / "source.json"
        if meta.exists():
            info = json.loads(meta.read_text())
            tarball = d / info["tarball"]
            if tarball.exists():
                found.append(Source(info["version"], tarball))
    found.sort(key=lambda s: _VersionKey(s.version), reverse=True)
    return found


def fetch_source(series: str = SERIES, suite: str = SUITE, refresh: bool | None = None) -> Source:
    """The newest ``linux-source-<series>`` tarball, from the cache or the archive."""
    root = cache_root()
    package = f"linux-source-{series}"
    with _locked(root):
        cached = _source_dirs(series)
        stamp = _index_stamp(suite, f"source-{series}", "all")
        if not should_ask(cached, stamp, refresh):
            return cached[0]
        try:
            with updated_archive(suite) as apt:
                versions = apt.packages().get(package)
                if not versions:
                    raise FetchError(f"no {package} in {suite}")
                version = max(versions, key=_VersionKey)
                stamp.write_text(json.dumps({"checked": time.time(), "version": version}))
                have = [s for s in cached if s.version == version]
                if have:
                    return have[0]
                dest = root / f"{package}_{_fs_version(version)}"
                with staged(dest) as staging:
                    (deb,) = apt.download([f"{package}={version}"], staging / "debs")
                    _dpkg_x(deb, staging / "root")
                    tarballs = list((staging / "root").glob(f"usr/src/{package}.tar.*"))
                    if len(tarballs) != 1:
                        raise FetchError(f"{deb.name}: no usr/src/{package}.tar.* inside")
                    tarball = tarballs[0].rename(staging / tarballs[0].name)
                    shutil.rmtree(staging / "root")
                    shutil.rmtree(staging / "debs")
                    (staging / "source.json").write_text(json.dumps(
                        {"package": package, "version": version, "tarball": tarball.name}) + "\n")
                return Source(version, dest / tarball.name)
        except FetchError:
            if cached:
                return cached[0]
            raise


# ------------------------------------------------------------------- the config

def fragment_text(flavour: str, cert: Path = TEST_CERT) -> str:
    """The flavour's fragments, concatenated, with the certificate's path filled in."""
    if flavour not in FLAVOURS:
        raise BuildError(f"unknown seed kernel flavour {flavour!r} (known: {', '.join(FLAVOURS)})")
    text = "".join((CONFIG_DIR / name).read_text() for name in FLAVOURS[flavour])
    return text.replace(PLACEHOLDER, str(cert))


def fragment_settings(text: str) -> dict[str, str | None]:
    """``CONFIG_X`` -> its value (None for ``# CONFIG_X is not set``), later lines winning."""
    out: dict[str, str | None] = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(CONFIG_\w+)=(.*)", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
            continue
        m = re.fullmatch(r"# (CONFIG_\w+) is not set", line.strip())
        if m:
            out[m.group(1)] = None
    return out


def config_mismatches(fragment: str, config: str) -> list[str]:
    """Fragment settings the final ``.config`` does not carry (Kconfig dropped them)."""
    final = fragment_settings(config)
    return [f"{name}: wanted {want if want is not None else 'unset'}, "
            f"got {final.get(name) if final.get(name) is not None else 'unset'}"
            for name, want in fragment_settings(fragment).items() if final.get(name) != want]


def patch_diff(text: str) -> str:
    """The part of a patch that changes the kernel: from its first ``--- a/`` line on
    (the message above it is documentation; editing it does not rebuild)."""
    start = text.find("\n--- a/")
    if start < 0:
        raise BuildError(f"{PATCH.name}: no '--- a/' line: not a patch")
    return text[start + 1:]


def cache_key(source_version: str, flavour: str, cert: Path = TEST_CERT) -> str:
    """The cache key of a build: source version, the patch's diff, fragments, certificate, recipe."""
    h = hashlib.sha256()
    for part in (RECIPE.encode(), source_version.encode(), flavour.encode(),
                 patch_diff(PATCH.read_text()).encode(),
                 fragment_text(flavour, Path(PLACEHOLDER)).encode(), cert.read_bytes()):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------- the cache

def _seed_from_dir(d: Path) -> SeedKernel | None:
    """The complete build in *d*: the bench's kernel entry plus what only a build has."""
    base = _kernel_from_dir(d)
    if base is None:
        return None
    meta = json.loads((d / "kernel.json").read_text())
    return SeedKernel(**{f.name: getattr(base, f.name) for f in fields(Kernel)},
                      flavour=meta["flavour"], btf=d / meta["btf"],
                      system_map=d / meta["system_map"], build_seconds=meta.get("build_seconds"))


def cached_seed_kernels(flavour: str) -> list[SeedKernel]:
    """Complete seed kernels of *flavour* in the cache, newest source first."""
    root = cache_root()
    found = [k for d in (root.glob(f"seed-{flavour}-*") if root.is_dir() else ())
             if d.is_dir() and (k := _seed_from_dir(d)) is not None]
    found.sort(key=lambda k: _VersionKey(k.version), reverse=True)
    return found


# ---------------------------------------------------------------------- the build

def _tools_missing() -> list[str]:
    need = ("make", "gcc", "flex", "bison", "bc", "pahole", "patch", "objcopy", "perl", "tar", "xz")
    return [t for t in need if shutil.which(t) is None]


class _Progress:
    """Prints a line per build stage and every *every* compiled files."""

    def __init__(self, flavour: str, out: IO[str] | None, every: int = 100):
        self.flavour, self.out, self.every = flavour, out, every
        self.t0 = time.monotonic()
        self.files = 0

    def say(self, text: str) -> None:
        if self.out is not None:
            m, s = divmod(int(time.monotonic() - self.t0), 60)
            self.out.write(f"[seed kernel {self.flavour} {m}:{s:02d}] {text}\n")
            self.out.flush()

    def line(self, line: str) -> None:
        if re.match(r"\s+(CC|AS)\s", line):
            self.files += 1
            if self.files % self.every == 0:
                self.say(f"{self.files} files compiled")
        elif re.match(r"\s+(LD|BTF|BTFIDS|KSYMS|OBJCOPY)\s+(vmlinux|\.tmp_vmlinux|arch/x86/boot/bzImage)",
                      line):
            self.say(line.strip())


def _run(cmd: list[str], cwd: Path, log: IO[str], progress: _Progress | None = None,
         env: dict[str, str] | None = None) -> None:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", env={**os.environ, "LC_ALL": "C", **(env or {})})
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        log.write(line)
        tail = (tail + [line])[-30:]
        if progress is not None:
            progress.line(line)
    if proc.wait() != 0:
        raise BuildError(f"{' '.join(cmd[:4])} … failed ({proc.returncode}):\n{''.join(tail)}")


def build(flavour: str, source: Source, dest: Path, *, jobs: int = 2,
          progress: IO[str] | None = sys.stderr, cert: Path = TEST_CERT) -> SeedKernel:
    """Build the *flavour* kernel from *source* into *dest* (replaced when the build succeeds)."""
    missing = _tools_missing()
    if missing:
        raise BuildError(f"cannot build the seed kernel: {', '.join(missing)} not installed "
                         "(scripts/deps.sh installs them)")
    p = _Progress(flavour, progress)
    fragment = fragment_text(flavour, cert)
    t0 = time.monotonic()
    with staged(dest, prefix=f".staging-seed-{flavour}-") as staging:
        with open(staging / "build.log", "w") as log:
            p.say(f"building linux-source-{SERIES} {source.version} + PROG_BTF patch "
                  f"(make -j{jobs}; ~8 min on 2 quiet cores) in {staging}")
            _run(["tar", "-xf", str(source.tarball), "-C", str(staging)], staging, log)
            (src,) = [d for d in staging.iterdir() if d.is_dir() and d.name.startswith("linux-source")]
            _run(["patch", "-p1", "--forward", "-i", str(PATCH)], src, log)
            obj = staging / "obj"
            obj.mkdir()
            make = ["nice", "make", "-C", str(src), f"O={obj}", "ARCH=x86_64"]
            _run([*make, "tinyconfig"], src, log)
            (staging / "fragment.config").write_text(fragment)
            _run([str(src / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(obj),
                  str(obj / ".config"), str(staging / "fragment.config")], src, log)
            _run([*make, "olddefconfig"], src, log)
            bad = config_mismatches(fragment, (obj / ".config").read_text())
            if bad:
                raise BuildError(f"Kconfig did not take the {flavour} fragment: " + "; ".join(bad))
            p.say("configured; compiling (about 1,400 steps)")
            _run([*make, f"-j{jobs}", "bzImage"], src, log, p)
            release = (obj / "include/config/kernel.release").read_text().strip()
            mods = staging / "modules" / release
            (mods / "kernel").mkdir(parents=True)
            builtin = obj / "modules.builtin"
            (mods / "modules.builtin").write_bytes(builtin.read_bytes() if builtin.exists() else b"")
            shutil.copy(obj / "arch/x86/boot/bzImage", staging / "bzImage")
            shutil.copy(obj / ".config", staging / "config")
            shutil.copy(obj / "System.map", staging / "System.map")
            _run(["objcopy", "-O", "binary", "--only-section=.BTF", str(obj / "vmlinux"),
                  str(staging / "vmlinux.btf")], staging, log)
        shutil.rmtree(src)
        shutil.rmtree(obj)
        seconds = time.monotonic() - t0
        meta = {"release": release, "version": f"{source.version}+seed.{dest.name.rsplit('-', 1)[-1]}",
                "suite": SUITE, "packages": [f"linux-source-{SERIES}={source.version}"],
                "vmlinuz": "bzImage", "modules_dir": f"modules/{release}", "config": "config",
                "flavour": flavour, "btf": "vmlinux.btf", "system_map": "System.map",
                "build_seconds": round(seconds, 1), "built": time.time(),
                "patch_sha256": hashlib.sha256(PATCH.read_bytes()).hexdigest()}
        (staging / "kernel.json").write_text(json.dumps(meta, indent=1) + "\n")
    p.say(f"done: {release}, {seconds / 60:.1f} min, cached in {dest}")
    k = _seed_from_dir(dest)
    assert k is not None
    return k


_RESOLVED: dict[str, SeedKernel] = {}


def seed_flavour(name: str) -> str | None:
    """The flavour a bench kernel name means: "seed" -> "small", "seed-extra" -> "extra", else None."""
    if name == "seed":
        return "small"
    if name.startswith("seed-") and name[5:] in FLAVOURS:
        return name[5:]
    return None


def seed_kernel(config: str = "small", *, refresh: bool | None = None,
                progress: IO[str] | None = sys.stderr) -> SeedKernel:
    """The patched test kernel of flavour *config* ("small" or "extra"), built when not cached.

    Resolved once per process (every VM of a session boots the same kernel).
    Offline, with no source cached, the newest cached build of the flavour is used.
    """
    if config in _RESOLVED and refresh is None:
        return _RESOLVED[config]
    if config not in FLAVOURS:
        raise BuildError(f"unknown seed kernel flavour {config!r} (known: {', '.join(FLAVOURS)})")
    try:
        source = fetch_source(refresh=refresh)
    except FetchError:
        cached = cached_seed_kernels(config)
        if not cached:
            raise
        _RESOLVED[config] = cached[0]
        return cached[0]
    root = cache_root()
    dest = root / f"seed-{config}-{cache_key(source.version, config)}"
    with _locked(root / f".seed-{config}"):   # one builder per flavour; other fetches go on
        k = _seed_from_dir(dest)
        if k is None:
            if dest.exists():
                shutil.rmtree(dest)
            jobs = int(os.environ.get("SIGBPF_SEED_JOBS", "2"))
            k = build(config, source, dest, jobs=jobs, progress=progress)
    _RESOLVED[config] = k
    return k
