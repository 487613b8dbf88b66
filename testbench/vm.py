"""Run a command under another kernel: qemu (TCG), the host's root over 9p.

>>> r = run_in_vm(["uname", "-r"], kernel="7.3")
>>> r.returncode, r.stdout
(0, '7.3.4+deb13-amd64\\n')

The guest sees the host's whole file system at the same paths (read-only 9p
with a tmpfs overlay on top, so writes work and are thrown away), runs the
command as root in the host's current directory with the host's interpreter
and packages, and powers off. The environment is explicit: ``PATH``,
``HOME``, ``PYTHONPATH``, ``LANG``/``LC_ALL``, every ``SIGBPF_*`` variable,
then *env*; plus ``SIGBPF_IN_VM=1`` and ``TERM=dumb``. stdin is /dev/null;
stdout and stderr are pipes, as with :func:`subprocess.run`.

Failures of the bench itself raise :class:`VMError` (qemu missing or dying,
the guest never reporting), :class:`VMTimeout` (qemu killed after *timeout*
seconds) or :class:`VMPanic` (the guest kernel panicked; the message ends with
the kernel log's tail). A command that exits non-zero is a normal result.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from testbench.debian import Kernel, fetch_busybox, fetch_kernel
from testbench.initramfs import build_initramfs
from testbench.kernel import seed_flavour, seed_kernel

REPO = Path(__file__).resolve().parent.parent
PASS_ENV = ("PATH", "HOME", "PYTHONPATH", "LANG", "LC_ALL", "TZ", "PYTHONHASHSEED")
PANIC_RE = re.compile(r"Kernel panic - not syncing")
WARN_RE = re.compile(r"(WARNING: CPU|BUG: |Oops|general protection fault|Call Trace)")
RESULT_MARK = "\n@@sigbpf-vm-result@@"


def qemu_binary() -> str | None:
    return shutil.which("qemu-system-x86_64")


@dataclass
class VMResult:
    returncode: int | None   # the command's exit status (None: it never finished)
    stdout: str
    stderr: str
    kernel_log: str          # ttyS0, the guest kernel's console
    seconds: float           # wall time, qemu start to qemu exit
    boot_seconds: float | None = None   # wall time, qemu start to the command's start
    kernel: str = ""         # the guest's release (uname -r)
    argv: list[str] = field(default_factory=list)
    root: str = ""           # "overlay" (writable, discarded) or "9p-ro"
    status: list[str] = field(default_factory=list)  # the init's status lines (ttyS3)
    stdout_bytes: bytes = field(default=b"", repr=False)  # stdout/stderr exactly as written
    stderr_bytes: bytes = field(default=b"", repr=False)

    @property
    def kernel_warnings(self) -> list[str]:
        """Lines of the kernel log that report a WARN, BUG, Oops or call trace."""
        return [line for line in self.kernel_log.splitlines() if WARN_RE.search(line)]

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.kernel_log.rstrip("\n").splitlines()[-lines:])

    def check(self) -> "VMResult":
        """Raise :class:`VMCommandError` unless the command exited 0."""
        if self.returncode != 0:
            raise VMCommandError(self)
        return self


class VMError(RuntimeError):
    """The bench failed (not the command): qemu, the kernel or the init."""

    def __init__(self, message: str, result: VMResult | None = None):
        super().__init__(message)
        self.result = result


class VMTimeout(VMError):
    pass


class VMPanic(VMError):
    pass


class VMCommandError(VMError):
    def __init__(self, result: VMResult):
        super().__init__(f"{shlex.join(result.argv)} exited {result.returncode} in the VM "
                         f"({result.kernel})\n--- stdout\n{result.stdout[-3000:]}\n"
                         f"--- stderr\n{result.stderr[-3000:]}", result)


_RESOLVED: dict[str, Kernel] = {}


def _kernel(kernel: str | Kernel) -> Kernel:
    """A series is resolved once per process: every VM of a session boots the same kernel.

    ``"seed"``/``"seed-extra"`` name the patched test kernel (:mod:`testbench.kernel`).
    """
    if isinstance(kernel, Kernel):
        return kernel
    if kernel not in _RESOLVED:
        flavour = seed_flavour(kernel)
        _RESOLVED[kernel] = seed_kernel(flavour) if flavour else fetch_kernel(series=kernel)
    return _RESOLVED[kernel]


def _job_script(argv: list[str], env: dict[str, str], cwd: str) -> str:
    assigns = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
    return (f"cd {shlex.quote(cwd)} || exit 125\n"
            f"exec /usr/bin/env -i {assigns} {shlex.join(argv)}\n")


def guest_env(extra: dict[str, str] | None = None, kernel: Kernel | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env.update({k: v for k, v in os.environ.items() if k.startswith("SIGBPF_")})
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.setdefault("HOME", "/root")
    env.setdefault("LANG", "C.UTF-8")
    env["TERM"] = "dumb"
    env["SIGBPF_IN_VM"] = "1"
    if kernel is not None:
        env["SIGBPF_VM_KERNEL"] = kernel.release
    env.update(extra or {})
    return env


def qemu_command(kernel: Kernel, initrd: Path, job: str, outdir: Path, *, memory: str = "1G",
                 smp: int = 2, cpu: str = "max", accel: str = "tcg,thread=single",
                 overlay: bool = True, append: str = "") -> list[str]:
    qemu = qemu_binary()
    if qemu is None:
        raise VMError("qemu-system-x86_64 is not installed (scripts/deps.sh installs qemu-system-x86)")
    cmdline = " ".join(filter(None, [
        "console=ttyS0,115200", "panic=-1", "no_timer_check",
        "random.trust_cpu=on", f"sigbpf.job={job}",
        f"sigbpf.overlay={1 if overlay else 0}", append]))
    return [
        qemu, "-accel", accel, "-cpu", cpu, "-m", memory, "-smp", str(smp), "-M", "q35",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-kernel", str(kernel.vmlinuz), "-initrd", str(initrd), "-append", cmdline,
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        "-serial", f"file:{outdir / 'ttyS0'}",
        "-serial", f"file:{outdir / 'ttyS1'}",
        "-serial", f"file:{outdir / 'ttyS2'}",
        "-chardev", "stdio,id=status,signal=off", "-serial", "chardev:status",
    ]


def run_in_vm(argv: list[str] | str, kernel: str | Kernel = "7.3", timeout: float = 600, *,
              env: dict[str, str] | None = None, cwd: str | Path | None = None,
              memory: str = "1G", smp: int = 2, cpu: str = "max",
              accel: str = "tcg,thread=single", overlay: bool = True,
              append: str = "") -> VMResult:
    """Boot *kernel* (a series such as ``"7.3"``, or a :class:`Kernel`) and run *argv* in it.

    *argv* is a list (exec'd through ``env``) or a string (run by ``/bin/sh -c``).
    *cwd* defaults to the current directory; *env* adds to the passed-through
    environment; *append* adds to the kernel command line; ``overlay=False``
    gives a read-only root with tmpfs only on /tmp and /var/tmp.

    *accel* is single-threaded TCG by default: with multi-threaded TCG
    (``accel="tcg"``) and 2 vCPUs, Debian 7.3 occasionally died at boot on a
    loaded host (an oops in ``sched_clock_cpu`` while a static key was being
    patched, "Fatal exception in interrupt"; once a hang at the switch to
    tsc-early), cross-vCPU code patching that single-threaded TCG serialises.
    It costs about 0.5 s of boot.
    """
    if isinstance(argv, str):
        argv = ["/bin/sh", "-c", argv]
    argv = [str(a) for a in argv]
    k = _kernel(kernel)
    initrd = build_initramfs(k, fetch_busybox())
    cwd = str(Path(cwd).resolve()) if cwd is not None else os.getcwd()
    outdir = Path(tempfile.mkdtemp(prefix="sigbpf-vm-"))
    if any(c.isspace() or c == "," for c in str(outdir)):   # a kernel parameter, a qemu option
        shutil.rmtree(outdir)
        outdir = Path(tempfile.mkdtemp(prefix="sigbpf-vm-", dir="/tmp"))
    try:
        job = outdir / "job.sh"
        job.write_text(_job_script(argv, guest_env(env, k), cwd))
        for port in ("ttyS0", "ttyS1", "ttyS2"):
            (outdir / port).touch()
        cmd = qemu_command(k, initrd, str(job), outdir, memory=memory, smp=smp, cpu=cpu,
                           accel=accel, overlay=overlay, append=append)
        return _run_qemu(cmd, outdir, argv, k, timeout)
    finally:
        shutil.rmtree(outdir, ignore_errors=True)


def _run_qemu(cmd: list[str], outdir: Path, argv: list[str], k: Kernel, timeout: float) -> VMResult:
    status: list[tuple[float, str]] = []
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)

    def read_status() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            status.append((time.monotonic(), raw.decode(errors="replace").rstrip("\r\n")))

    err_chunks: list[bytes] = []
    readers = [threading.Thread(target=read_status, daemon=True),
               threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)]
    for t in readers:
        t.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    seconds = time.monotonic() - t0
    for t in readers:
        t.join(timeout=5)

    raw = {port: (outdir / port).read_bytes() for port in ("ttyS0", "ttyS1", "ttyS2")}
    klog = raw["ttyS0"].decode(errors="replace").replace("\r\n", "\n")
    lines = [s for _, s in status]
    rc: int | None = None
    boot = None
    root = ""
    fail = None
    for when, line in status:
        words = line.split()
        if len(words) < 2 or words[0] != "sigbpf-vm:":
            continue
        if words[1] == "start":
            boot = when - t0
        elif words[1] == "exit" and len(words) >= 3:
            rc = int(words[2])
        elif words[1] == "root" and len(words) >= 3:
            root = words[2]
        elif words[1] == "fail":
            fail = " ".join(words[2:])
    result = VMResult(returncode=rc, stdout=raw["ttyS1"].decode(errors="replace"),
                      stderr=raw["ttyS2"].decode(errors="replace"), kernel_log=klog,
                      seconds=seconds, boot_seconds=boot, kernel=k.release, argv=argv, root=root,
                      status=lines, stdout_bytes=raw["ttyS1"], stderr_bytes=raw["ttyS2"])
    qemu_err = b"".join(err_chunks).decode(errors="replace").strip()
    if PANIC_RE.search(klog):
        raise VMPanic(f"the guest kernel ({k.release}) panicked; kernel log tail:\n"
                      f"{result.log_tail()}", result)
    if timed_out:
        where = "while running the command" if boot is not None else "before the command started"
        raise VMTimeout(f"qemu killed after {timeout:.0f} s, {where} ({shlex.join(argv)}); "
                        f"kernel log tail:\n{result.log_tail()}", result)
    if fail is not None:
        raise VMError(f"the test bench's init failed: {fail}; kernel log tail:\n{result.log_tail()}",
                      result)
    if rc is None:
        raise VMError(f"the guest stopped without reporting an exit status (qemu exit "
                      f"{proc.returncode}{': ' + qemu_err if qemu_err else ''}); kernel log tail:\n"
                      f"{result.log_tail()}", result)
    return result


# ---------------------------------------------------------------------- helpers

def run_python(code_or_function: str | Callable[..., Any], *, args: tuple = (),
               kwargs: dict | None = None, kernel: str | Kernel = "7.3", timeout: float = 600,
               python: str | None = None, **vm_kwargs: Any) -> Any:
    """Run Python in the guest with the host's interpreter (``sys.executable``).

    A string is run as ``python -c CODE`` and the :class:`VMResult` is
    returned. A function (module level, self-contained: it does its own
    imports) is called in the guest with *args*/*kwargs* (JSON values) and its
    return value (JSON) is returned; a non-zero exit raises
    :class:`VMCommandError`, whose ``result`` has the guest's stderr.
    """
    python = python or sys.executable
    if isinstance(code_or_function, str):
        return run_in_vm([python, "-c", code_or_function], kernel, timeout, **vm_kwargs)
    func = code_or_function
    source = textwrap.dedent(inspect.getsource(func))
    payload = json.dumps({"args": list(args), "kwargs": kwargs or {}})
    script = (f"{source}\n"
              f"import json as _json, sys as _sys\n"
              f"_a = _json.loads({payload!r})\n"
              f"_r = {func.__name__}(*_a['args'], **_a['kwargs'])\n"
              f"_sys.stdout.flush()\n"
              f"_sys.stdout.write({RESULT_MARK!r} + _json.dumps(_r) + '\\n')\n")
    result = run_in_vm([python, "-c", script], kernel, timeout, **vm_kwargs).check()
    head, mark, tail = result.stdout.rpartition(RESULT_MARK)
    if not mark:
        raise VMError(f"{func.__name__}: no result in the guest's stdout", result)
    return json.loads(tail)


def run_pytest(args: list[str], kernel: str | Kernel = "7.3", timeout: float = 1800,
               python: str | None = None, **vm_kwargs: Any) -> VMResult:
    """``python -m pytest ARGS`` in the guest, from the repository root.

    The VM-bench tests skip themselves inside the guest (``SIGBPF_IN_VM=1``).
    """
    env = dict(vm_kwargs.pop("env", None) or {})
    pp = os.environ.get("PYTHONPATH")
    env.setdefault("PYTHONPATH", f"{REPO}:{pp}" if pp else str(REPO))
    argv = [python or sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *map(str, args)]
    return run_in_vm(argv, kernel, timeout, env=env, cwd=vm_kwargs.pop("cwd", REPO), **vm_kwargs)
