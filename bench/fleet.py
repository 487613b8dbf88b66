"""Benchmark: ``sigbpf check`` against 1,000 kernels, cold and warm, beside libbpf through ctypes.

    python3 bench/fleet.py [--kernels 1000] [--jobs N] [--json]

In one run, on the same machine and the same kernels:

* **cold**: ``sigbpf check tests/progs/fleet_all.c's object KERNELS_DIR --json``
  with an empty cache directory (``SIGBPF_CACHE``), wall time and the peak of
  the summed RSS of the process and all its children (sampled every 100 ms
  from /proc), with the default worker count (the CPUs this process may use);
* **warm**: the same command again, the cache now filled;
* **libbpf**: the same look-ups through libbpf.so.1 (Debian's libbpf1) via
  ctypes, one kernel after the other in one process: ``btf__parse`` (or
  ``btf__new`` on the decompressed bytes of ``.xz``/BTFHub kernels, which
  libbpf cannot open) and ``btf__find_by_name_kind`` for every name the
  artifact needs (kfuncs, attach targets, the ksym, the four UAPI enums, the
  CO-RE root types, the ``bpf_kfunc`` tag), then ``btf__free``.  That is the
  anchor: the work any tool must at least do per kernel, in C.

Printed: each side's time, kernels per second and peak memory, and the
ratios cold/libbpf and warm/libbpf.  The kernels are tests/fleet_kernels.py's
generated set (made on first use, cached under ~/.cache/sigbpf/fleet-testdata).
The cold run's JSON is also checked against the set's known answers (a
benchmark of wrong answers is worth nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

#: Names the artifact needs, by BTF kind (what the libbpf side looks up).
LIBBPF_NAMES = (
    ("bpf_task_from_pid", 12), ("bpf_task_release", 12), ("do_unlinkat", 12),
    ("btf_trace_sched_process_exec", 8), ("bpf_prog_active", 14),
    ("bpf_prog_type", 6), ("bpf_map_type", 6), ("bpf_attach_type", 6), ("bpf_func_id", 6),
    ("task_struct", 4), ("pid_type", 6), ("bpf_kfunc", 17),
)


def compile_artifact(out_dir: Path) -> Path:
    """tests/progs/fleet_all.c compiled as the tests do (clang -target bpf -g -O2, vmlinux.h)."""
    clang = shutil.which("clang-19") or shutil.which("clang")
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    inc = out_dir / "include"
    inc.mkdir(parents=True, exist_ok=True)
    (inc / "vmlinux.h").write_text(subprocess.run(
        [bpftool, "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
        check=True, capture_output=True, text=True).stdout)
    obj = out_dir / "fleet_all.o"
    subprocess.run([clang, "-target", "bpf", "-g", "-O2", "-D__TARGET_ARCH_x86", "-I", str(inc),
                    "-I", str(ROOT / "tests" / "progs"), "-c", str(ROOT / "tests/progs/fleet_all.c"),
                    "-o", str(obj)], check=True)
    return obj


def _tree_rss(pid: int) -> int:
    """Summed RSS (bytes) of *pid* and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        p = int(entry)
        children.setdefault(int(fields[1]), []).append(p)
        rss[p] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, ()))
    return total


def run_measured(argv: list[str], env: dict[str, str], stdin: str = ""
                 ) -> tuple[float, int, subprocess.CompletedProcess, float]:
    """(wall seconds, peak summed RSS in bytes, the process, CPU seconds of it and all its
    children) of one command."""
    import resource

    peak = 0
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate(stdin)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, peak, subprocess.CompletedProcess(argv, proc.returncode, out, err), cpu


LIBBPF_CHILD = r"""
import ctypes, io, json, lzma, sys, tarfile, time
lib = ctypes.CDLL("libbpf.so.1")
lib.btf__parse.restype = ctypes.c_void_p
lib.btf__parse.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
lib.btf__new.restype = ctypes.c_void_p
lib.btf__new.argtypes = [ctypes.c_char_p, ctypes.c_uint32]
lib.btf__find_by_name_kind.restype = ctypes.c_int
lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
lib.btf__free.argtypes = [ctypes.c_void_p]
paths, names = json.load(sys.stdin)
names = [(n.encode(), k) for n, k in names]
found = 0
for path in paths:
    if path.endswith(".btf"):
        btf = lib.btf__parse(path.encode(), None)
    else:
        data = open(path, "rb").read()
        if path.endswith(".tar.xz"):
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:xz") as tar:
                member = next(m for m in tar if m.isfile())
                data = tar.extractfile(member).read()
        else:
            data = lzma.decompress(data)
        btf = lib.btf__new(data, len(data))
    if not btf:
        sys.exit(f"libbpf could not parse {path}")
    found += sum(lib.btf__find_by_name_kind(btf, n, k) > 0 for n, k in names)
    lib.btf__free(btf)
print(found)
"""


def kernel_files(root: Path) -> list[str]:
    """The kernel files of the generated set (what libbpf is given), siblings excluded."""
    from sigbpf.fleet.sources import expand

    return [s.path for s in expand([str(root)])]


def check_answers(report: dict, fk) -> int:
    """How many cells differ from the generated set's known answers."""
    from fleet_kernels import core_keys

    keys = core_keys(report["checks"])
    bad = 0
    for k in report["kernels"]:
        got = {c["check"]: (c["verdict"], c["code"]) for c in k["cells"]}
        for check, (verdict, code) in fk.expected(k["name"]).items():
            if got.get(keys.get(check, check)) != (verdict.label, code):
                bad += 1
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=0, help="sigbpf's worker processes (default: its own)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from fleet_kernels import fleet_kernels

    t = time.perf_counter()
    fk = fleet_kernels(args.kernels)
    made = time.perf_counter() - t
    with tempfile.TemporaryDirectory(prefix="sigbpf-bench-fleet-") as tmp:
        tmp_path = Path(tmp)
        obj = compile_artifact(tmp_path / "build")
        env = {**os.environ, "SIGBPF_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
        argv = [sys.executable, "-m", "sigbpf", "check", str(obj), str(fk.root), "--json"]
        if args.jobs:
            argv += ["--jobs", str(args.jobs)]
        # page cache: read every kernel once, as a fleet's files would be on a busy host
        files = kernel_files(fk.root)
        for f in files:
            Path(f).read_bytes()
        cold = run_measured(argv, env)
        warm = run_measured(argv, env)
        for name, (_, _, proc, _) in (("cold", cold), ("warm", warm)):
            if proc.returncode not in (0, 1):
                print(f"{name} run failed ({proc.returncode}): {proc.stderr[-2000:]}", file=sys.stderr)
                return 2
        report = json.loads(cold[2].stdout)
        wrong = check_answers(report, fk)
        same = json.loads(warm[2].stdout) == report
        lib_wall, lib_peak, lib_proc, lib_cpu = run_measured([sys.executable, "-c", LIBBPF_CHILD], env,
                                                    json.dumps([files, LIBBPF_NAMES]))
    if lib_proc.returncode != 0:
        print(f"libbpf side failed: {lib_proc.stderr[-2000:]}", file=sys.stderr)
        return 2
    n = len(report["kernels"])
    result = {
        "kernels": n, "jobs": args.jobs or len(os.sched_getaffinity(0)),
        "cold_s": round(cold[0], 2), "cold_peak_mb": round(cold[1] / 2**20, 1),
        "cold_cpu_s": round(cold[3], 2), "warm_cpu_s": round(warm[3], 2), "libbpf_cpu_s": round(lib_cpu, 2),
        "warm_s": round(warm[0], 2), "warm_peak_mb": round(warm[1] / 2**20, 1),
        "libbpf_s": round(lib_wall, 2), "libbpf_peak_mb": round(lib_peak / 2**20, 1),
        "cold_over_libbpf": round(cold[0] / lib_wall, 2), "warm_over_libbpf": round(warm[0] / lib_wall, 3),
        "wrong_cells": wrong, "warm_equals_cold": same, "generated_s": round(made, 1),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{n} kernels (tests/fleet_kernels.py; made or found in {made:.1f} s), "
          f"sigbpf with {result['jobs']} worker(s)")
    print(f"  sigbpf check, cold : {cold[0]:7.2f} s  {n / cold[0]:7.1f} kernels/s  "
          f"peak {result['cold_peak_mb']:.0f} MB (parent + workers)  CPU {cold[3]:.1f} s")
    print(f"  sigbpf check, warm : {warm[0]:7.2f} s  {n / warm[0]:7.1f} kernels/s  "
          f"peak {result['warm_peak_mb']:.0f} MB  CPU {warm[3]:.1f} s")
    print(f"  libbpf via ctypes  : {lib_wall:7.2f} s  {n / lib_wall:7.1f} kernels/s  CPU {lib_cpu:.1f} s  "
          f"peak {result['libbpf_peak_mb']:.0f} MB (btf__parse + {len(LIBBPF_NAMES)} "
          f"btf__find_by_name_kind per kernel, one process)")
    print(f"  ratio cold/libbpf {result['cold_over_libbpf']:.2f}, warm/libbpf {result['warm_over_libbpf']:.3f} "
          f"(wall); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: other work shares them")
    print(f"  answers: {wrong} cell(s) differ from the known answers; warm report "
          f"{'equals' if same else 'DIFFERS FROM'} cold")
    return 0 if wrong == 0 and same else 1


if __name__ == "__main__":
    sys.exit(main())
