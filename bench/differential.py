"""Differential test, as a table: sigbpf's model of the seed's pass vs the patched kernel.

Generates the differential corpus (``tests/differential``: 10,000 syscall
programs with PROG_BTF calls by default), boots the seed test kernel
(``testbench.kernel``, built on first use) once under qemu/TCG, loads every
program there through sigbpf's ``BPF_PROG_LOAD``, predicts each with
``resolve_kfunc_calls`` and prints the agreement table: per case class the
number of programs, how many agree, are explained (a named disagreement,
docs/FINDINGS.md) or disagree, how many the kernel accepted, and the median
wall time of one load in the guest.  Then the times: a load in the guest
(accepted / refused), the same corpus loaded into the host's own kernel in
the same run (6.18, no seed: every program refused at its first PROG_BTF
call) as the reference, and the model's prediction per program on the host.

    python3 bench/differential.py [--seed N] [--count N] [--flavour small|extra] [--json]

Exit status 1 when a disagreement is unexplained.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from differential.compare import render, table, verdicts  # noqa: E402
from differential.harness import load_corpus, measure_in_vm  # noqa: E402
from differential.programs import COUNT, SEED, generate  # noqa: E402


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    q = statistics.quantiles(values, n=20) if len(values) > 1 else values * 19
    return (f"median {statistics.median(values) * 1e3:.2f} ms, mean {statistics.fmean(values) * 1e3:.2f}"
            f" ms, p95 {q[18] * 1e3:.2f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--count", type=int, default=COUNT)
    ap.add_argument("--flavour", default="small", help="seed kernel flavour (small, extra)")
    ap.add_argument("--json", action="store_true", help="print the table and times as JSON")
    args = ap.parse_args()

    from testbench.kernel import seed_kernel

    kernel = seed_kernel(args.flavour, progress=sys.stderr)
    t0 = time.perf_counter()
    corpus = generate(args.seed, args.count)
    generate_s = time.perf_counter() - t0
    print(f"corpus: {len(corpus.cases)} programs, seed {args.seed}, digest {corpus.digest()[:16]} "
          f"({generate_s:.1f} s)", file=sys.stderr)
    m = measure_in_vm(kernel, args.seed, args.count)
    if m.digest != corpus.digest():
        print("error: the guest generated another corpus", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    results = verdicts(corpus, m.observed, m.vmlinux)
    predict_s = time.perf_counter() - t0
    host = load_corpus(corpus)

    accepted = [o.seconds for o in m.observed if o.accepted]
    refused = [o.seconds for o in m.observed if not o.accepted]
    host_all = [o.seconds for o in host]
    guest_median = statistics.median(o.seconds for o in m.observed)
    unexplained = [v for v in results if not v.agrees and v.explained_by is None]
    explained = sorted({v.explained_by for v in results if v.explained_by})
    if args.json:
        print(json.dumps({
            "kernel": m.kernel, "seed": args.seed, "programs": len(results),
            "rows": [{"class": r.klass.value, "programs": r.programs, "agree": r.agree,
                      "explained": r.explained, "disagree": r.unexplained,
                      "accepted": r.accepted, "median_us": round(r.median_us)}
                     for r in table(results)],
            "guest_load_median_s": guest_median, "guest_loads_s": m.load_seconds,
            "vm_s": m.vm_seconds, "host_load_median_s": statistics.median(host_all),
            "explained": explained, "predict_s": predict_s}, indent=1))
    else:
        print(f"kernel {m.kernel} (qemu/TCG), {len(results)} programs, one boot\n")
        print(render(results))
        print("\nexplained: " + (", ".join(explained) or "none"))
        print(f"\nguest, one BPF_PROG_LOAD through sigbpf (a refusal: the load without log and "
              f"the retry with log_level 1):\n  accepted: {_ms(accepted)}\n  refused:  "
              f"{_ms(refused)}\n  all {len(m.observed)} loads: {m.load_seconds:.1f} s; "
              f"the VM run (boot, generation, loads, result): {m.vm_seconds:.1f} s")
        print(f"host 6.18 (reference, same corpus, same run; no seed, all refused): "
              f"{_ms(host_all)}\n  guest/host median ratio: "
              f"{guest_median / statistics.median(host_all):.1f}")
        print(f"model (host): {predict_s / len(results) * 1e6:.0f} µs a program "
              f"(parse the kernel BTF, predict {len(results)} programs: {predict_s:.1f} s)")
    for v in unexplained[:20]:
        print("UNEXPLAINED " + v.describe(), file=sys.stderr)
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
