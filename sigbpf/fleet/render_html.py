"""The fleet report as one self-contained HTML page: the matrix, filters, and each cell's details.

:func:`render_html` returns the page as a string: the report's JSON
(:meth:`FleetReport.as_json`, unchanged) is embedded in a
``<script type="application/json" id="report-data">``; the style sheet and
the script (``report_page/page.css``, ``page.js``, package data) are inlined;
a Content-Security-Policy forbids every fetch, so the page works offline and
can be mailed around.  The browser draws the matrix: kernels whose visible
verdicts agree share one expandable row, columns are grouped by check kind,
each cell is coloured by its verdict (class ``v-ok``, ``v-warn``, ``v-fail``,
``v-unreadable``, ``v-none``) and shows its details on click.  Filters
(failing only, check kind, check name, kernel version prefix) live in the URL
fragment, e.g. ``report.html#failing&kind=core&prefix=6.1``; see page.js.

The glyphs, the kernels' version order and the summary sentence come from
:mod:`sigbpf.fleet.grouping`, as on the terminal.
"""

from __future__ import annotations

import re

from sigbpf.fleet.grouping import (GLYPHS, KIND_SHORT, NO_ANSWER, VERDICT_MEANING, kernel_order,
                                   summarize)
from sigbpf.fleet.model import CheckKind, FleetReport, Verdict

__all__ = ["render_html"]

_SLOT = re.compile(r"\{\{(\w+)\}\}")


def _asset(name: str) -> str:
    from importlib.resources import files  # on use: only --html needs the page

    return (files("sigbpf.fleet") / "report_page" / name).read_text(encoding="utf-8")


def _script_json(value: object) -> str:
    """JSON that cannot end its ``<script>`` element early (``<``, ``>``, ``&`` as \\u escapes)."""
    import json

    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _exit_badge(report: FleetReport) -> tuple[str, str]:
    if report.unreadable:
        return f"v-{Verdict.UNREADABLE.label}", "some kernels could not be read (exit 2)"
    if not report.ok:
        return f"v-{Verdict.FAIL.label}", "some kernels refuse (exit 1)"
    if any(k.verdict == Verdict.WARN for k in report.kernels):
        return f"v-{Verdict.WARN.label}", "every kernel accepts, with warnings (exit 0)"
    return f"v-{Verdict.OK.label}", "every kernel accepts (exit 0)"


def render_html(report: FleetReport) -> str:
    """The whole page for *report*, as text (write it with :func:`sigbpf.fileio.write_atomic`)."""
    import html

    config = {
        "verdicts": [v.label for v in Verdict],
        "glyphs": {v.label: GLYPHS[v] for v in Verdict},
        "meaning": {v.label: VERDICT_MEANING[v] for v in Verdict},
        "noAnswer": NO_ANSWER,
        "kinds": [k.label for k in CheckKind],
        "kindShort": {k.label: KIND_SHORT[k] for k in CheckKind},
        "order": sorted(range(len(report.kernels)), key=lambda i: kernel_order(report.kernels[i])),
    }
    exit_class, exit_text = _exit_badge(report)
    slots = {
        "artifact": html.escape(report.artifact),
        "summary": html.escape(summarize(report).sentence()),
        "exit_class": exit_class,
        "exit_text": html.escape(exit_text),
        "css": _asset("page.css"),
        "js": _asset("page.js"),
        "data": _script_json(report.as_json()),
        "config": _script_json(config),
    }
    # one pass over the template: text put into a slot is never searched for slots again
    return _SLOT.sub(lambda m: slots[m.group(1)], _asset("page.html"))
