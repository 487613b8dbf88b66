"""Benchmark: every CO-RE relocation of an object against one kernel's BTF, sigbpf vs libbpf (bpftool).

For each target kernel (the corpus's Debian 6.1 and 6.12, and the running
kernel), the same work on both sides, measured in one run:

* **sigbpf**, in one warm process (the fleet check's workers are long-lived):
  ``BTF.from_file(target)`` then ``relocate_all`` over the relocations of
  ``tests/progs/core_kinds.c`` (compiled here with clang-19); printed split
  into *parse* and *relocate* (the candidate index is built inside
  *relocate*, once per kernel).  With ``sigbpf.fleet.scanbtf`` present, the
  same again with :class:`ScanBTF` as the target's class.
* **libbpf**: ``bpftool gen min_core_btf TARGET OUT OBJECT`` -- libbpf's
  ``btf__parse`` and ``bpf_core_calc_relo_insn`` for every relocation of the
  object (its own candidate search), whole process.

Printed: the median of ``--runs`` runs per kernel and side (ms), and the ratio
sigbpf (parse + relocate) / bpftool.

    python3 bench/core_relo.py [--runs 9] [--json]
"""

from __future__ import annotations

import argparse
import json
import lzma
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CORPUS = ROOT / "tests" / "data" / "corpus"
PROGS = ROOT / "tests" / "progs"
CLANG = shutil.which("clang-19") or shutil.which("clang")
BPFTOOL = shutil.which("bpftool") or "/usr/sbin/bpftool"
KERNELS = ("6.1.0-56-amd64", "6.12.95+deb12-amd64")


def build(out: Path) -> tuple[Path, dict[str, Path]]:
    """The object and the target BTF files (corpus kernels decompressed, the running one)."""
    if CLANG is None:
        raise SystemExit("clang-19 is not installed (scripts/deps.sh installs it)")
    include = out / "include"
    include.mkdir()
    from sigbpf.btf import BTF
    from sigbpf.btf.cdump import dump_c

    (include / "vmlinux.h").write_text(dump_c(BTF.load_vmlinux()))  # bpftool's vmlinux.h, by sigbpf
    obj = out / "core_kinds.o"
    subprocess.run([CLANG, "-target", "bpf", "-g", "-O2", "-I", str(include), "-I", str(PROGS),
                    "-c", str(PROGS / "core_kinds.c"), "-o", str(obj)], check=True, capture_output=True)
    targets = {"running": Path("/sys/kernel/btf/vmlinux")}
    for name in KERNELS:
        path = out / f"{name}.btf"
        path.write_bytes(lzma.decompress((CORPUS / f"{name}.btf.xz").read_bytes()))
        targets[name] = path
    return obj, targets


def time_sigbpf(cls, found, local, target: Path) -> tuple[float, float, int]:
    """(parse s, relocate s, relocations) of one kernel."""
    from sigbpf.btf.core import relocate_all

    t0 = time.perf_counter()
    btf = cls.from_file(target, validate=False)
    t1 = time.perf_counter()
    outcomes = relocate_all(local, found.relocations, btf, rules=found.rules)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, len(outcomes)


def time_bpftool(obj: Path, target: Path, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([BPFTOOL, "gen", "min_core_btf", str(target), str(out), str(obj)],
                   check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from sigbpf.btf import BTF
    from sigbpf.btf.core import core_relocations
    from sigbpf.elf import BPFObject

    classes = {"BTF": BTF}
    try:
        from sigbpf.fleet.scanbtf import ScanBTF
        classes["ScanBTF"] = ScanBTF
    except ImportError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        obj, targets = build(Path(tmp))
        found = core_relocations(BPFObject.from_file(obj))
        local = found.parse_btf()
        results: dict[str, dict[str, float]] = {}
        for name, target in targets.items():
            time_bpftool(obj, target, Path(tmp) / "min.btf")  # warm the page cache
            for cls in classes.values():
                time_sigbpf(cls, found, local, target)
            runs: dict[str, list[float]] = {"bpftool": []}
            for _ in range(args.runs):  # interleaved
                runs["bpftool"].append(time_bpftool(obj, target, Path(tmp) / "min.btf"))
                for label, cls in classes.items():
                    parse, relocate, count = time_sigbpf(cls, found, local, target)
                    runs.setdefault(f"{label} parse", []).append(parse)
                    runs.setdefault(f"{label} relocate", []).append(relocate)
                    runs.setdefault(label, []).append(parse + relocate)
            results[name] = {k: round(statistics.median(v) * 1000, 1) for k, v in runs.items()}
    for name, row in results.items():
        for label in classes:
            row[f"ratio {label}/bpftool"] = round(row[label] / row["bpftool"], 2)
    if args.json:
        print(json.dumps({"relocations": len(found.relocations), "runs": args.runs,
                          "kernels": results}, indent=2))
        return 0
    print(f"{len(found.relocations)} CO-RE relocations (tests/progs/core_kinds.c), median of "
          f"{args.runs} runs, ms")
    for name, row in results.items():
        parts = [f"bpftool {row['bpftool']:.1f}"]
        for label in classes:
            parts.append(f"{label} {row[label]:.1f} (parse {row[label + ' parse']:.1f} + relocate "
                         f"{row[label + ' relocate']:.1f}) ratio {row[f'ratio {label}/bpftool']:.2f}")
        print(f"{name:22} " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
