"""The load benchmark runs (no timing assertion: the numbers are reported)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_bench_load_runs(kernel):
    example = ROOT / "examples" / "task_iter.bpf.o"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "load.py"), "--runs", "1",
                           "--object", str(example), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr  # the bench exits non-zero when a load fails
    result = json.loads(proc.stdout)
    times = result["objects"]["task_iter.bpf.o"]
    assert times["bpftool_median_ms"] > 0 and times["python -m sigbpf_median_ms"] > 0
    assert result["ratio"] > 0 and result["python_pass_ms"] > 0
