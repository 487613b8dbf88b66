"""Benchmark: load vmlinux BTF and find 100 FUNCs by name, sigbpf vs libbpf via ctypes.

Each side runs as a whole fresh Python process (interpreter start included),
several times, interleaved, in one run.  Printed: the median wall time of each
side, the ratio sigbpf/libbpf (target <= 1.0) and the peak RSS of each child.

    python3 bench/btf_lookup.py [--btf /sys/kernel/btf/vmlinux] [--runs 11] [--json] [--breakdown]

Before timing, each side runs once untimed (page cache, ``.pyc`` files:
``PYTHONDONTWRITEBYTECODE`` is dropped for the children, as for an installed
tool).  The 100 names are FUNCs spread evenly over the id range (chosen once by the
parent), so a linear search (libbpf 1.1's ``btf__find_by_name_kind``) pays
its average cost.  Both children check every id they find against the other
side's answers, so the bench also asserts that the two agree.

``--breakdown`` adds where the time goes inside each child (median over the
runs, CPU time of the child process by ``time.process_time``): import, load
(``BTF.from_file`` / ``btf__parse``), the first look-up (for sigbpf: building
the FUNC name index) and the other 99, and the rest (interpreter start and
exit) as whole-process CPU time minus those.  These are separate runs of
instrumented children: the timed runs above are not changed by it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SIGBPF_CHILD = r"""
import sys
from sigbpf.btf import BTF, Kind
names = open(sys.argv[2]).read().split()
btf = BTF.from_file(sys.argv[1], validate=False)
find = btf.find_by_name_kind
ids = [find(n, Kind.FUNC) for n in names]
print(" ".join(map(str, ids)))
"""

LIBBPF_CHILD = r"""
import ctypes, sys
lib = ctypes.CDLL("libbpf.so.1")
lib.btf__parse.restype = ctypes.c_void_p
lib.btf__parse.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
lib.btf__find_by_name_kind.restype = ctypes.c_int
lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
names = open(sys.argv[2]).read().split()
btf = lib.btf__parse(sys.argv[1].encode(), None)
if not btf:
    sys.exit("btf__parse failed")
find = lib.btf__find_by_name_kind
ids = [find(btf, n.encode(), 12) for n in names]
print(" ".join(map(str, ids)))
"""


SIGBPF_BREAKDOWN_CHILD = r"""
import time, sys, json
t0 = time.process_time()
from sigbpf.btf import BTF, Kind
t1 = time.process_time()
names = open(sys.argv[2]).read().split()
btf = BTF.from_file(sys.argv[1], validate=False)
t2 = time.process_time()
find = btf.find_by_name_kind
ids = [find(names[0], Kind.FUNC)]
t3 = time.process_time()
ids += [find(n, Kind.FUNC) for n in names[1:]]
t4 = time.process_time()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "first lookup": t3 - t2, "other lookups": t4 - t3}))
"""

LIBBPF_BREAKDOWN_CHILD = r"""
import time, sys, json
t0 = time.process_time()
import ctypes
lib = ctypes.CDLL("libbpf.so.1")
lib.btf__parse.restype = ctypes.c_void_p
lib.btf__parse.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
lib.btf__find_by_name_kind.restype = ctypes.c_int
lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
t1 = time.process_time()
names = open(sys.argv[2]).read().split()
btf = lib.btf__parse(sys.argv[1].encode(), None)
t2 = time.process_time()
find = lib.btf__find_by_name_kind
ids = [find(btf, names[0].encode(), 12)]
t3 = time.process_time()
ids += [find(btf, n.encode(), 12) for n in names[1:]]
t4 = time.process_time()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "first lookup": t3 - t2, "other lookups": t4 - t3}))
"""


def breakdown(btf_path: str, names_file: str, runs: int) -> dict[str, dict[str, float]]:
    """{side: {stage: median ms}} from instrumented children (CPU time), plus whole-process CPU."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    result: dict[str, dict[str, float]] = {}
    for side, code in (("libbpf", LIBBPF_BREAKDOWN_CHILD), ("sigbpf", SIGBPF_BREAKDOWN_CHILD)):
        stages: dict[str, list[float]] = {}
        for _ in range(runs):
            proc = subprocess.Popen([sys.executable, "-c", code, btf_path, names_file],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
            _, status, usage = os.wait4(proc.pid, 0)
            out = proc.stdout.read() if proc.stdout else ""
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"breakdown child failed: {proc.stderr.read() if proc.stderr else ''}")
            times = json.loads(out)
            times["start and exit"] = usage.ru_utime + usage.ru_stime - sum(times.values())
            for stage, seconds in times.items():
                stages.setdefault(stage, []).append(seconds)
        result[side] = {stage: round(statistics.median(v) * 1000, 2) for stage, v in stages.items()}
    return result


PICK_NAMES_CHILD = r"""
import sys
from sigbpf.btf import BTF, Kind
btf = BTF.from_file(sys.argv[1], validate=False)
ids = btf.ids_of_kind(Kind.FUNC)
count = int(sys.argv[2])
step = max(1, len(ids) // count)
print("\n".join(btf.name_of(i) for i in ids[step // 2::step][:count]))
"""


def pick_names(btf_path: str, count: int) -> list[str]:
    """*count* FUNC names spread evenly over the FUNC ids of the BTF.

    Picked in a child process: a child's peak RSS (``ru_maxrss``) starts at
    the RSS its parent had when it forked, so a parent that had loaded the
    BTF itself would report its own size as the children's.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", PICK_NAMES_CHILD, btf_path, str(count)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def run_child(code: str, btf_path: str, names_file: str) -> tuple[float, str, int]:
    """(wall seconds, stdout, peak RSS in KiB) of one child process."""
    # Like an installed tool: bytecode is cached (a warm-up run writes it).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, btf_path, names_file],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}): {err.strip()}")
    return wall, out.strip(), usage.ru_maxrss


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--btf", default="/sys/kernel/btf/vmlinux")
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--names", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--breakdown", action="store_true", help="also time the stages inside each child")
    args = ap.parse_args(argv)

    names = pick_names(args.btf, args.names)
    with tempfile.NamedTemporaryFile("w", suffix=".names", delete=False) as f:
        f.write("\n".join(names))
        names_file = f.name
    try:
        times: dict[str, list[float]] = {"sigbpf": [], "libbpf": []}
        rss: dict[str, int] = {"sigbpf": 0, "libbpf": 0}
        answers: dict[str, str] = {}
        for code in (LIBBPF_CHILD, SIGBPF_CHILD):  # warm-up: page cache, .pyc files
            run_child(code, args.btf, names_file)
        for _ in range(args.runs):
            for side, code in (("libbpf", LIBBPF_CHILD), ("sigbpf", SIGBPF_CHILD)):
                wall, out, maxrss = run_child(code, args.btf, names_file)
                times[side].append(wall)
                rss[side] = max(rss[side], maxrss)
                answers[side] = out
        stages = breakdown(args.btf, names_file, args.runs) if args.breakdown else None
    finally:
        os.unlink(names_file)
    if answers["sigbpf"] != answers["libbpf"]:
        raise SystemExit("sigbpf and libbpf found different ids")
    med = {side: statistics.median(v) for side, v in times.items()}
    result = {
        "btf": args.btf, "names": len(names), "runs": args.runs,
        "sigbpf_median_ms": round(med["sigbpf"] * 1000, 1),
        "libbpf_median_ms": round(med["libbpf"] * 1000, 1),
        "ratio": round(med["sigbpf"] / med["libbpf"], 3),
        "sigbpf_peak_rss_kib": rss["sigbpf"], "libbpf_peak_rss_kib": rss["libbpf"],
    }
    if stages is not None:
        result["breakdown_cpu_ms"] = stages
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{len(names)} FUNC look-ups in {args.btf}, {args.runs} runs each, whole process:")
        print(f"  libbpf (ctypes): median {result['libbpf_median_ms']:7.1f} ms  peak RSS {rss['libbpf']} KiB")
        print(f"  sigbpf         : median {result['sigbpf_median_ms']:7.1f} ms  peak RSS {rss['sigbpf']} KiB")
        print(f"  ratio sigbpf/libbpf: {result['ratio']:.3f} (target <= 1.0)")
        if stages is not None:
            print("  breakdown (median CPU ms per child):")
            for side, times in stages.items():
                print(f"    {side}: " + ", ".join(f"{stage} {ms:.1f}" for stage, ms in times.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
