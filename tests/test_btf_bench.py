"""The lookup benchmark runs and both sides agree (no timing assertion: the numbers are reported)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_bench_btf_lookup_runs_and_agrees(kernel):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "btf_lookup.py"), "--runs", "1", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr  # the bench exits non-zero when the found ids differ
    result = json.loads(proc.stdout)
    assert result["names"] == 100
    assert result["sigbpf_median_ms"] > 0 and result["libbpf_median_ms"] > 0
    assert result["ratio"] > 0
