"""The fleet report as HTML (sigbpf.fleet.render_html), opened in headless Chromium.

Chromium really runs (``--dump-dom`` gives the DOM after the page's script
drew the matrix, ``--screenshot`` a PNG under the test's tmp dir); the drawn
matrix is checked cell by cell against the report's JSON, and the filters,
the grouping and a cell's details are exercised through the URL fragment the
page honours.  Chromium missing is a skip, a failure under
``SIGBPF_REQUIRE_KERNEL=1`` (scripts/deps.sh installs Debian's ``chromium``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fleet_reports import MISSING_ACQUIRE, UNREADABLE_ERROR, large_report, small_report
from sigbpf.fleet.grouping import GLYPHS, group_kernels
from sigbpf.fleet.model import Cell, Check, CheckKind, FleetReport, KernelResult, Verdict
from sigbpf.fleet.render_html import render_html

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")


class Chromium:
    """Headless Chromium on file:// pages: the DOM after the script ran, a screenshot, a page to click on."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.binary = binary
        self.profile = profile

    @staticmethod
    def url(page: Path, fragment: str) -> str:
        return page.resolve().as_uri() + (f"#{fragment}" if fragment else "")

    def _run(self, *args: str) -> str:
        proc = subprocess.run([self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", *args],
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    def dom(self, page: Path, fragment: str = "") -> str:
        return self._run("--dump-dom", self.url(page, fragment))

    def screenshot(self, page: Path, png: Path, fragment: str = "") -> None:
        self._run(f"--screenshot={png}", "--window-size=1400,900", self.url(page, fragment))

    def open(self, page: Path, fragment: str = "") -> "Browser":
        return Browser(self.binary, self.profile, self.url(page, fragment))


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Chromium:
    binary = shutil.which("chromium")
    if binary is None:
        why = "chromium is not installed (scripts/deps.sh installs Debian's chromium)"
        if os.environ.get("SIGBPF_REQUIRE_KERNEL") == "1":
            pytest.fail(f"SIGBPF_REQUIRE_KERNEL=1 but {why}")
        pytest.skip(why)
    return Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))


class Browser:
    """One page in headless Chromium, driven over the DevTools protocol (``--remote-debugging-pipe``):
    real mouse clicks and typing, then questions asked of the page with ``evaluate``."""

    def __init__(self, binary: str, profile: Path, url: str) -> None:
        import select

        self._select = select.select
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        shell = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}'  # the pipe's fds are 3 and 4
        self.proc = subprocess.Popen(
            ["bash", "-c", shell, binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             "--remote-debugging-pipe", "--window-size=1400,900", url],
            pass_fds=(to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.session = None
        targets = self.send("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page" and t["url"].startswith("file:"))
        self.session = self.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
        for _ in range(600):
            if self.evaluate("document.body && document.body.dataset.ready") == "1":
                break
            self._select([], [], [], 0.05)
        else:
            raise AssertionError("the page's script never finished")

    def send(self, method: str, params: dict | None = None) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if self.session is not None and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                if not self._select([self._from_chrome], [], [], 60)[0]:
                    raise AssertionError(f"chromium did not answer {method}")
                chunk = os.read(self._from_chrome, 1 << 16)
                if not chunk:
                    raise AssertionError(f"chromium went away during {method}")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._id:
                assert "error" not in answer, answer
                return answer["result"]

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A left click in the middle of the element (scrolled into view first)."""
        box = self.evaluate(f"(function () {{ var e = document.querySelector({json.dumps(selector)});"
                            " if (!e) return null; e.scrollIntoView({block: 'center', inline: 'center'});"
                            " var r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        assert box is not None, f"nothing matches {selector}"
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                   "button": "left", "clickCount": 1})

    def type(self, selector: str, text: str) -> None:
        self.click(selector)
        self.send("Input.insertText", {"text": text})

    def shown_kernels(self) -> list[int]:
        """Indices of the kernels the matrix shows (group rows count for their members)."""
        return sorted(self.evaluate(
            "Array.from(document.querySelectorAll('#matrix tbody tr.group, #matrix tbody tr.kernel:not(.member)'))"
            ".flatMap(function (tr) { return (tr.dataset.kernels || tr.dataset.k).split(' ').map(Number); })"))

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=30)
        except (AssertionError, OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self._to_chrome)
            os.close(self._from_chrome)


class Dom(HTMLParser):
    """The parts of the drawn page the tests read: matrix rows and cells, column order, texts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[dict] = []
        self.columns: list[int] = []
        self.kinds: list[tuple[str, int]] = []
        self.scripts = 0
        self.by_id: dict[str, str] = {}
        self._cell: dict | None = None
        self._head: dict | None = None
        self._ids: list[tuple[str, str, int]] = []  # (id, tag, depth) being collected
        self._depth = 0
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag not in ("input", "meta", "br"):
            self._depth += 1
        if tag == "script":
            self.scripts += 1
        if "id" in a and a["id"] in ("details", "shown", "summary", "exit", "legend"):
            self._ids.append((a["id"], tag, self._depth))
            self.by_id[a["id"]] = ""
        if tag == "tr" and self._in_body:
            self.rows.append({"classes": classes, "attrs": a, "head": "", "cells": []})
        elif tag == "th" and "col" in classes:
            self.columns.append(int(a["data-c"]))
        elif tag == "th" and "kind" in classes:
            self.kinds.append((a["title"], int(a.get("colspan", "1"))))
        elif tag == "th" and "rowhead" in classes and self.rows:
            self._head = self.rows[-1]
        elif tag == "td" and "cell" in classes and self.rows:
            self._cell = {"c": int(a["data-c"]), "classes": classes, "text": ""}
            self.rows[-1]["cells"].append(self._cell)
        elif tag == "tbody":
            self._in_body = True
        elif tag == "thead":
            self._in_body = False

    _in_body = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        elif tag == "th":
            self._head = None
        if self._ids and self._ids[-1][2] == self._depth and self._ids[-1][1] == tag:
            self._ids.pop()
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data
        if self._head is not None:
            self._head["head"] += data
        for ident, _, _ in self._ids:
            self.by_id[ident] += data

    def kernel_rows(self) -> list[dict]:
        return [r for r in self.rows if "kernel" in r["classes"]]

    def group_rows(self) -> list[dict]:
        return [r for r in self.rows if "group" in r["classes"]]


def write_page(tmp_path: Path, report: FleetReport, name: str = "report.html") -> Path:
    page = tmp_path / name
    page.write_text(render_html(report), encoding="utf-8")
    return page


def expected_class(kernel: dict, check_key: str) -> str:
    """The class a kernel's cell must have, from the report's JSON."""
    if kernel["error"] is not None:
        return "v-unreadable"
    verdict = next((c["verdict"] for c in kernel["cells"] if c["check"] == check_key), None)
    return "v-none" if verdict is None else f"v-{verdict}"


def assert_kernel_rows_match(dom: Dom, data: dict, shown: set[int], columns: list[int]) -> None:
    """Each shown kernel of the JSON drawn once, one cell per shown column, coloured by its verdict."""
    rows = dom.kernel_rows()
    assert sorted(int(r["attrs"]["data-k"]) for r in rows) == sorted(shown)
    assert dom.columns == columns
    glyph = {f"v-{v.label}": GLYPHS[v] for v in Verdict} | {"v-none": "-"}
    for row in rows:
        kernel = data["kernels"][int(row["attrs"]["data-k"])]
        assert row["head"] == kernel["name"]
        assert [c["c"] for c in row["cells"]] == columns
        for cell in row["cells"]:
            want = expected_class(kernel, data["checks"][cell["c"]]["key"])
            assert want in cell["classes"], (kernel["name"], data["checks"][cell["c"]]["key"], cell)
            assert cell["text"] == glyph[want]


def kind_order(data: dict) -> list[int]:
    """The JSON's check indices in the matrix's column order: by kind, then as listed."""
    kinds = [k.label for k in CheckKind]
    return sorted(range(len(data["checks"])), key=lambda i: (kinds.index(data["checks"][i]["kind"]), i))


def test_page_is_self_contained_and_embeds_the_json(tmp_path: Path):
    report = small_report()
    page = render_html(report)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"https?://|<link|<img|<iframe|\bsrc=|@import|url\(", page, re.I)
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert m and json.loads(m.group(1)) == report.as_json()


def test_matrix_every_cell_against_the_json(chromium, tmp_path: Path):
    report = small_report()
    page = write_page(tmp_path, report)
    dom = Dom(chromium.dom(page, "expand=all"))
    data = report.as_json()
    assert_kernel_rows_match(dom, data, set(range(len(report.kernels))), kind_order(data))
    assert dom.kinds == [(k.label, sum(c.kind == k for c in report.checks)) for k in CheckKind]
    assert dom.by_id["shown"] == "showing 6 of 6 kernels in 5 rows, 10 of 10 checks"
    assert "some kernels could not be read (exit 2)" in dom.by_id["exit"]


def test_identical_rows_are_grouped_and_collapsed(chromium, tmp_path: Path):
    report = small_report()
    dom = Dom(chromium.dom(write_page(tmp_path, report)))
    # collapsed: the two 6.1.0-9/-10 kernels are one group row, the others one row each
    python_groups = [[report.kernels.index(k) for k in g.kernels] for g in group_kernels(report)]
    drawn = []
    for row in dom.rows:
        if "group" in row["classes"]:
            drawn.append([int(k) for k in row["attrs"]["data-kernels"].split()])
        elif "kernel" in row["classes"]:
            drawn.append([int(row["attrs"]["data-k"])])
    assert drawn == python_groups  # same groups, same order as the text matrix
    (group,) = dom.group_rows()
    assert group["head"].startswith("▸2 kernels") and "6.1.0-9-amd64, 6.1.0-10-amd64" in group["head"]
    data = report.as_json()
    assert [c["classes"][1] for c in group["cells"]] == [
        expected_class(data["kernels"][1], data["checks"][c]["key"]) for c in kind_order(data)]
    assert not dom.kernel_rows() or all("member" not in r["classes"] for r in dom.kernel_rows())


@pytest.mark.parametrize("fragment,kernels,kinds", [
    ("failing", lambda k: not k.accepts, None),
    ("prefix=6.1.", lambda k: k.name.startswith("6.1."), None),
    ("failing&prefix=6.1.", lambda k: k.name.startswith("6.1.") and not k.accepts, None),
    ("kind=core", lambda k: True, {CheckKind.CORE}),
    ("failing&kind=kfunc", lambda k: k.error is not None or any(
        c.verdict >= Verdict.FAIL for c in k.cells if c.check.startswith("kfunc:")), {CheckKind.KFUNC}),
])
def test_filters_from_the_fragment(chromium, tmp_path: Path, fragment, kernels, kinds):
    report = small_report()
    dom = Dom(chromium.dom(write_page(tmp_path, report), fragment + "&expand=all"))
    shown = {i for i, k in enumerate(report.kernels) if kernels(k)}
    columns = [i for i in kind_order(report.as_json()) if kinds is None or report.checks[i].kind in kinds]
    assert 0 < len(shown) < len(report.kernels) or kinds
    assert_kernel_rows_match(dom, report.as_json(), shown, columns)
    assert dom.by_id["shown"].startswith(f"showing {len(shown)} of 6 kernels")


def test_cell_details_from_the_fragment(chromium, tmp_path: Path):
    report = small_report()
    page = write_page(tmp_path, report)
    k = next(i for i, kr in enumerate(report.kernels) if kr.name == "6.1.0-9-amd64")
    c = next(i for i, ch in enumerate(report.checks) if ch.key == "kfunc:bpf_task_acquire")
    dom = Dom(chromium.dom(page, f"cell={k}:{c}"))
    details = dom.by_id["details"]
    # the kernel's group is opened to show its row, the cell is marked
    (row,) = [r for r in dom.kernel_rows() if r["attrs"]["data-k"] == str(k)]
    assert "member" in row["classes"]
    assert [cell["c"] for cell in row["cells"] if "selected" in cell["classes"]] == [c]
    assert "6.1.0-9-amd64 × kfunc:bpf_task_acquire" in details
    assert "refused" in details and "missing" in details and MISSING_ACQUIRE in details
    assert "prog tp, insn 4" in details  # where the check is used
    broken = next(i for i, kr in enumerate(report.kernels) if kr.error is not None)
    details = Dom(chromium.dom(page, f"kernel={broken}")).by_id["details"]
    assert "broken.deb" in details and UNREADABLE_ERROR in details


def test_hostile_names_are_text(chromium, tmp_path: Path):
    evil = '</script><script>document.title="pwned"</script><b id="x">'
    check = Check(CheckKind.KFUNC, evil, evil)
    report = FleetReport(evil, (check,), (
        KernelResult(evil, evil, cells=(Cell(check.key, Verdict.FAIL, "missing", evil),)),))
    page = write_page(tmp_path, report)
    dom = Dom(chromium.dom(page, "cell=0:0"))
    assert dom.scripts == 3  # the report, the config, the page's script: nothing injected
    assert dom.kernel_rows()[0]["head"] == evil
    assert evil in dom.by_id["details"]


def test_thousand_kernels_grouped_then_expanded(chromium, tmp_path: Path):
    report = large_report()
    page = write_page(tmp_path, report)
    dom = Dom(chromium.dom(page))
    assert len(dom.group_rows()) == 5 and not dom.kernel_rows()
    assert sorted(len(r["attrs"]["data-kernels"].split()) for r in dom.group_rows()) == [4, 196, 200, 200, 400]
    dom = Dom(chromium.dom(page, "expand=all"))
    data = report.as_json()
    assert_kernel_rows_match(dom, data, set(range(1000)), kind_order(data))
    assert sum(len(r["cells"]) for r in dom.kernel_rows()) == 1000 * 50


def test_screenshot(chromium, tmp_path: Path):
    """A picture of the page as a person sees it (open it: tmp_path/report.png)."""
    report = small_report()
    page = write_page(tmp_path, report)
    png = tmp_path / "report.png"
    chromium.screenshot(page, png, f"cell=1:{kind_order(report.as_json())[1]}")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 900)


def test_clicks_and_typing(chromium, tmp_path: Path):
    """The page as a person uses it: expand a group, click cells and a name, filter, reset."""
    report = small_report()
    index = {k.name: i for i, k in enumerate(report.kernels)}
    acquire = next(i for i, c in enumerate(report.checks) if c.key == "kfunc:bpf_task_acquire")
    nine, ten = index["6.1.0-9-amd64"], index["6.1.0-10-amd64"]
    page = chromium.open(write_page(tmp_path, report))
    try:
        assert page.evaluate("document.querySelectorAll('tr.member').length") == 0
        page.click("tr.group button.toggle")
        assert page.evaluate("Array.from(document.querySelectorAll('tr.member')).map(function (r) {"
                             " return +r.dataset.k; })") == [nine, ten]

        page.click(f'tr.kernel[data-k="{nine}"] td[data-c="{acquire}"]')
        details = page.evaluate("document.getElementById('details').innerText")
        assert "6.1.0-9-amd64 × kfunc:bpf_task_acquire" in details and MISSING_ACQUIRE in details
        assert page.evaluate("location.hash") == f"#cell={nine}:{acquire}"
        assert page.evaluate(f"document.querySelector('tr.kernel[data-k=\"{nine}\"] td[data-c=\"{acquire}\"]')"
                             ".classList.contains('selected')")

        page.click(f'tr.group td[data-c="{acquire}"]')
        details = page.evaluate("document.getElementById('details').innerText")
        assert "2 kernels × kfunc:bpf_task_acquire" in details
        assert f"missing: {MISSING_ACQUIRE} (2: 6.1.0-9-amd64, 6.1.0-10-amd64)" in details

        five_ten = index["5.10.0-30-amd64"]
        page.click(f'tr.kernel[data-k="{five_ten}"] th.rowhead')
        items = page.evaluate("Array.from(document.querySelectorAll('#details li')).map(function (li) {"
                              " return li.innerText; })")
        bad = [c for c in report.kernels[five_ten].cells if c.verdict != Verdict.OK]
        assert len(items) == len(bad) == 8
        assert all(any(c.check in item and c.code in item for item in items) for c in bad)

        page.click("#f-failing")
        assert page.shown_kernels() == sorted(i for i, k in enumerate(report.kernels) if not k.accepts)
        assert page.evaluate("location.hash").startswith("#failing")
        page.type("#f-prefix", "6.1.")
        assert page.shown_kernels() == sorted([nine, ten])
        assert page.evaluate("document.getElementById('shown').innerText").startswith("showing 2 of 6 kernels")

        page.evaluate("var s = document.getElementById('f-kind'); s.value = 'core';"
                      " s.dispatchEvent(new Event('change'))")
        core = [i for i, c in enumerate(report.checks) if c.kind == CheckKind.CORE]
        assert page.evaluate("Array.from(document.querySelectorAll('th.col')).map(function (th) {"
                             " return +th.dataset.c; })") == core
        assert page.shown_kernels() == []  # 6.1.0-9/-10 fail on a kfunc, not on CO-RE
        assert "No kernel matches" in page.evaluate("document.querySelector('#matrix tbody').innerText")

        page.click("#f-reset")
        assert page.shown_kernels() == list(range(len(report.kernels)))
        assert page.evaluate("location.hash") == ""
    finally:
        page.close()


def test_large_group_pages_its_rows(chromium, tmp_path: Path):
    report = large_report()
    page = chromium.open(write_page(tmp_path, report))
    try:
        assert page.evaluate("document.querySelectorAll('tr.group').length") == 5
        sizes = page.evaluate("Array.from(document.querySelectorAll('tr.group')).map(function (r) {"
                              " return r.dataset.kernels.split(' ').length; })")
        assert sizes == [4, 200, 196, 200, 400]  # worst first, then the largest
        page.click("tr.group:last-of-type button.toggle")
        assert page.evaluate("document.querySelectorAll('tr.member').length") == 200
        assert page.evaluate("document.querySelector('tr.more').innerText") == "show 200 more of 200"
        page.click("tr.more button.more")
        assert page.evaluate("document.querySelectorAll('tr.member').length") == 400
        assert page.evaluate("document.querySelectorAll('tr.more').length") == 0
    finally:
        page.close()


def embedded_json(page: Path) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page.read_text(), re.S)
    assert m
    return json.loads(m.group(1))


def test_through_the_cli(chromium, cli, bpf_object, corpus_btf, kernel, tmp_path: Path):
    """``sigbpf check OBJ 6.1 6.12 running junk --html FILE``: the page draws what ``--json`` says."""
    junk = tmp_path / "junk.btf"
    junk.write_bytes(b"this is not BTF")
    args = [bpf_object("kfunc_task"), corpus_btf("6.1.0-56-amd64.btf"),
            corpus_btf("6.12.95+deb12-amd64.btf"), "running", junk, "--no-cache"]
    page = tmp_path / "fleet.html"
    proc = cli("check", *args, "--html", page)
    assert proc.returncode == 2, proc.stderr  # one kernel could not be read
    assert "Traceback" not in proc.stderr
    as_json = cli("check", *args, "--json")
    assert as_json.returncode == 2
    data = json.loads(as_json.stdout)
    assert embedded_json(page) == data
    # known answers (tests/test_check_cli.py): 6.1 lacks bpf_task_from_pid, the junk is unreadable
    verdicts = {Path(k["source"]).name: k["verdict"] for k in data["kernels"]}  # running: "vmlinux"
    assert verdicts["6.1.0-56-amd64.btf"] == "fail" and verdicts["junk.btf"] == "unreadable"
    assert verdicts["vmlinux"] in ("ok", "warn") and verdicts["6.12.95+deb12-amd64.btf"] in ("ok", "warn")
    assert re.search(r"^X 1 kernel refuses:\n    6\.1\.0-56-amd64$", proc.stdout, re.M)

    dom = Dom(chromium.dom(page, "expand=all"))
    assert_kernel_rows_match(dom, data, set(range(len(data["kernels"]))), kind_order(data))
    assert len(dom.kernel_rows()) == 4 and len(dom.columns) == len(data["checks"]) >= 3
    failing = {i for i, k in enumerate(data["kernels"]) if not k["accepts"]}
    assert_kernel_rows_match(Dom(chromium.dom(page, "failing&expand=all")), data, failing, kind_order(data))
    chromium.screenshot(page, tmp_path / "fleet.png")
    assert (tmp_path / "fleet.png").read_bytes()[:4] == b"\x89PNG"
