#!/usr/bin/env python3
"""Build a corpus of real BPF objects that nobody in this project wrote.

Two sources, both from Debian's archive (run as root on Debian 12):

* **selftests**: ``tools/testing/selftests/bpf/progs/*.c`` from the newest
  ``linux-source-6.12`` that apt offers, compiled with clang-19 as the
  selftests Makefile does (``-target bpf -g -O2 -mcpu=v3
  -D__TARGET_ARCH_x86``, its include paths, its per-file CFLAGS) against the
  running kernel's ``vmlinux.h`` (``bpftool btf dump ... format c``).
* **debian**: the BPF ELF objects (``e_machine`` 247) that Debian packages
  ship, as files or embedded in binaries (libbpf skeletons), found by
  scanning the unpacked packages (``apt-get download`` + ``dpkg -x``; nothing
  is installed).  Debian's ``libbpf-tools`` is deliberately never used (it is
  kept back for acceptance testing).

Only objects that libbpf can open (``bpf_object__open_file`` through ctypes
on Debian's libbpf1) are kept; the others, and the sources that do not
compile, are recorded with a one-line reason.

The corpus lives outside the repository, in
``$SIGBPF_CACHE/corpus/<key>`` (default ``~/.cache/sigbpf/corpus/<key>``),
key = the source package's version and a hash of the compile settings (and of
the running kernel's BTF, which vmlinux.h comes from).  A second run reuses
it; ``--only`` builds part of it (the rest can follow later).

Usage::

    build_corpus.py [--only NAME,...] [--jobs N] [--print-dir] [--force]

It writes ``manifest.json`` in the corpus directory: ``objects`` (name, path
relative to the directory, origin, sha256) and ``skipped`` (name, stage,
reason).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import ctypes
import fcntl
import fnmatch
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE_PACKAGE = "linux-source-6.12"
CLANG = "clang-19"
BPFTOOL = shutil.which("bpftool") or "/usr/sbin/bpftool"
VMLINUX = Path("/sys/kernel/btf/vmlinux")
SELFTESTS = "tools/testing/selftests/bpf"

#: What is taken out of the kernel tarball (GNU tar wildcards; '*' matches '/').
EXTRACT = (
    f"*/{SELFTESTS}/progs/*",
    f"*/{SELFTESTS}/*.h",
    f"*/{SELFTESTS}/bpf_testmod/*",
    f"*/{SELFTESTS}/Makefile",
    "*/tools/lib/bpf/*.h",
    "*/tools/include/*",
    "*/scripts/bpf_doc.py",
)

#: The selftests Makefile's BPF_CFLAGS / CLANG_BPF_BUILD_RULE for x86_64, minus
#: -Wall -Werror (newer-kernel warnings are not what we measure).
CFLAGS = (
    "-g", "-O2", "-target", "bpf", "-mcpu=v3", "-mlittle-endian",
    "-D__TARGET_ARCH_x86", "-DENABLE_ATOMICS_TESTS",
    "-Wno-compare-distinct-pointer-types",
)
#: Its include paths, in its order: INCLUDE_DIR (vmlinux.h), the selftests dir,
#: APIDIR; libbpf's headers come from tools/lib (bpf/bpf_helpers.h of the 6.12
#: tree, not Debian's older libbpf-dev).
INCLUDES = ("{include}", "{src}/" + SELFTESTS + "/progs", "{src}/" + SELFTESTS,
            "{src}/tools/lib", "{src}/tools/include/uapi")

#: Debian packages that ship BPF objects (as files or embedded in binaries).
#: Never libbpf-tools.
DEBIAN_PACKAGES = (
    "libxdp1",                        # /usr/lib/*/bpf/*.o: xdp-dispatcher, xdp-filter, xsk
    "xdp-tools",                      # skeletons inside xdp-bench, xdp-monitor, ...
    "xdp-tests",                      # /usr/libexec/xdp-tools/*.o
    "libxdp-dev",                     # libxdp.a (embedded)
    "libknot13",                      # Knot DNS's XDP program (embedded)
    "qemu-system-x86",                # virtio-net RSS program (embedded skeleton)
    "golang-github-cilium-ebpf-dev",  # cilium/ebpf's testdata *-el.elf
)
FORBIDDEN_PACKAGES = frozenset({"libbpf-tools"})

#: Bumped whenever what this script produces changes.
SCRIPT_VERSION = 1
EM_BPF = 247


def log(msg: str) -> None:
    print(f"corpus: {msg}", flush=True)


# --------------------------------------------------------------------------- apt

def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def apt_candidate(package: str) -> str | None:
    out = _run(["apt-cache", "policy", package]).stdout
    m = re.search(r"Candidate:\s*(\S+)", out)
    if not m or m.group(1) == "(none)":
        return None
    return m.group(1)


def newest_version(package: str) -> str:
    """The newest version apt offers (apt-get update once when apt knows nothing)."""
    version = apt_candidate(package)
    if version is None:
        log("apt-cache knows no candidate: apt-get update")
        _run(["apt-get", "update", "-qq"], check=False)
        version = apt_candidate(package)
    if version is None:
        raise SystemExit(f"corpus: error: apt offers no {package} (is bookworm-security in apt's sources?)")
    return version


def apt_download(packages: list[str], dest: Path) -> dict[str, Path]:
    """apt-get download into *dest*: {package: .deb path}."""
    for p in packages:
        if p in FORBIDDEN_PACKAGES:
            raise SystemExit(f"corpus: error: {p} must not be used (kept back for acceptance testing)")
    os.chmod(dest, 0o777)  # so apt's sandbox user may write there
    proc = _run(["apt-get", "download", *packages], cwd=dest)
    if proc.returncode != 0:
        # One missing package must not cost the others: retry one by one.
        for p in packages:
            _run(["apt-get", "download", p], cwd=dest)
    debs = {}
    for deb in dest.glob("*.deb"):
        debs[deb.name.split("_", 1)[0]] = deb
    return debs


# --------------------------------------------------------------------------- key

def clang_version() -> str:
    try:
        return _run([CLANG, "--version"]).stdout.splitlines()[0]
    except (OSError, IndexError):
        raise SystemExit(f"corpus: error: {CLANG} not found (scripts/deps.sh installs it)")


def settings(version: str) -> dict:
    btf = hashlib.sha256(VMLINUX.read_bytes()).hexdigest() if VMLINUX.exists() else "none"
    return {
        "script": SCRIPT_VERSION,
        "package": SOURCE_PACKAGE,
        "version": version,
        "clang": clang_version(),
        "cflags": list(CFLAGS),
        "includes": list(INCLUDES),
        "sys_includes": sys_includes(),
        "vmlinux_btf_sha256": btf,
        "debian_packages": list(DEBIAN_PACKAGES),
    }


def corpus_key(version: str) -> str:
    h = hashlib.sha256(json.dumps(settings(version), sort_keys=True).encode()).hexdigest()[:12]
    return f"{version}-{h}"


def cache_root() -> Path:
    env = os.environ.get("SIGBPF_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "sigbpf"
    return root / "corpus"


def corpus_dir(version: str | None = None) -> Path:
    return cache_root() / corpus_key(version or newest_version(SOURCE_PACKAGE))


_SYS_INCLUDES: list[str] | None = None


def sys_includes() -> list[str]:
    """clang's default host include dirs, as -idirafter (the Makefile's get_sys_includes)."""
    global _SYS_INCLUDES
    if _SYS_INCLUDES is None:
        err = _run([CLANG, "-v", "-E", "-"], input="").stderr
        dirs, on = [], False
        for line in err.splitlines():
            if "<...> search starts here" in line:
                on = True
            elif line.startswith("End of search list"):
                on = False
            elif on and line.startswith(" /"):
                dirs += ["-idirafter", line.strip()]
        _SYS_INCLUDES = dirs
    return _SYS_INCLUDES


# --------------------------------------------------------------------------- sources

def fetch_source(cdir: Path, version: str) -> Path:
    """The needed part of the kernel tree, unpacked once into cdir/src."""
    src = cdir / "src"
    tree = src / SOURCE_PACKAGE
    if (src / ".complete").exists():
        return tree
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="sigbpf-corpus-") as tmp:
        log(f"apt-get download {SOURCE_PACKAGE}={version}")
        t0 = time.monotonic()
        tmpd = Path(tmp)
        os.chmod(tmpd, 0o777)
        proc = _run(["apt-get", "download", f"{SOURCE_PACKAGE}={version}"], cwd=tmpd)
        debs = list(tmpd.glob("*.deb"))
        if not debs:
            raise SystemExit(f"corpus: error: apt-get download {SOURCE_PACKAGE}: "
                             f"{proc.stderr.strip().splitlines()[-1:]}")
        log(f"extracting {', '.join(p.split('/', 1)[1] for p in EXTRACT)} "
            f"({time.monotonic() - t0:.1f}s so far)")
        # deb -> data tar -> the kernel tarball -> only what is needed, streamed.
        script = (f"dpkg-deb --fsys-tarfile {shlex.quote(str(debs[0]))} "
                  f"| tar -xOf - ./usr/src/{SOURCE_PACKAGE}.tar.xz "
                  f"| tar -xJf - -C {shlex.quote(str(src))} --wildcards "
                  + " ".join(shlex.quote(p) for p in EXTRACT))
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True)
        if proc.returncode != 0 or not tree.is_dir():
            raise SystemExit(f"corpus: error: extracting the kernel tarball: {proc.stderr.strip()[-500:]}")
    # bpf_helper_defs.h is generated (tools/lib/bpf/Makefile does it the same way).
    defs = _run([sys.executable, str(tree / "scripts/bpf_doc.py"), "--header",
                 "--file", str(tree / "tools/include/uapi/linux/bpf.h")])
    if defs.returncode != 0:
        raise SystemExit(f"corpus: error: bpf_doc.py: {defs.stderr.strip()[-300:]}")
    (tree / "tools/lib/bpf/bpf_helper_defs.h").write_text(defs.stdout)
    (src / ".complete").write_text(version + "\n")
    log(f"kernel sources ready ({time.monotonic() - t0:.1f}s)")
    return tree


def vmlinux_h(cdir: Path) -> Path:
    inc = cdir / "include"
    out = inc / "vmlinux.h"
    if not out.exists():
        inc.mkdir(parents=True, exist_ok=True)
        proc = _run([BPFTOOL, "btf", "dump", "file", str(VMLINUX), "format", "c"])
        if proc.returncode != 0:
            raise SystemExit(f"corpus: error: bpftool btf dump: {proc.stderr.strip()}")
        tmp = out.with_suffix(".tmp")
        tmp.write_text(proc.stdout)
        tmp.rename(out)
    return out


def per_file_cflags(tree: Path) -> dict[str, list[str]]:
    """The Makefile's ``progs/X.c-CFLAGS := ...`` lines."""
    flags: dict[str, list[str]] = {}
    for line in (tree / SELFTESTS / "Makefile").read_text().splitlines():
        m = re.match(r"progs/(\S+)\.c-CFLAGS\s*[:+]?=\s*(.*)$", line)
        if m:
            flags.setdefault(m.group(1), []).extend(m.group(2).split())
    return flags


def selftest_names(tree: Path) -> list[str]:
    return sorted(p.stem for p in (tree / SELFTESTS / "progs").glob("*.c"))


# --------------------------------------------------------------------------- compile

def _first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        if "error:" in line:
            return re.sub(r"^.*?/progs/", "", line.strip())
    lines = [l for l in stderr.splitlines() if l.strip()]
    return lines[-1].strip() if lines else "no output"


def compile_one(name: str, tree: Path, cdir: Path, extra: list[str]) -> tuple[str, bool, str, float]:
    out_dir = cdir / "selftests"
    obj = out_dir / f"{name}.bpf.o"
    fail = out_dir / f"{name}.fail"
    if obj.exists():
        return name, True, "cached", 0.0
    if fail.exists():
        return name, False, fail.read_text().strip(), 0.0
    inc = [f"-I{d.format(include=cdir / 'include', src=tree)}" for d in INCLUDES]
    tmp = out_dir / f".{name}.{os.getpid()}.o"
    cmd = [CLANG, *CFLAGS, *extra, *inc, *sys_includes(),
           "-c", str(tree / SELFTESTS / "progs" / f"{name}.c"), "-o", str(tmp)]
    t0 = time.monotonic()
    proc = _run(cmd)
    dt = time.monotonic() - t0
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        reason = _first_error(proc.stderr)
        fail.write_text(reason + "\n")
        return name, False, reason, dt
    tmp.rename(obj)
    return name, True, "compiled", dt


def compile_selftests(names: list[str], tree: Path, cdir: Path, jobs: int) -> dict[str, str]:
    """Compile what is not cached; {name: failure reason} for those that failed."""
    (cdir / "selftests").mkdir(exist_ok=True)
    flags = per_file_cflags(tree)
    todo = [n for n in names if not (cdir / "selftests" / f"{n}.bpf.o").exists()
            and not (cdir / "selftests" / f"{n}.fail").exists()]
    failures: dict[str, str] = {}
    for n in names:
        f = cdir / "selftests" / f"{n}.fail"
        if f.exists():
            failures[n] = f.read_text().strip()
    if not todo:
        log(f"selftests: {len(names)} objects cached")
        return failures
    log(f"selftests: compiling {len(todo)} of {len(names)} with {CLANG}, {jobs} jobs")
    t0 = time.monotonic()
    done = 0
    with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
        futs = [pool.submit(compile_one, n, tree, cdir, flags.get(n, [])) for n in todo]
        for fut in cf.as_completed(futs):
            name, ok, why, _dt = fut.result()
            done += 1
            if not ok:
                failures[name] = why
                log(f"  [{done}/{len(todo)}] {name}: compile failed: {why}")
            elif done % 50 == 0 or done == len(todo):
                log(f"  [{done}/{len(todo)}] compiled ({time.monotonic() - t0:.0f}s)")
    return failures


# --------------------------------------------------------------------------- debian

def _elf_extent(data: bytes, off: int) -> int | None:
    """Size of the little-endian ELF64 BPF object starting at *off*, or None."""
    if len(data) < off + 64 or data[off + 4] != 2 or data[off + 5] != 1:
        return None
    (e_machine,) = struct.unpack_from("<H", data, off + 18)
    if e_machine != EM_BPF:
        return None
    e_shoff, = struct.unpack_from("<Q", data, off + 40)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, off + 58)
    if e_shentsize != 64 or e_shnum == 0 or e_shnum > 10000:
        return None
    end = e_shoff + e_shnum * 64
    if off + end > len(data):
        return None
    for i in range(e_shnum):
        sh = off + e_shoff + i * 64
        sh_type, = struct.unpack_from("<I", data, sh + 4)
        sh_offset, sh_size = struct.unpack_from("<QQ", data, sh + 24)
        if sh_type != 8:  # SHT_NOBITS
            end = max(end, sh_offset + sh_size)
    if off + end > len(data):
        return None
    return end


def find_bpf_elves(path: Path) -> list[tuple[int, bytes]]:
    """[(offset, object bytes)] for every BPF ELF in the file (itself, or embedded)."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    found = []
    i = data.find(b"\x7fELF")
    while i >= 0:
        size = _elf_extent(data, i)
        if size:
            found.append((i, data[i:i + size]))
            i = data.find(b"\x7fELF", i + size)
        else:
            i = data.find(b"\x7fELF", i + 4)
    return found


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+@-]", "_", name)


def fetch_debian(cdir: Path, wanted: set[str] | None) -> dict[str, str]:
    """Unpack the packages (once) and collect their BPF objects into cdir/debian/<pkg>/.

    Returns {package: version}.  *wanted* limits the packages (None: all).
    """
    base = cdir / "debian"
    base.mkdir(exist_ok=True)
    pkgs = [p for p in DEBIAN_PACKAGES if wanted is None or p in wanted]
    todo = [p for p in pkgs if not (base / p / ".complete").exists()]
    if todo:
        log(f"debian: apt-get download {' '.join(todo)}")
        with tempfile.TemporaryDirectory(prefix="sigbpf-corpus-") as tmp:
            tmpd = Path(tmp)
            debs = apt_download(todo, tmpd)
            for p in todo:
                deb = debs.get(p)
                if deb is None:
                    log(f"  {p}: not available from apt, skipped")
                    continue
                version = deb.name.split("_")[1].replace("%3a", ":")
                root = tmpd / ("x-" + p)
                subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
                dest = base / p
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir()
                count = 0
                for f in sorted(root.rglob("*")):
                    if f.is_symlink() or not f.is_file():
                        continue
                    for off, blob in find_bpf_elves(f):
                        stem = f.name if off == 0 else f"{f.name}@{off:#x}"
                        (dest / (_safe(stem) + ".o")).write_bytes(blob)
                        count += 1
                (dest / ".complete").write_text(version + "\n")
                log(f"  {p} {version}: {count} BPF objects")
    return {p: (base / p / ".complete").read_text().strip()
            for p in pkgs if (base / p / ".complete").exists()}


# --------------------------------------------------------------------------- libbpf open

_OPEN_CHILD = r"""
import ctypes, sys
lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
lib.bpf_object__open_file.restype = ctypes.c_void_p
lib.bpf_object__open_file.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
lib.bpf_object__close.argtypes = [ctypes.c_void_p]
for p in sys.stdin.read().split("\0"):
    if not p:
        continue
    sys.stderr.write("@@@ " + p + "\n"); sys.stderr.flush()
    ctypes.set_errno(0)
    o = lib.bpf_object__open_file(p.encode(), None)
    err = ctypes.get_errno()
    if o:
        lib.bpf_object__close(o)
        print("OK\0" + p, flush=True)
    else:
        print("FAIL\0" + p + "\0" + str(err), flush=True)
"""


def _libbpf_available() -> bool:
    try:
        ctypes.CDLL("libbpf.so.1")
        return True
    except OSError:
        return False


def libbpf_open_check(paths: list[Path]) -> dict[Path, str | None]:
    """{path: None if libbpf opens it, else why not} (one child; restarted after a crash)."""
    result: dict[Path, str | None] = {}
    if not _libbpf_available():
        log("libbpf.so.1 not found: falling back to `bpftool btf dump file X.o`")
        for p in paths:
            proc = _run([BPFTOOL, "btf", "dump", "file", str(p)])
            result[p] = None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]
        return result
    pending = list(paths)
    while pending:
        proc = subprocess.run([sys.executable, "-c", _OPEN_CHILD], input="\0".join(map(str, pending)),
                              capture_output=True, text=True)
        # libbpf's messages for each object, between the child's markers
        msgs: dict[str, list[str]] = {}
        cur = None
        for line in proc.stderr.splitlines():
            if line.startswith("@@@ "):
                cur = line[4:]
                msgs[cur] = []
            elif cur is not None and line.strip():
                msgs[cur].append(line.strip())
        seen = set()
        for line in proc.stdout.splitlines():
            parts = line.split("\0")
            p = Path(parts[1])
            seen.add(p)
            if parts[0] == "OK":
                result[p] = None
            else:
                errs = [m for m in msgs.get(parts[1], []) if "skipping" not in m] or msgs.get(parts[1], [])
                why = errs[-1] if errs else f"error {parts[2]}"
                result[p] = f"libbpf open: {why} ({os.strerror(int(parts[2])) if parts[2] != '0' else 'error'})"
        pending = [p for p in pending if p not in seen]
        if pending:  # the child died on pending[0]
            result[pending[0]] = f"libbpf open crashed (exit {proc.returncode})"
            pending = pending[1:]
    return result


# --------------------------------------------------------------------------- main

def build(only: list[str] | None = None, jobs: int = 2, force: bool = False) -> Path:
    """Build (or reuse) the corpus; returns its directory.  *only*: names or globs."""
    t0 = time.monotonic()
    version = newest_version(SOURCE_PACKAGE)
    cdir = corpus_dir(version)
    if force and cdir.exists():
        shutil.rmtree(cdir)
    cdir.mkdir(parents=True, exist_ok=True)
    with open(cdir.parent / f"{cdir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest_path = cdir / "manifest.json"
        if manifest_path.exists():
            m = json.loads(manifest_path.read_text())
            if m.get("complete"):
                log(f"cached: {cdir} ({len(m['objects'])} objects)")
                return cdir
        log(f"corpus directory {cdir}")
        tree = fetch_source(cdir, version)
        vmlinux_h(cdir)
        names = selftest_names(tree)
        want_self = names if only is None else [n for n in names if _matches(n, only)]
        want_pkgs = None if only is None else {p for p in DEBIAN_PACKAGES
                                                if any(_matches(f"{p}/x", [pat]) or pat.startswith(p + "/")
                                                       for pat in only)}
        compile_fail = compile_selftests(want_self, tree, cdir, jobs)
        pkg_versions = fetch_debian(cdir, want_pkgs)

        # Everything in the corpus directory that exists so far (earlier partial builds too).
        candidates: list[tuple[str, Path, str]] = []
        for n in names:
            p = cdir / "selftests" / f"{n}.bpf.o"
            if p.exists():
                candidates.append((n, p, f"selftests {SOURCE_PACKAGE} {version}"))
        seen_sha: dict[str, str] = {}
        dups: list[dict] = []
        for pkg in DEBIAN_PACKAGES:
            d = cdir / "debian" / pkg
            if not (d / ".complete").exists():
                continue
            for p in sorted(d.glob("*.o")):
                name = f"{pkg}/{p.stem}"
                sha = hashlib.sha256(p.read_bytes()).hexdigest()
                if sha in seen_sha:
                    dups.append({"name": name, "stage": "duplicate", "reason": f"same bytes as {seen_sha[sha]}"})
                    continue
                seen_sha[sha] = name
                candidates.append((name, p, f"debian {pkg} {pkg_versions.get(pkg, '?')}"))
        opened = libbpf_open_check([p for _, p, _ in candidates])
        objects, skipped = [], []
        for name, path, origin in candidates:
            why = opened[path]
            if why is None:
                objects.append({"name": name, "path": str(path.relative_to(cdir)), "origin": origin,
                                "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
            else:
                skipped.append({"name": name, "stage": "open", "reason": why})
        for n, why in sorted(compile_fail.items()):
            skipped.append({"name": n, "stage": "compile", "reason": why})
        skipped += dups
        complete = only is None or (
            all((cdir / "selftests" / f"{n}.bpf.o").exists() or (cdir / "selftests" / f"{n}.fail").exists()
                for n in names)
            and all((cdir / "debian" / p / ".complete").exists() for p in DEBIAN_PACKAGES))
        manifest = {
            "key": cdir.name, "complete": complete, "settings": settings(version),
            "kernel": platform.release(), "debian_packages": pkg_versions,
            "selftests_sources": len(names),
            "objects": objects, "skipped": skipped,
        }
        tmp = manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        tmp.rename(manifest_path)
        n_self = sum(1 for o in objects if o["origin"].startswith("selftests"))
        log(f"{len(objects)} objects ({n_self} selftests, {len(objects) - n_self} debian); "
            f"skipped: {sum(s['stage'] == 'compile' for s in skipped)} do not compile, "
            f"{sum(s['stage'] == 'open' for s in skipped)} libbpf cannot open, "
            f"{len(dups)} duplicates; {time.monotonic() - t0:.1f}s"
            + ("" if complete else " (partial corpus)"))
        return cdir


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def load_manifest(cdir: Path) -> dict:
    return json.loads((cdir / "manifest.json").read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", metavar="NAME,...",
                    help="build only these objects (selftest names without .c, or PKG/NAME for "
                         "Debian objects; globs allowed; @FILE reads names from a file)")
    ap.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--force", action="store_true", help="rebuild from scratch")
    ap.add_argument("--print-dir", action="store_true", help="print the corpus directory (and build nothing)")
    args = ap.parse_args(argv)
    if args.print_dir:
        print(corpus_dir())
        return 0
    only = parse_names(args.only) if args.only else None
    cdir = build(only, jobs=args.jobs, force=args.force)
    print(cdir)
    return 0


def parse_names(spec: str) -> list[str]:
    """'a,b,c' or '@file' (one name a line, '#' comments) into a list."""
    if spec.startswith("@"):
        names = []
        for line in Path(spec[1:]).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(line)
        return names
    return [s.strip() for s in spec.split(",") if s.strip()]


if __name__ == "__main__":
    sys.exit(main())
