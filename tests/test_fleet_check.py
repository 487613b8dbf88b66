"""``sigbpf check`` against generated kernels whose answers are known (tests/fleet_kernels.py).

tests/progs/fleet_all.c is checked against a slice of the 1,000 kernels
derived from the Debian corpus kernels: every mutation (kfunc removed,
prototype incompatible or drifting, not a kfunc, fields and enumerators
renamed, ambiguous CO-RE candidates, UAPI enums cut short or missing,
attach targets and ksyms missing or retyped, modules shadowing a kfunc or
defining one vmlinux lacks) with every source of kfunc-ness (``.BTF_ids``,
``bpf_kfunc`` tags, none) and every layout (raw ``.btf``, ``.btf.xz``,
BTFHub ``.btf.tar.xz``).  Each cell must be the one the kernel was built to
give; the second run (warm cache) must say exactly the same.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from fleet_kernels import CHECKS, MUTATIONS, core_keys, fleet_kernels
from sigbpf.fleet.model import Verdict

#: Kernels per mutation in the slice (the whole set is bench/fleet.py's).
PER_MUTATION = 6


@pytest.fixture(scope="module")
def generated():
    return fleet_kernels(1000)


@pytest.fixture(scope="module")
def artifact(bpf_object):
    return bpf_object("fleet_all")


@pytest.fixture(scope="module")
def chosen(generated):
    """A slice of the set: PER_MUTATION kernels of each mutation, every source and layout."""
    picked, per = [], Counter()
    for name, spec in sorted(generated.kernels.items(), key=lambda kv: kv[1].index):
        if per[spec.mutation] < PER_MUTATION or spec.layout != "raw":
            picked.append(name)
            per[spec.mutation] += 1
    return picked


def _path(generated, name: str) -> str:
    spec = generated.kernels[name]
    if spec.layout == "btfhub":
        return str(next(generated.root.glob(f"btfhub/*/*/*/{name}.btf.tar.xz")))
    return str(generated.root / "raw" / (f"{name}.btf.xz" if spec.layout == "xz" else f"{name}.btf"))


@pytest.fixture(scope="module")
def runs(cli, generated, artifact, chosen, tmp_path_factory):
    """(cold report, warm report, warm process) for the slice, with a private cache."""
    import os

    cache = tmp_path_factory.mktemp("fleet-cache")
    old = os.environ.get("SIGBPF_CACHE")
    os.environ["SIGBPF_CACHE"] = str(cache)
    try:
        paths = [_path(generated, n) for n in chosen]
        cold = cli("check", artifact, *paths, "--json")
        warm = cli("check", artifact, *paths, "--json")
    finally:
        if old is None:
            os.environ.pop("SIGBPF_CACHE", None)
        else:
            os.environ["SIGBPF_CACHE"] = old
    assert cold.returncode == 1, cold.stderr
    assert not cold.stderr and not warm.stderr
    return json.loads(cold.stdout), json.loads(warm.stdout), cache


def test_the_slice_covers_every_mutation_source_and_layout(generated, chosen):
    specs = [generated.kernels[n] for n in chosen]
    assert {s.mutation for s in specs} == set(MUTATIONS)
    assert {s.source for s in specs} == {"ids", "tags", "none"}
    assert {s.layout for s in specs} == {"raw", "xz", "btfhub"}
    assert {s.base for s in specs} == {"6.1.0-56-amd64", "6.12.95+deb12-amd64"}


def test_every_cell_is_the_known_answer(runs, generated, chosen):
    report, _, _ = runs
    keys = core_keys(report["checks"])
    assert set(keys) == {"core:pid", "core:tgid", "core:pidtype"}
    assert [c["key"] for c in report["checks"] if c["kind"] != "core"] == \
        [c for c in CHECKS if not c.startswith("core:")]
    assert [k["name"] for k in report["kernels"]] == chosen
    wrong = []
    for kernel in report["kernels"]:
        got = {c["check"]: (c["verdict"], c["code"]) for c in kernel["cells"]}
        expected = generated.expected(kernel["name"])
        for check, (verdict, code) in expected.items():
            if got.get(keys.get(check, check)) != (verdict.label, code):
                wrong.append((kernel["name"], check, (verdict.label, code), got.get(keys.get(check, check))))
        worst = max(v for v, _ in expected.values())
        assert kernel["verdict"] == worst.label and kernel["accepts"] == (worst <= Verdict.WARN)
    assert not wrong, wrong[:10]


def test_every_verdict_code_occurs(runs):
    """The slice exercises every code of every check kind (each has a test with a known answer)."""
    report, _, _ = runs
    codes = {(c["check"].split(":")[0], c["code"]) for k in report["kernels"] for c in k["cells"]}
    assert codes >= {
        ("program", "accepts"), ("program", "rejected"),
        ("kfunc", "resolves"), ("kfunc", "missing"), ("kfunc", "incompatible"), ("kfunc", "drift"),
        ("kfunc", "not-kfunc"), ("kfunc", "kfunc-unknown"), ("kfunc", "shadowed"),
        ("attach", "resolves"), ("attach", "missing"),
        ("ksym", "resolves"), ("ksym", "missing"), ("ksym", "incompatible"),
        ("prog_type", "known"), ("prog_type", "unknown"), ("map_type", "known"), ("map_type", "unknown"),
        ("map_type", "enum-missing"), ("attach_type", "known"), ("attach_type", "unknown"),
        ("helper", "known"), ("helper", "unknown"),
        ("core", "relocated"), ("core", "fails-if-reached"), ("core", "refused"),
    }


def test_details_and_values(runs, generated):
    """A few cells read in full: the reason a person sees, the number that goes with it."""
    report, _, _ = runs
    keys = core_keys(report["checks"])
    by_mutation: dict[str, dict] = {}
    for kernel in report["kernels"]:
        spec = generated.kernels[kernel["name"]]
        if spec.base.startswith("6.12") and spec.source == "ids":
            by_mutation.setdefault(spec.mutation, {c["check"]: c for c in kernel["cells"]})
    removed = by_mutation["kfunc-removed"]
    assert "bpf_task_release not found in vmlinux BTF" in removed["kfunc:bpf_task_release"]["detail"]
    assert removed["program:on_unlink"]["value"] == 2  # ENOENT, the seed's errno
    only = by_mutation["module-only"]["kfunc:bpf_task_release"]
    assert only["code"] == "missing" and only["also"] == ["module-only"] and "fleetmod" in only["detail"]
    shadow = by_mutation["module-shadow"]["kfunc:bpf_task_from_pid"]
    assert "fleetmod" in shadow["detail"] and shadow["value"] > 0
    assert by_mutation["field-gone-exists"][keys["core:tgid"]]["value"] == 0  # field_exists -> 0
    assert by_mutation["none"][keys["core:tgid"]]["value"] == 1
    cut = by_mutation["helper-unknown"]["helper:BPF_FUNC_ringbuf_output"]
    assert cut["value"] == 130 and "ends at 129" in cut["detail"]
    drift = by_mutation["proto-drift"]["kfunc:bpf_task_from_pid"]
    assert "int size 4 vs 8" in drift["detail"]  # the program says s32, this kernel u64


def test_warm_run_says_the_same(runs):
    cold, warm, cache = runs
    assert warm == cold
    assert (cache / "fleet" / "digests.json").is_file()
    assert len(list((cache / "fleet" / "results").glob("*/*.json"))) == len(cold["kernels"])


def test_text_report_groups_and_explains(cli, generated, artifact, chosen, tmp_path, monkeypatch):
    monkeypatch.setenv("SIGBPF_CACHE", str(tmp_path))
    names = chosen[:len(MUTATIONS)]
    proc = cli("check", artifact, *(_path(generated, n) for n in names), "--color", "never")
    assert proc.returncode == 1 and not proc.stderr
    words = " ".join(proc.stdout.split())  # the summary line wraps at the terminal's width
    assert words.startswith(f"{artifact}: {len(names)} kernels x ")
    assert "reasons:" in proc.stdout and "could not read:" not in proc.stdout
