"""Benchmark: sigbpf's loader vs libbpf's (``bpftool gen skeleton -L``), side by side, one run.

For the six kfunc test programs (``tests/progs/kfunc_*.c``, compiled here with
clang-19 as the tests compile them), both loaders of the same object:

* size: the loader's instruction count and its data blob's bytes (sigbpf: the
  protocol v2 loader, the one skel_internal.h 1.1 runs; v1 adds 29 insns of hash
  check; libbpf 1.1: ``opts.insns_sz / 8`` and ``opts.data_sz`` of bpftool 7.1's
  header), ratio sigbpf/bpftool;
* load time: a C program compiled (gcc -O2, header-only, no -lbpf) against each
  light skeleton (``sigbpf gen skeleton`` / ``bpftool gen skeleton -L``) and Debian's
  libbpf-dev 1.1 ``skel_internal.h``; it times ``NAME__open_and_load()`` in-process
  (``bpf_load_and_run``: blob map, loader ``BPF_PROG_LOAD``, ``BPF_PROG_RUN``) and the
  whole process is timed too; then it runs the program once (the retval is printed
  as a check).  Median of N runs, the two sides interleaved; ratio sigbpf/bpftool.

    python3 bench/loader.py [--runs 21]

Measured on this machine (Linux 6.18, 2 CPUs shared with other jobs, root,
bpftool 7.1 / libbpf 1.1, gcc 12; ``--runs 21``; times are medians in ms; each
cell is sigbpf, bpftool, then the ratio sigbpf/bpftool):

==============  ==============  =================  ================  ==================
program         loader insns    blob bytes         open_and_load ms  whole process ms
==============  ==============  =================  ================  ==================
kfunc_task      189 165  1.15   26808 28072  0.95  0.85 0.88  0.97   2.09 2.14  0.98
kfunc_rcu_maps  380 455  0.84    2832  4128  0.69  0.78 0.87  0.90   1.89 1.99  0.95
kfunc_iter      234 212  1.10    1840  3104  0.59  0.83 0.82  1.01   2.01 1.93  1.04
kfunc_cpumask   264 225  1.17    1808  3064  0.59  1.01 0.92  1.11   2.28 2.12  1.08
kfunc_obj_new   189 165  1.15    1264  2528  0.50  0.59 0.70  0.84   1.79 1.92  0.93
kfunc_weak      243 214  1.14    1352  2616  0.52  1.19 0.81  1.46   2.38 1.97  1.21
all             1499 1436 1.04  35904 43512  0.83  5.25 4.99  1.05  12.44 12.06 1.03
==============  ==============  =================  ================  ==================

Ratios over all six: insns 1.04, blob 0.83, load 1.05, whole process 1.03 -- the
same cost within this machine's noise (single programs swing +-0.3 between runs).
Why the sizes differ was not analysed.  The v1
loaders (with the 29-insn hash check, not runnable under skel_internal.h 1.1) are
218, 409, 263, 293, 218, 272 insns.  Retvals (sigbpf/bpftool): kfunc_rcu_maps
1142/1142, kfunc_iter 45/45, kfunc_cpumask 1/1, kfunc_obj_new 42/42, kfunc_task
the pid/the pid, kfunc_weak 1/0 (libbpf 1.1's loader leaves the weak kfunc's
``bpf_ksym_exists`` false, as tests/test_loadergen.py found).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PROGS = ROOT / "tests" / "progs"
CLANG = shutil.which("clang-19") or shutil.which("clang")
GCC = shutil.which("gcc")
BPFTOOL = shutil.which("bpftool") or "/usr/sbin/bpftool"
#: object -> its program (tests/test_loadergen.py's PROGRAMS)
PROGRAMS = {"kfunc_task": "task_lookup", "kfunc_rcu_maps": "rcu_maps", "kfunc_iter": "iter_sum",
            "kfunc_cpumask": "cpumask_roundtrip", "kfunc_obj_new": "obj_new_local",
            "kfunc_weak": "weak_kfuncs"}

MAIN_C = r'''#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include "@HEADER@"

int main(void)
{
	struct { int pid; int n; } args = { getpid(), 10 };
	struct @NAME@ *skel;
	union bpf_attr attr;
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	skel = @NAME@__open_and_load();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!skel || skel->progs.@PROG@.prog_fd < 0) {
		fprintf(stderr, "open_and_load: %s\n", strerror(errno));
		return 2;
	}
	memset(&attr, 0, sizeof(attr));
	attr.test.prog_fd = skel->progs.@PROG@.prog_fd;
	attr.test.ctx_in = (long)&args;
	attr.test.ctx_size_in = sizeof(args);
	if (syscall(__NR_bpf, BPF_PROG_RUN, &attr, sizeof(attr)) < 0) {
		fprintf(stderr, "BPF_PROG_RUN: %s\n", strerror(errno));
		return 4;
	}
	printf("retval %d\nload_ns %lld\n", (int)attr.test.retval,
	       (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
	@NAME@__destroy(skel);
	return 0;
}
'''


def build(work: Path, name: str, prog: str) -> dict[str, object]:
    from sigbpf.artifact.build import build_from_file
    from sigbpf.loadergen.generate import generate
    from sigbpf.loadergen.skeleton import skeleton_header

    obj = work / f"{name}.o"
    subprocess.run([CLANG, "-target", "bpf", "-g", "-O2", "-D__TARGET_ARCH_x86", "-I", str(work),
                    "-I", str(PROGS), "-c", str(PROGS / f"{name}.c"), "-o", str(obj)],
                   check=True, capture_output=True, text=True)
    art = build_from_file(obj)
    v2, v1 = generate(art, 2), generate(art, 1)
    row: dict[str, object] = {"name": name, "insns": (len(v2.insns), None), "v1_insns": len(v1.insns),
                              "blob": (len(v2.blob), None)}
    for side in ("sigbpf", "bpftool"):
        d = work / side
        d.mkdir(exist_ok=True)
        if side == "sigbpf":
            text = skeleton_header(v2, name)
        else:
            text = subprocess.run([BPFTOOL, "gen", "skeleton", "-L", str(obj), "name", name],
                                  check=True, capture_output=True, text=True).stdout
            insns_sz = int(re.search(r"opts\.insns_sz = (\d+);", text).group(1))
            data_sz = int(re.search(r"opts\.data_sz = (\d+);", text).group(1))
            row["insns"] = (row["insns"][0], insns_sz // 8)
            row["blob"] = (row["blob"][0], data_sz)
        (d / f"{name}.lskel.h").write_text(text)
        (d / f"{name}_main.c").write_text(MAIN_C.replace("@HEADER@", f"{name}.lskel.h")
                                          .replace("@NAME@", name).replace("@PROG@", prog))
        cc = subprocess.run([GCC, "-O2", "-I", str(d), "-o", str(d / f"{name}_main"),
                             str(d / f"{name}_main.c")], capture_output=True, text=True)
        if cc.returncode != 0:
            raise SystemExit(f"{side} {name}: gcc failed: {cc.stderr.strip()[:2000]}")
    return row


def run_once(exe: Path) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    wall = (time.perf_counter() - t0) * 1e3
    if proc.returncode != 0:
        raise SystemExit(f"{exe}: exit {proc.returncode}: {proc.stderr.strip()}")
    load_ns = int(re.search(r"load_ns (\d+)", proc.stdout).group(1))
    return load_ns / 1e6, wall, int(re.search(r"retval (-?\d+)", proc.stdout).group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args(argv)
    if CLANG is None or GCC is None:
        raise SystemExit("clang-19 and gcc are needed")
    with tempfile.TemporaryDirectory(prefix="sigbpf-bench-loader-") as tmp:
        work = Path(tmp)
        (work / "vmlinux.h").write_text(subprocess.run(
            [BPFTOOL, "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
            check=True, capture_output=True, text=True).stdout)
        rows = [build(work, name, prog) for name, prog in PROGRAMS.items()]
        for row in rows:
            times = {"sigbpf": ([], []), "bpftool": ([], [])}
            retvals = {}
            for side in ("sigbpf", "bpftool"):  # warm-up, untimed
                run_once(work / side / f"{row['name']}_main")
            for _ in range(args.runs):
                for side in ("sigbpf", "bpftool"):
                    load, wall, ret = run_once(work / side / f"{row['name']}_main")
                    times[side][0].append(load)
                    times[side][1].append(wall)
                    retvals[side] = ret
            row["load"] = tuple(statistics.median(times[s][0]) for s in ("sigbpf", "bpftool"))
            row["proc"] = tuple(statistics.median(times[s][1]) for s in ("sigbpf", "bpftool"))
            row["retval"] = (retvals["sigbpf"], retvals["bpftool"])
    head = (f"{'program':<15} {'insns':>13} {'ratio':>6} {'blob bytes':>13} {'ratio':>6} "
            f"{'load ms':>15} {'ratio':>6} {'process ms':>15} {'ratio':>6}")
    print(f"{'':<15} {'sigbpf/bpftool':>13}")
    print(head)
    tot = {k: [0.0, 0.0] for k in ("insns", "blob", "load", "proc")}
    for row in rows:
        cells = [f"{row['name']:<15}"]
        for key, fmt in (("insns", "{:>6}"), ("blob", "{:>6}"), ("load", "{:>7.2f}"),
                         ("proc", "{:>7.2f}")):
            ours, theirs = row[key]
            tot[key][0] += ours
            tot[key][1] += theirs
            width = 13 if key in ("insns", "blob") else 15
            pair = (fmt.format(ours) + " " + fmt.format(theirs)).strip()
            cells.append(f"{pair:>{width}} {ours / theirs:>6.2f}")
        print(" ".join(cells))
    cells = [f"{'all':<15}"]
    for key in ("insns", "blob", "load", "proc"):
        ours, theirs = tot[key]
        width = 13 if key in ("insns", "blob") else 15
        pair = f"{ours:.0f} {theirs:.0f}" if key in ("insns", "blob") else f"{ours:.2f} {theirs:.2f}"
        cells.append(f"{pair:>{width}} {ours / theirs:>6.2f}")
    print(" ".join(cells))
    print("ratios (sigbpf/bpftool, all programs): "
          + ", ".join(f"{k} {tot[k][0] / tot[k][1]:.2f}" for k in tot))
    print("sigbpf v1 loader insns (+ hash check): "
          + ", ".join(f"{r['name']} {r['v1_insns']}" for r in rows))
    print("retvals (sigbpf / bpftool): "
          + ", ".join(f"{r['name']} {r['retval'][0]}/{r['retval'][1]}" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
