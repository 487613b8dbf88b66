"""The fleet check's cache: results by content, file digests remembered by stat, ``--no-cache``.

Driven through :class:`sigbpf.fleet.run.FleetRun` (its ``cached`` count says
how many kernels the cache answered) and the CLI, on the corpus kernels.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from sigbpf.fleet.needs import ArtifactNeeds
from sigbpf.fleet.run import FleetRun
from sigbpf.fleet.sources import expand

K61, K612 = "6.1.0-56-amd64", "6.12.95+deb12-amd64"


@pytest.fixture(scope="module")
def needs(bpf_object):
    path = bpf_object("fleet_all")
    return ArtifactNeeds.from_input(path.read_bytes(), str(path))


@pytest.fixture
def fleet(tmp_path, corpus_btf):
    d = tmp_path / "fleet"
    d.mkdir()
    for k in (K61, K612):
        shutil.copy(corpus_btf(f"{k}.btf"), d / f"{k}.btf")
        shutil.copy(corpus_btf(f"{k}.BTF_ids"), d / f"{k}.BTF_ids")
    return d


def run(needs, paths, cache, jobs=1):
    r = FleetRun(needs, expand([str(p) for p in paths]), cache_dir=cache, jobs=jobs)
    return r.run(), r.cached


def test_warm_runs_answer_from_the_cache_and_say_the_same(needs, fleet, tmp_path):
    cache = tmp_path / "cache"
    cold, hits = run(needs, [fleet], cache)
    assert hits == 0
    warm, hits = run(needs, [fleet], cache, jobs=2)
    assert hits == 2 and warm.as_json() == cold.as_json()
    memo = json.loads((cache / "digests.json").read_text())["files"]
    assert sorted(Path(p).name for p in memo) == sorted(p.name for p in fleet.iterdir())


def test_the_memo_spares_reading_unchanged_files(needs, fleet, tmp_path, corpus_btf):
    """Like git's index: same (size, mtime, inode) -> the file is not read again; a new mtime
    -> it is hashed again, and its new content answers."""
    cache = tmp_path / "cache"
    run(needs, [fleet], cache)
    target = fleet / f"{K612}.btf"
    st = os.stat(target)
    other = corpus_btf(f"{K61}.btf").read_bytes()
    same_size = (other * 2)[: st.st_size]  # other content, same size, written in place
    with open(target, "r+b") as f:
        f.write(same_size)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    report, hits = run(needs, [fleet], cache)
    assert hits == 2 and report.kernels[1].accepts  # the remembered answer: no file was read
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    report, hits = run(needs, [fleet], cache)
    assert hits == 1 and report.kernels[1].error is not None  # read again: no longer BTF


def test_a_copy_hits_by_content(needs, fleet, tmp_path):
    cache = tmp_path / "cache"
    run(needs, [fleet], cache)
    copy = tmp_path / "elsewhere"
    shutil.copytree(fleet, copy)
    report, hits = run(needs, [copy], cache)
    assert hits == 2  # hashed (new paths), then found by content
    assert [k.source for k in report.kernels] == [str(copy / f"{k}.btf") for k in (K61, K612)]


def test_damaged_entries_unreadable_kernels_and_other_options_miss(needs, fleet, tmp_path):
    from sigbpf.fleet.worker import FleetOptions

    cache = tmp_path / "cache"
    cold, _ = run(needs, [fleet], cache)
    for entry in (cache / "results").glob("*/*.json"):
        entry.write_text("{not json")
    again, hits = run(needs, [fleet], cache)
    assert hits == 0 and again.as_json() == cold.as_json()
    bad = fleet / "zz-bad.btf"
    bad.write_bytes(b"junk" * 10)
    run(needs, [fleet], cache)
    report, hits = run(needs, [fleet], cache)
    assert hits == 2 and report.kernels[2].error is not None  # an unreadable kernel is never cached
    r = FleetRun(needs, expand([str(fleet / f"{K612}.btf")]), FleetOptions(prototype=False), cache, 1)
    r.run()
    assert r.cached == 0  # other options, other entries


def test_no_cache_writes_nothing(cli, bpf_object, fleet, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SIGBPF_CACHE", str(cache))
    proc = cli("check", bpf_object("fleet_all"), fleet, "--no-cache", "--json")
    assert proc.returncode == 1 and not proc.stderr
    assert not cache.exists()
    proc = cli("check", bpf_object("fleet_all"), fleet, "--json")
    assert (cache / "fleet" / "digests.json").is_file()


def test_cache_location(monkeypatch, tmp_path):
    from sigbpf.fleet.cache import cache_dir

    monkeypatch.delenv("SIGBPF_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "sigbpf" / "fleet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path(os.path.expanduser("~")) / ".cache" / "sigbpf" / "fleet"
    monkeypatch.setenv("SIGBPF_CACHE", str(tmp_path / "s"))
    assert cache_dir() == tmp_path / "s" / "fleet"
