"""Real BPF programs nobody in this project wrote: what libbpf loads, sigbpf loads too.

The corpus (bench/corpus/build_corpus.py) is the kernel's BPF selftests,
compiled from Debian's linux-source-6.12 against this kernel's vmlinux.h, and
the BPF objects that Debian packages ship.  CI measures the subset named in
bench/corpus/subset.txt (kprobe, tracepoint, fentry/fexit, tp_btf, lsm, xdp,
tc, cgroup, iter, kconfig and ksym users, perf event arrays, ring buffers,
map-in-map, prog arrays, struct_ops, and every Debian-shipped object),
building only that part of the corpus when the whole of it is not cached
(~/.cache/sigbpf/corpus, or $SIGBPF_CACHE).  For each subset entry: if libbpf
(``bpftool prog loadall``) loads an object, ``sigbpf load`` must load it too.
Objects that neither loads are reported (a warning with both reasons), not
failed.  The full table: ``python3 bench/corpus/table.py``.

``KNOWN_GAPS`` lists the objects that libbpf loads and sigbpf does not yet,
with the cause; they are expected failures (xfail) until the loader learns
the feature -- delete an entry when it passes (XPASS).  With
``SIGBPF_CORPUS_STRICT=1`` they fail like any other gap.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS_TOOLS = ROOT / "bench" / "corpus"
SUBSET = CORPUS_TOOLS / "subset.txt"
sys.path.insert(0, str(CORPUS_TOOLS))
import build_corpus  # noqa: E402
import table  # noqa: E402

PATTERNS = build_corpus.parse_names("@" + str(SUBSET))
STRICT = os.environ.get("SIGBPF_CORPUS_STRICT") == "1"
REQUIRE = os.environ.get("SIGBPF_REQUIRE_KERNEL") == "1"
TIMEOUT = 120.0

#: libbpf loads these, sigbpf does not yet: name -> cause (as table.py groups it).
KNOWN_GAPS: dict[str, str] = {}


def _unavailable(why: str) -> None:
    if REQUIRE:
        pytest.fail(f"SIGBPF_REQUIRE_KERNEL=1 but {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def corpus(kernel) -> Path:
    """The corpus directory, with at least the subset built."""
    if os.geteuid() != 0:
        _unavailable("the corpus needs root (apt-get download, bpffs mounts, bpf())")
    missing = [t for t in (build_corpus.CLANG, "bpftool", "apt-get", "dpkg-deb", "unshare")
               if shutil.which(t) is None and not (t == "bpftool" and Path(table.BPFTOOL).exists())]
    if missing:
        _unavailable(f"missing {', '.join(missing)} (bash scripts/deps.sh installs them)")
    try:
        return build_corpus.build(PATTERNS, jobs=os.cpu_count() or 2)
    except SystemExit as exc:  # build_corpus says why in one line
        _unavailable(f"cannot build the corpus: {exc}")


@pytest.fixture(scope="module")
def manifest(corpus: Path) -> dict:
    return build_corpus.load_manifest(corpus)


@pytest.fixture(scope="module")
def rows(corpus: Path, manifest: dict) -> dict[str, table.Row]:
    """Every subset object loaded by libbpf and by sigbpf (two at a time)."""
    objects = table.select(manifest["objects"], "@" + str(SUBSET))
    measured = table.run_table(objects, corpus, jobs=2, timeout=TIMEOUT, stream=None)
    print(table.summary_text(measured))
    return {r.name: r for r in measured}


def _matching(names, pattern: str) -> list[str]:
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_sigbpf_loads_what_libbpf_loads(pattern: str, rows: dict, manifest: dict) -> None:
    names = _matching(rows, pattern)
    if not names:
        skipped = [s for s in manifest["skipped"] if fnmatch.fnmatchcase(s["name"], pattern)]
        assert skipped, f"{pattern}: not in the corpus (fix bench/corpus/subset.txt)"
        # Nothing libbpf could open (or it does not compile here): nothing to compare.
        warnings.warn(f"corpus {pattern}: not measured: "
                      + "; ".join(f"{s['name']}: {s['stage']}: {s['reason']}" for s in skipped[:3]))
        return
    gaps, neither = [], []
    for name in names:
        r = rows[name]
        if r.libbpf.ok and not r.sigbpf.ok:
            gaps.append(r)
        elif not r.libbpf.ok and not r.sigbpf.ok:
            neither.append(r)
    if neither:
        warnings.warn(f"corpus {pattern}: neither libbpf nor sigbpf loads "
                      + "; ".join(f"{r.name} (libbpf: {r.libbpf.reason[:120]} | sigbpf: "
                                  f"{r.sigbpf.reason[:120]})" for r in neither))
    unknown = [r for r in gaps if STRICT or r.name not in KNOWN_GAPS]
    assert not unknown, "libbpf loads, sigbpf does not:\n" + "\n".join(
        f"  {r.name}: [{r.sigbpf.cause}] {r.sigbpf.reason}" for r in unknown)
    if gaps:
        pytest.xfail("known gap: " + "; ".join(f"{r.name}: {KNOWN_GAPS[r.name]}" for r in gaps))


def test_harness_loads_something(rows: dict) -> None:
    """The comparison means something: both loaders load the plain tracepoint and XDP programs."""
    for name in ("test_tracepoint", "test_xdp"):
        r = rows[name]
        assert r.libbpf.ok, f"{name}: libbpf (bpftool prog loadall) fails: {r.libbpf.reason}"
        assert r.sigbpf.ok, f"{name}: sigbpf load fails: {r.sigbpf.reason}"
    totals = table.totals(list(rows.values()))
    assert totals["libbpf_loads"] >= totals["objects"] // 3, totals


def test_the_signed_loader_loads_what_sigbpf_load_loads(rows: dict, corpus: Path) -> None:
    """Issue 8's rule, on real programs: every subset object that ``sigbpf load`` loads
    directly loads through ``sigbpf loader`` (a loader program for the running kernel's
    protocol, run by ``sigbpf load LOADER``) with the same number of programs back."""
    direct = {name: r.sigbpf for name, r in rows.items() if r.sigbpf.ok}
    assert direct, "sigbpf loads nothing of the subset"
    differ = []
    for name, outcome in sorted(direct.items()):
        via = table.load_sigbpf(corpus / rows[name].path, TIMEOUT, corpus, via_loader=True)
        if not via.ok or via.programs != outcome.programs:
            differ.append(f"  {name}: directly {outcome.programs} program(s); through the loader: "
                          + (f"{via.programs} program(s)" if via.ok else via.reason))
    assert not differ, "loads directly, not the same through the loader:\n" + "\n".join(differ)
