"""Benchmark: load vmlinux BTF and find 100 FUNCs by name, sigbpf vs libbpf via ctypes.

Each side runs as a whole fresh Python process (interpreter start included),
several times, interleaved, in one run.  Printed: the median wall time of each
side, the ratio sigbpf/libbpf (target <= 1.0) and the peak RSS of each child.

    python3 bench/btf_lookup.py [--btf /sys/kernel/btf/vmlinux] [--runs 11] [--json]

Before timing, each side runs once untimed (page cache, ``.pyc`` files:
``PYTHONDONTWRITEBYTECODE`` is dropped for the children, as for an installed
tool).  The 100 names are FUNCs spread evenly over the id range (chosen once by the
parent), so a linear search (libbpf 1.1's ``btf__find_by_name_kind``) pays
its average cost.  Both children check every id they find against the other
side's answers, so the bench also asserts that the two agree.
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


def pick_names(btf_path: str, count: int) -> list[str]:
    """*count* FUNC names spread evenly over the FUNC ids of the BTF."""
    sys.path.insert(0, str(ROOT))
    from sigbpf.btf import BTF, Kind

    btf = BTF.from_file(btf_path, validate=False)
    ids = btf.ids_of_kind(Kind.FUNC)
    step = max(1, len(ids) // count)
    return [btf.name_of(i) for i in ids[step // 2::step][:count]]


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
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{len(names)} FUNC look-ups in {args.btf}, {args.runs} runs each, whole process:")
        print(f"  libbpf (ctypes): median {result['libbpf_median_ms']:7.1f} ms  peak RSS {rss['libbpf']} KiB")
        print(f"  sigbpf         : median {result['sigbpf_median_ms']:7.1f} ms  peak RSS {rss['sigbpf']} KiB")
        print(f"  ratio sigbpf/libbpf: {result['ratio']:.3f} (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
