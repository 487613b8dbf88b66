"""Shared test fixtures: compiling the C programs, corpus BTF, the CLI, the kernel.

* ``bpf_object(name)``  compiles ``tests/progs/<name>.c`` with clang-19
  (``-target bpf -g -O2``) once per session and returns the ``.o`` path.
* ``corpus_btf(name)``  decompresses ``tests/data/corpus/<name>.xz`` once per session.
* ``vmlinux_h``         the running kernel's ``vmlinux.h`` as bpftool writes it.
* ``cli``               runs ``python -m sigbpf ...`` and returns the completed process.
* ``kernel``            skips when ``bpf()`` is unavailable; with
  ``SIGBPF_REQUIRE_KERNEL=1`` (CI) that skip is a failure instead.
* ``vm``                the VM test bench (``testbench/``): Debian's 7.3 kernel,
  fetched and cached; skips when qemu or the kernel cannot be had (a failure
  under ``SIGBPF_REQUIRE_KERNEL=1``), and inside the bench's own guest.
* ``seed_vm``           the patched seed test kernel for the bench (``testbench/kernel/``),
  built on first use and cached; ``seed_vm_extra`` its second configuration.
"""

from __future__ import annotations

import contextlib
import ctypes
import lzma
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PROGS = TESTS / "progs"
CORPUS = TESTS / "data" / "corpus"
VMLINUX = Path("/sys/kernel/btf/vmlinux")
CLANG = shutil.which("clang-19") or shutil.which("clang")
BPFTOOL = shutil.which("bpftool") or "/usr/sbin/bpftool"
LLVM_OBJDUMP = shutil.which("llvm-objdump-19")

# testbench/ (the VM test bench, not part of the sigbpf package) is imported from the repo root.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CORPUS_KERNELS = ("6.1.0-56-amd64", "6.12.95+deb12-amd64")
CORPUS_MODULES = ("nf_conntrack", "xfs")


def _bpf_available() -> str | None:
    """None when bpf() answers here, else why not."""
    if sys.platform != "linux":
        return "not Linux"
    if not VMLINUX.exists():
        return "no /sys/kernel/btf/vmlinux"
    libc = ctypes.CDLL(None, use_errno=True)
    # BPF_PROG_LOAD with an empty attr: EINVAL/E2BIG/EFAULT mean bpf() exists and
    # we may call it; EPERM/ENOSYS mean it is not available to us.
    attr = ctypes.create_string_buffer(168)
    rc = libc.syscall(321, 5, attr, 168)
    err = ctypes.get_errno()
    if rc < 0 and err in (1, 38):
        return f"bpf() unavailable: {os.strerror(err)}"
    if rc >= 0:
        os.close(rc)
    return None


@pytest.fixture(scope="session")
def kernel() -> None:
    """Use in every test that calls the real kernel."""
    why = _bpf_available()
    if why is not None:
        if os.environ.get("SIGBPF_REQUIRE_KERNEL") == "1":
            pytest.fail(f"SIGBPF_REQUIRE_KERNEL=1 but {why}")
        pytest.skip(why)


def _bench_kernel(request: pytest.FixtureRequest, what: str, get):
    """The kernel ``get()`` returns, with its initramfs ready; skips (fails under
    ``SIGBPF_REQUIRE_KERNEL=1``) when qemu or the kernel cannot be had, and inside the
    bench's own guest. ``get`` runs with pytest's capture off, so a build's progress shows."""
    if os.environ.get("SIGBPF_IN_VM") == "1":
        pytest.skip("inside the test bench's own VM (no nested qemu)")
    from testbench.debian import FetchError, fetch_busybox
    from testbench.initramfs import build_initramfs
    from testbench.kernel import BuildError
    from testbench.vm import qemu_binary

    why = None
    if qemu_binary() is None:
        why = "qemu-system-x86_64 is not installed (scripts/deps.sh installs qemu-system-x86)"
    else:
        capture = request.config.pluginmanager.getplugin("capturemanager")
        try:
            with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
                k = get()
            build_initramfs(k, fetch_busybox())
            return k
        except (BuildError, FetchError, KeyError, OSError, subprocess.CalledProcessError) as e:
            why = f"cannot {what}: {e}"
    if os.environ.get("SIGBPF_REQUIRE_KERNEL") == "1":
        pytest.fail(f"SIGBPF_REQUIRE_KERNEL=1 but {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def vm(request: pytest.FixtureRequest):
    """The VM bench's kernel (a ``testbench.debian.Kernel``, Debian 7.3) for ``testbench.vm``."""
    from testbench.debian import fetch_kernel

    return _bench_kernel(request, "fetch Debian's 7.3 kernel", lambda: fetch_kernel("7.3"))


@pytest.fixture(scope="session")
def seed_vm(request: pytest.FixtureRequest):
    """The seed test kernel, "small" (a ``testbench.kernel.SeedKernel``): Debian's 7.3 source
    with the PROG_BTF patch, built on first use (~8-14 min) and cached; skips like ``vm``."""
    from testbench.kernel import seed_kernel

    return _bench_kernel(request, "build the seed test kernel (small)",
                         lambda: seed_kernel("small", progress=sys.stderr))


@pytest.fixture(scope="session")
def seed_vm_extra(request: pytest.FixtureRequest):
    """The seed test kernel's second configuration, "extra" (more options, other kfunc BTF ids)."""
    from testbench.kernel import seed_kernel

    return _bench_kernel(request, "build the seed test kernel (extra)",
                         lambda: seed_kernel("extra", progress=sys.stderr))


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="session")
def vmlinux_h(build_dir: Path) -> Path:
    """The running kernel's vmlinux.h as the reference tool (bpftool) writes it."""
    out = build_dir / "include" / "vmlinux.h"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        text = subprocess.run(
            [BPFTOOL, "btf", "dump", "file", str(VMLINUX), "format", "c"],
            check=True, capture_output=True, text=True,
        ).stdout
        out.write_text(text)
    return out


@pytest.fixture(scope="session")
def bpf_object(build_dir: Path, request: pytest.FixtureRequest):
    """compile(name) -> Path of tests/progs/<name>.c compiled for BPF."""
    if CLANG is None:
        pytest.fail("clang-19 is not installed (scripts/deps.sh installs it)")
    cache: dict[str, Path] = {}

    prebuilt = os.environ.get("SIGBPF_PREBUILT_OBJECTS")  # the VM bench: the host compiled them

    def compile_(name: str, *extra: str) -> Path:
        key = name + "\0" + "\0".join(extra)
        if prebuilt and not extra and (Path(prebuilt) / f"{name}.o").exists():
            return Path(prebuilt) / f"{name}.o"
        if key not in cache:
            vmlinux_h = request.getfixturevalue("vmlinux_h")  # only when compiling
            src = PROGS / f"{name}.c"
            out = build_dir / (name + ("-" + str(abs(hash(key))) if extra else "") + ".o")
            subprocess.run(
                [CLANG, "-target", "bpf", "-g", "-O2", "-D__TARGET_ARCH_x86",
                 "-I", str(vmlinux_h.parent), "-I", str(PROGS),
                 *extra, "-c", str(src), "-o", str(out)],
                check=True, capture_output=True, text=True,
            )
            cache[key] = out
        return cache[key]

    return compile_


@pytest.fixture(scope="session")
def corpus_btf(tmp_path_factory: pytest.TempPathFactory):
    """path(name) -> decompressed corpus file, e.g. path('6.1.0-56-amd64.btf')."""
    out_dir = tmp_path_factory.mktemp("corpus")

    def path(name: str) -> Path:
        out = out_dir / name
        if not out.exists():
            out.write_bytes(lzma.decompress((CORPUS / f"{name}.xz").read_bytes()))
        return out

    return path


@pytest.fixture(scope="session")
def cli():
    """run(*args, input=None) -> CompletedProcess of `python -m sigbpf args` (text mode)."""

    def run(*args: str, input: str | None = None, cwd: str | Path | None = None):
        return subprocess.run(
            [sys.executable, "-m", "sigbpf", *map(str, args)],
            capture_output=True, text=True, input=input, cwd=cwd, timeout=300,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    return run


def assert_one_line_error(proc, code: int = 2, contains: str | None = None) -> None:
    """The CLI's error contract: non-zero exit, one line on stderr, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("sigbpf:"), err
    if contains is not None:
        assert contains in err, err
