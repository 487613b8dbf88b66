"""The fleet report on a terminal (sigbpf.fleet.render_text, .grouping) and the progress bar (.progress).

Reports are built from the model directly (tests/fleet_reports.py): a few
kernels with every verdict and every check kind, and a thousand kernels whose
grouping is known by construction.
"""

from __future__ import annotations

import io
import os
import re
from collections import Counter

import pytest

from fleet_reports import (CORE_UNREACHED, DRIFT_RELEASE, MISSING_ACQUIRE, UNREADABLE_ERROR,
                           large_behaviour, large_report, small_report)
from sigbpf.fleet.grouping import GLYPHS, group_kernels, group_reasons, ordered_checks, version_key
from sigbpf.fleet.model import Cell, Check, CheckKind, FleetReport, KernelResult, Verdict
from sigbpf.fleet.progress import Progress
from sigbpf.fleet.render_text import render_text

ANSI = re.compile(r"\033\[[0-9;]*[A-Za-z]")


def text(report: FleetReport, width: int = 100, color: bool = False) -> str:
    out = io.StringIO()
    render_text(report, out, color=color, width=width)
    return out.getvalue()


def matrix_rows(output: str) -> dict[str, tuple[int, str]]:
    """first kernel name of each matrix row -> (kernel count, glyphs without the kind gaps)."""
    rows = {}
    for line in output.split("\n\n")[1].splitlines():
        m = re.match(r"^\s+(\d+)  ([.!X?\- ]+?)   (\S.*)$", line)
        if m:
            rows[m.group(3).split(", ")[0]] = (int(m.group(1)), m.group(2).replace(" ", ""))
    return rows


def expected_glyphs(report: FleetReport, kernel: KernelResult) -> str:
    """The kernel's row as the model says it: one glyph per check, in kind order."""
    if kernel.error is not None:
        return GLYPHS[Verdict.UNREADABLE] * len(report.checks)
    by_key = {c.check: c.verdict for c in kernel.cells}
    return "".join(GLYPHS[by_key[c.key]] for c in ordered_checks(report))


def test_small_report_covers_every_verdict_and_kind():
    report = small_report()
    assert {c.kind for c in report.checks} == set(CheckKind)
    assert {c.verdict for k in report.kernels for c in k.cells} | {k.verdict for k in report.kernels} == set(Verdict)


def test_version_order_is_natural():
    names = ["6.12.95+deb12-amd64", "6.1.0-10-amd64", "5.10.0-30-amd64", "6.1.0-9-amd64"]
    assert sorted(names, key=version_key) == [
        "5.10.0-30-amd64", "6.1.0-9-amd64", "6.1.0-10-amd64", "6.12.95+deb12-amd64"]


def test_groups_worst_first_identical_rows_together():
    groups = group_kernels(small_report())
    assert [[k.name for k in g.kernels] for g in groups] == [
        ["broken.deb"], ["6.1.0-9-amd64", "6.1.0-10-amd64"], ["5.10.0-30-amd64"],
        ["6.12.95+deb12-amd64"], ["6.1.0-56-amd64"]]
    assert [g.verdict for g in groups] == [Verdict.UNREADABLE, Verdict.FAIL, Verdict.FAIL,
                                           Verdict.WARN, Verdict.OK]


def test_matrix_rows_match_the_model():
    report = small_report()
    out = text(report)
    rows = matrix_rows(out)
    assert set(rows) == {"broken.deb", "6.1.0-9-amd64", "5.10.0-30-amd64", "6.12.95+deb12-amd64",
                         "6.1.0-56-amd64"}
    for kernel in report.kernels:
        first = "6.1.0-9-amd64" if kernel.name == "6.1.0-10-amd64" else kernel.name
        assert rows[first][1] == expected_glyphs(report, kernel), kernel.name
    # a known answer: columns are program, kfunc x2, attach, ksym, prog/map/attach type, helper, core
    assert rows["6.1.0-9-amd64"] == (2, ".X........")
    assert rows["5.10.0-30-amd64"] == (1, "XX.XX.X!XX")
    assert rows["6.12.95+deb12-amd64"] == (1, "..!......!")
    assert rows["broken.deb"] == (1, "?" * 10)
    # the two kernels that answer alike share one row, named in version order
    assert re.search(r"^\s+2  \S.*   6\.1\.0-9-amd64, 6\.1\.0-10-amd64$", out, re.M)


def test_header_legend_and_check_key():
    out = text(small_report())
    assert out.splitlines()[0] == ("prog.o: 6 kernels x 10 checks: 2 accept (1 with warnings), "
                                   "3 refuse, 1 could not be read")
    assert "legend: . ok   ! loads, but differs   X refused   ? could not read" in out
    assert "not answered" not in out  # every readable kernel answers every check
    assert re.search(r"^  kfunc +2 bpf_task_acquire  3 bpf_task_release$", out, re.M)
    assert re.search(r"^  core +10 tp/insn 12$", out, re.M)
    matrix = out.split("\n\n")[1].splitlines()
    header = matrix[:next(i for i, ln in enumerate(matrix) if re.match(r"^\s+\d+  ", ln))]
    assert header[-2].strip() == "1"  # the tens digit of column 10
    assert header[-1].replace(" ", "") == "1234567890"
    assert [w for ln in header[:-2] for w in ln.split()] == [
        "prog", "attach", "atype", "kfunc", "ptype", "helper", "ksym", "core", "map"]


def test_reasons_name_every_failing_kernel_with_its_cells():
    out = text(small_report(), width=120)
    reasons = out.split("reasons:\n")[1]
    blocks = re.split(r"\n(?=[?X!] \d+ kernel)", reasons.strip())
    heads = [b.splitlines()[0] for b in blocks]
    assert heads == ["? 1 kernel could not be read:", "X 2 kernels refuse:", "X 1 kernel refuses:",
                     "! 1 kernel loads with warnings:"]
    assert blocks[0].splitlines()[1].strip() == "broken.deb"
    assert UNREADABLE_ERROR in blocks[0]
    assert blocks[1].splitlines()[1].strip() == "6.1.0-9-amd64, 6.1.0-10-amd64"
    assert re.search(r"X kfunc:bpf_task_acquire +missing: " + re.escape(MISSING_ACQUIRE), blocks[1])
    # every non-OK cell of 5.10 (7 FAIL, 1 WARN), none of its OK ones
    listed = set(re.findall(r"^ +([X!]) (\S.*?)  ", blocks[2], re.M))
    five_ten = next(k for k in small_report().kernels if k.name == "5.10.0-30-amd64")
    bad = {(GLYPHS[c.verdict], c.check) for c in five_ten.cells if c.verdict != Verdict.OK}
    assert len(bad) == 8 and listed == bad
    assert "prog_type:" not in blocks[2]
    flat = " ".join(blocks[3].split())
    assert "! kfunc:bpf_task_release drift: " + DRIFT_RELEASE in flat
    assert "! core:tp/insn 12 fails-if-reached: " + CORE_UNREACHED in flat
    assert "6.1.0-56-amd64" not in reasons  # accepts without warnings: no reasons


@pytest.mark.parametrize("width", [80, 100, 120])
def test_lines_fit_the_width(width: int):
    for report in (small_report(), large_report()):
        for line in text(report, width=width).splitlines():
            assert len(line) <= width, line


def test_thousand_kernels_collapse_to_one_row_per_behaviour():
    report = large_report()
    out = text(report, width=120)
    counts = Counter(large_behaviour(i) for i in range(1000))
    rows = matrix_rows(out)
    assert sorted(n for n, _ in rows.values()) == sorted(counts.values())  # 4, 196, 200, 200, 400
    assert sum(n for n, _ in rows.values()) == 1000
    # each row's glyphs are its members' rows, and the names are collapsed to fit
    for group in group_kernels(report):
        assert rows[group.kernels[0].name][1] == expected_glyphs(report, group.kernels[0])
        assert all(expected_glyphs(report, k) == expected_glyphs(report, group.kernels[0])
                   for k in group.kernels)
    assert re.search(r"^\s+400  .*, … \(\+\d+\)$", out, re.M)
    assert len(out.split("\n\n")[1].splitlines()) == 5 + 4  # kind labels, 2 digit rows, 5 rows
    # reasons: one block per behaviour that is not OK, the name list collapsed
    assert len(group_reasons(report)) == 4
    assert re.search(r"^X 200 kernels refuse:$", out, re.M)
    assert re.search(r"^X 196 kernels refuse:$", out, re.M)
    assert re.search(r"^! 200 kernels load with warnings:$", out, re.M)
    assert re.search(r"^\? 4 kernels could not be read:$", out, re.M)
    assert re.search(r"… \(\+\d+ more\)$", out, re.M)
    assert len(out.splitlines()) < 80


def test_narrow_terminal_cuts_the_matrix_into_bands():
    report = large_report(20)
    out = text(report, width=60)
    bands = re.findall(r"^checks (\d+)-(\d+) of 50:$", out, re.M)
    assert len(bands) >= 2
    spans = [(int(a), int(b)) for a, b in bands]
    assert spans[0][0] == 1 and spans[-1][1] == 50
    assert all(b0 + 1 == a1 for (_, b0), (a1, _) in zip(spans, spans[1:]))
    widths = [b - a + 1 for a, b in spans]
    assert max(widths) - min(widths) <= 8  # evened out
    assert all(len(line) <= 60 for line in out.splitlines())


def test_color_only_when_asked():
    report = small_report()
    plain = text(report, color=False)
    colored = text(report, color=True)
    assert "\033" not in plain
    assert "\033[1;31mX\033[0m" in colored and "\033[35m?\033[0m" in colored
    assert ANSI.sub("", colored) == plain


def test_milder_findings_and_a_long_artifact_name():
    check = Check(CheckKind.KFUNC, "bpf_rcu_read_lock")
    warn = Cell(check.key, Verdict.WARN, "drift", "arg 1 differs", 7, also=("shadowed",))
    plain = Cell(check.key, Verdict.WARN, "drift", "arg 1 differs", 7)
    name = "/a/very/long/path/to/the/artifact/that/does/not/fit/on/one/line/with/its/counts.sbpf"
    report = FleetReport(name, (check,), (KernelResult("6.12", "a", cells=(warn,)),
                                          KernelResult("6.13", "b", cells=(plain,))))
    out = text(report, width=80)
    assert out.splitlines()[:2] == [name + ":", "  2 kernels x 1 check: 2 accept (2 with warnings), 0 refuse"]
    # the same verdict row, but not the same reasons: one matrix row, two reason blocks
    assert matrix_rows(out)["6.12"] == (2, "!")
    assert "! kfunc:bpf_rcu_read_lock  drift (also shadowed): arg 1 differs" in out
    assert "! kfunc:bpf_rcu_read_lock  drift: arg 1 differs" in out


def test_files_refused_for_one_reason_are_one_block():
    """A directory of files that are not BTF: the errors differ only by each file's own path."""
    check = Check(CheckKind.KFUNC, "bpf_task_acquire")
    bad = [KernelResult(f"d/k{i}.btf", f"d/k{i}.btf", error=f"d/k{i}.btf: offset 0x0: not BTF")
           for i in range(12)]
    odd = KernelResult("6.1.0-9", "d/x.deb", error="d/x.deb: truncated")  # named by version: kept whole
    out = text(FleetReport("p.o", (check,), (*bad, odd)), width=80)
    reasons = out.split("reasons:\n")[1]
    assert reasons.count("could not be read:") == 2
    assert re.search(r"^\? 12 kernels could not be read:\n    d/k0\.btf, d/k1\.btf, d/k2\.btf", reasons, re.M)
    assert re.search(r"^      offset 0x0: not BTF$", reasons, re.M)
    assert re.search(r"^      d/x\.deb: truncated$", reasons, re.M)


def test_missing_cell_and_empty_reports():
    checks = (Check(CheckKind.KFUNC, "a"), Check(CheckKind.KFUNC, "b"))
    partial = FleetReport("x.o", checks, (KernelResult("6.1", "k", cells=(
        Cell("kfunc:a", Verdict.OK, "resolves", value=5),)),))
    out = text(partial)
    assert matrix_rows(out)["6.1"] == (1, ".-")
    assert "- not answered" in out
    assert text(FleetReport("x.o", checks)) == "x.o: 0 kernels x 2 checks: 0 accept, 0 refuse\n"
    no_checks = FleetReport("x.o", (), (KernelResult("6.1", "k"),))
    assert "1 kernel x 0 checks: 1 accept, 0 refuse" in text(no_checks)


# ---- the progress bar ----

class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_silent_off_a_terminal():
    stream = io.StringIO()
    bar = Progress(10, stream)
    for i in range(11):
        bar.update(i)
    bar.close()
    assert not bar.enabled and stream.getvalue() == ""


def test_progress_on_a_terminal():
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as stream:
            clock = FakeClock()
            bar = Progress(1000, stream, clock=clock, width=80)
            assert bar.enabled
            clock.now += 5.0
            bar.update(412)         # 82.4 kernels/s, 588 left: 7 s
            clock.now += 0.05
            bar.update(413)         # too soon: not drawn
            clock.now += 2.0
            bar.update(1000)        # the end is always drawn
            bar.close()
        written = os.read(master, 65536).decode()
    finally:
        os.close(master)
        os.close(slave)
    frames = [f for f in written.replace("\r\n", "\n").split("\r") if f]
    assert len(frames) == 3, frames      # 412, 1000, then the wipe
    assert " 412/1000 kernels   82.4/s   7s left" in frames[0]
    assert "413/" not in written
    assert "1000/1000 kernels" in frames[1] and "7s total" in frames[1]
    bar_w = frames[0].index("]") - 1
    assert frames[0].startswith("[" + "#" * (bar_w * 412 // 1000) + ".")
    assert frames[2] == "\033[K"
    assert all(len(ANSI.sub("", f)) < 80 for f in frames)


def test_progress_line_shapes():
    clock = FakeClock()
    bar = Progress(3600, io.StringIO(), clock=clock, width=80)
    assert bar.line(0, clock.now).endswith("0/3600 kernels   -/s   ? left")
    assert bar.line(60, clock.now + 60).endswith("60/3600 kernels   1.0/s   59m00s left")
    assert bar.line(1, clock.now + 1).endswith("1/3600 kernels   1.0/s   59m59s left")
    line = bar.line(1800, clock.now + 1)
    assert line.count("#") == (len(line.split("]")[0]) - 1) // 2
