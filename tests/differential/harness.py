"""The differential test's loader: every program of a corpus into the running kernel.

Runs wherever the kernel to measure runs (the patched kernel's VM, or the
host): the program BTF objects are loaded once (``BPF_BTF_LOAD``) and their
fds shared by all programs; each program goes through sigbpf's own
``BPF_PROG_LOAD`` (:func:`sigbpf.kernel.program.load_program`: no log first,
``log_level`` 1 on the retry after a refusal).  What is kept of each load is
an :class:`Observed`: accepted or not, the errno, the seed's log line (the
one line starting ``kfunc call insn N:``, or None) and the refusal's reason
(the log's last line before 7.3's diagnostics block and the verifier's
``processed N insns`` summary).

:func:`run` returns everything as JSON-able data so that it can cross the
VM's serial port (``testbench.vm.run_python``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from differential.programs import LICENSE, PROG_FLAGS, PROG_TYPE_SYSCALL, Corpus, generate

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent

#: Where the running kernel's BTF is.
VMLINUX = "/sys/kernel/btf/vmlinux"

#: The seed's lines all start so (kernel/bpf/verifier.c, resolve_loader_kfunc); no other
#: line of 7.3's verifier does.
SEED_LINE = re.compile(r"^kfunc call insn \d+: .*$", re.M)


@dataclass(frozen=True, slots=True)
class Observed:
    """What the kernel did with one program."""

    accepted: bool
    errno: int | None
    seed_line: str | None
    reason: str | None      # the log's last line before the summary (None when accepted)
    seconds: float          # the BPF_PROG_LOAD calls of this program (both, after a refusal)

    def as_row(self) -> list:
        return [int(self.accepted), self.errno, self.seed_line, self.reason,
                round(self.seconds * 1e6)]

    @classmethod
    def from_row(cls, row: list) -> "Observed":
        accepted, errno, seed_line, reason, micros = row
        return cls(bool(accepted), errno, seed_line, reason, micros / 1e6)


#: The verifier's closing summary ("processed N insns (limit ...) ..."), printed after the reason.
SUMMARY_LINE = re.compile(r"^processed \d+ insns ")
#: 7.3's diagnostics (kernel/bpf/diagnostics.c, on at log_level 1): a block after the
#: reason, starting with a line "Verification failed: <category>: <problem>".
DIAGNOSTICS = re.compile(r"^Verification failed: ", re.M)


def observe(log: str) -> tuple[str | None, str | None]:
    """(the seed's line, the refusal's reason) of a verifier log: the reason is the last line
    before 7.3's diagnostics block and the ``processed N insns`` summary."""
    m = SEED_LINE.findall(log)
    diagnostics = DIAGNOSTICS.search(log)
    text = log[:diagnostics.start()] if diagnostics else log
    lines = [line for line in text.splitlines() if line.strip() and not SUMMARY_LINE.match(line)]
    return (m[-1] if m else None), (lines[-1] if lines else None)


#: The log buffer of the retry after a refusal, where sigbpf starts at 1 MiB
#: (:data:`sigbpf.kernel.log.FIRST_LOG_SIZE`).  The logs here are one or two lines, and
#: sigbpf's retry grows the buffer on ENOSPC (the kernel's ``log_true_size``) as for any
#: load; but under TCG, allocating and copying 1 MiB per refusal is most of the time:
#: 14.2 ms a load with 1 MiB, 6.4 ms with 64 KiB, 3.7 ms with 4 KiB (Debian 7.3 in the VM,
#: 300 programs of this corpus; 1.6 and 0.15 ms on the host).
FIRST_LOG_SIZE = 4096


def load_corpus(corpus: Corpus) -> list[Observed]:
    """Load every program of *corpus*; the program fds are closed as soon as they are seen."""
    from sigbpf.errors import KernelError
    from sigbpf.kernel import log as kernel_log
    from sigbpf.kernel.btf import load_btf
    from sigbpf.kernel.program import ProgLoad, load_program

    first_log_size, kernel_log.FIRST_LOG_SIZE = kernel_log.FIRST_LOG_SIZE, FIRST_LOG_SIZE
    btf_fds = []
    out: list[Observed] = []
    try:
        for i, btf in enumerate(corpus.btfs):
            btf_fds.append(load_btf(btf.raw, what=f"differential prog BTF #{i}"))
        for case in corpus.cases:
            req = ProgLoad(prog_type=PROG_TYPE_SYSCALL, insns=case.insn_bytes, license=LICENSE,
                           name="diff", flags=PROG_FLAGS,
                           prog_btf_fd=btf_fds[case.btf].fileno() if case.passes_btf_fd else None,
                           func_info=case.func_info, line_info=case.line_info,
                           core_relos=case.core_relos)
            t0 = time.perf_counter()
            try:
                fd = load_program(req)
            except KernelError as err:
                seconds = time.perf_counter() - t0
                seed_line, reason = observe(err.log or "")
                out.append(Observed(False, err.errno, seed_line, reason, seconds))
            else:
                seconds = time.perf_counter() - t0
                fd.close()
                out.append(Observed(True, None, None, None, seconds))
    finally:
        kernel_log.FIRST_LOG_SIZE = first_log_size
        for fd in btf_fds:
            fd.close()
    return out


def run(seed: int, count: int, *, with_vmlinux: bool = False) -> dict:
    """Generate the corpus, load it, and say what happened (JSON-able).

    ``rows``: one :meth:`Observed.as_row` per program; ``digest``: the corpus's;
    ``vmlinux_sha256`` (and with *with_vmlinux* the BTF itself, zlib + base64):
    the kernel's BTF, which the prediction needs.
    """
    import os

    t0 = time.perf_counter()
    corpus = generate(seed, count)
    generated = time.perf_counter() - t0
    observed = load_corpus(corpus)
    loaded = time.perf_counter() - t0 - generated
    with open(VMLINUX, "rb") as f:
        vmlinux = f.read()
    result = {"kernel": os.uname().release, "digest": corpus.digest(),
              "vmlinux_sha256": hashlib.sha256(vmlinux).hexdigest(),
              "generate_seconds": generated, "load_seconds": loaded,
              "rows": [o.as_row() for o in observed]}
    if with_vmlinux:
        result["vmlinux"] = base64.b64encode(zlib.compress(vmlinux, 6)).decode()
    return result


def vmlinux_bytes(result: dict) -> bytes:
    """The kernel BTF a :func:`run` result carries, checked against its SHA-256."""
    raw = zlib.decompress(base64.b64decode(result["vmlinux"]))
    if hashlib.sha256(raw).hexdigest() != result["vmlinux_sha256"]:
        raise ValueError("the kernel BTF from the guest does not match its SHA-256")
    return raw


def _guest(seed: int, count: int, tests: str, root: str, with_vmlinux: bool) -> dict:
    """:func:`run` in the test bench's guest (shipped as source by ``run_python``)."""
    import sys

    sys.path[:0] = [tests, root]
    from differential.harness import run

    return run(seed, count, with_vmlinux=with_vmlinux)


@dataclass(frozen=True, slots=True)
class Measurement:
    """One run of a corpus in a kernel: what the kernel did and the BTF it did it with."""

    kernel: str
    observed: tuple[Observed, ...]
    vmlinux: bytes
    digest: str
    load_seconds: float
    vm_seconds: float


def measure_in_vm(kernel: Any, seed: int, count: int, *, timeout: float = 1800) -> Measurement:
    """:func:`run` in one VM booted on *kernel* (a ``testbench`` kernel).

    The kernel's BTF is the build's own copy when the kernel has one (a seed
    kernel's ``btf``, checked against the guest's SHA-256), else the guest
    sends it.
    """
    from testbench.vm import run_python

    btf_path = getattr(kernel, "btf", None)
    t0 = time.monotonic()
    result = run_python(_guest, args=(seed, count, str(TESTS), str(ROOT), btf_path is None),
                        kernel=kernel, timeout=timeout)
    vm_seconds = time.monotonic() - t0
    if btf_path is not None:
        raw = Path(btf_path).read_bytes()
        if hashlib.sha256(raw).hexdigest() != result["vmlinux_sha256"]:
            raise ValueError(f"{btf_path} is not the BTF the guest kernel shows")
    else:
        raw = vmlinux_bytes(result)
    return Measurement(result["kernel"], tuple(map(Observed.from_row, result["rows"])), raw,
                       result["digest"], result["load_seconds"], vm_seconds)
