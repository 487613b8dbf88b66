"""The fleet report on a terminal: a kernels x checks matrix, one glyph a cell, then the reasons.

::

    prog.o: 6 kernels x 10 checks: 2 accept (1 with warnings), 3 refuse, 1 could not be read

         prog attach  atype
           kfunc  ptype helper
                ksym      core
                    map
                          1
         1 23 4 5 6 7 8 9 0
      1  ? ?? ? ? ? ? ? ? ?   broken.deb
      2  . X. . . . . . . .   6.1.0-9-amd64, 6.1.0-10-amd64
      1  X X. X X . X ! X X   5.10.0-30-amd64
      1  . .! . . . . . . !   6.12.95+deb12-amd64
      1  . .. . . . . . . .   6.1.0-56-amd64

    legend: . ok   ! loads, but differs   X refused   ? could not read
    checks:
      program      1 tp
      kfunc        2 bpf_task_acquire  3 bpf_task_release
      ...
    reasons:
    X 2 kernels refuse:
        6.1.0-9-amd64, 6.1.0-10-amd64
          X kfunc:bpf_task_acquire  missing: no FUNC named bpf_task_acquire in this kernel's BTF
    ...

Kernels whose verdicts agree on every check share one row (how many, then
their names, collapsed to fit), worst first, so a thousand kernels take a
handful of lines; each kind's columns stand together under its name, the
column numbers written downwards, and a matrix wider than the terminal is
cut into bands of columns.  The reasons follow, once per group of kernels
that fail (or warn) for the same reasons.  Readable at 80 to 120 columns;
ANSI colour only when asked.
"""

from __future__ import annotations

import textwrap
from typing import Sequence, TextIO

from sigbpf.fleet.grouping import (GLYPHS, KIND_SHORT, NO_ANSWER, VERDICT_MEANING, KernelGroup,
                                   ReasonGroup, group_kernels, group_reasons, ordered_checks,
                                   reason, summarize)
from sigbpf.fleet.model import Check, CheckKind, FleetReport, KernelResult, Verdict

__all__ = ["render_text"]

_ANSI: dict[Verdict | None, str] = {
    Verdict.OK: "\033[32m",          # green
    Verdict.WARN: "\033[33m",        # yellow
    Verdict.FAIL: "\033[1;31m",      # bold red
    Verdict.UNREADABLE: "\033[35m",  # magenta
    None: "\033[2m",                 # dim: no answer
}
_RESET = "\033[0m"
_MIN_NAMES = 24       # room kept for the kernel names right of the glyphs
_REASON_NAME_LINES = 3  # kernel-name lines per reason block before the list is collapsed
_HEADING = {  # (one kernel, several kernels)
    Verdict.UNREADABLE: ("could not be read", "could not be read"),
    Verdict.FAIL: ("refuses", "refuse"),
    Verdict.WARN: ("loads with warnings", "load with warnings"),
}


def _default_width() -> int:
    import shutil

    return max(60, min(120, shutil.get_terminal_size((100, 24)).columns))


class _Painter:
    """Glyphs and words in their verdict's ANSI colour, or plain."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def glyph(self, verdict: Verdict | None) -> str:
        return self(GLYPHS[verdict] if verdict is not None else NO_ANSWER, verdict)

    def __call__(self, text: str, verdict: Verdict | None) -> str:
        return f"{_ANSI[verdict]}{text}{_RESET}" if self.color else text

    def bold(self, text: str) -> str:
        return f"\033[1m{text}{_RESET}" if self.color else text


def _fit(text: str, room: int) -> str:
    return text if len(text) <= room else text[:max(room - 1, 0)] + "…"


def _names_line(kernels: Sequence[KernelResult], room: int) -> str:
    """As many names as fit in *room* columns, then ``... (+N)``."""
    names = [k.name for k in kernels]
    if len(names) == 1:
        return _fit(names[0], room)
    shown: list[str] = []
    for i, name in enumerate(names):
        rest = len(names) - i - 1
        tail = f", … (+{rest})" if rest else ""
        candidate = ", ".join(shown + [name]) + tail
        if len(candidate) > room:
            break
        shown.append(name)
    if not shown:
        tail = f", … (+{len(names) - 1})"
        return _fit(names[0], room - len(tail)) + tail
    if len(shown) == len(names):
        return ", ".join(shown)
    return ", ".join(shown) + f", … (+{len(names) - len(shown)})"


def _names_block(kernels: Sequence[KernelResult], width: int, indent: str) -> list[str]:
    """Every name, wrapped at ``, ``; past a few lines the rest is counted, not listed."""
    rows: list[list[str]] = [[]]
    used = len(indent)
    for kernel in kernels:
        need = len(kernel.name) + (2 if rows[-1] else 0)
        if rows[-1] and used + need + 1 > width:  # +1: the trailing comma
            rows.append([])
            used, need = len(indent), len(kernel.name)
        rows[-1].append(kernel.name)
        used += need
    if len(rows) > _REASON_NAME_LINES:
        rows = rows[:_REASON_NAME_LINES]
        listed = sum(len(r) for r in rows)
        while True:
            more = f", … (+{len(kernels) - listed} more)"
            if len(rows[-1]) <= 1 or len(indent) + len(", ".join(rows[-1])) + len(more) <= width:
                break
            rows[-1].pop()
            listed -= 1
        return ([indent + ", ".join(r) + "," for r in rows[:-1]]
                + [indent + ", ".join(rows[-1]) + more])
    return [indent + ", ".join(r) + ("," if i < len(rows) - 1 else "") for i, r in enumerate(rows)]


def _bands(checks: tuple[Check, ...], room: int) -> list[list[list[tuple[int, Check]]]]:
    """Cut the columns into bands no wider than *room*: band -> kind segments -> (column number, check)."""
    bands: list[list[list[tuple[int, Check]]]] = [[]]
    used = 0
    for number, check in enumerate(checks, 1):
        band = bands[-1]
        new_segment = not band or band[-1][-1][1].kind != check.kind
        need = 1 + (1 if new_segment and band else 0)
        if band and used + need > room:
            bands.append([])
            band, used, new_segment, need = bands[-1], 0, True, 1
        if new_segment:
            band.append([])
        band[-1].append((number, check))
        used += need
    return bands


def _header(band: list[list[tuple[int, Check]]], digits: int, pad: str) -> list[str]:
    """Each kind's name starting above its first column (on a lower line when the one above is
    taken), then the column numbers written downwards."""
    label_rows: list[list[str]] = []
    column = 0
    for seg in band:
        label = KIND_SHORT[seg[0][1].kind]
        for row in label_rows:
            if all(ch == " " for ch in row[max(column - 1, 0):column + len(label) + 1]):
                break
        else:
            row = []
            label_rows.append(row)
        row.extend(" " * max(column + len(label) - len(row), 0))
        row[column:column + len(label)] = label
        column += len(seg) + 1
    lines = [pad + "".join(row).rstrip() for row in label_rows]
    for d in range(digits):
        lines.append(pad + " ".join("".join(str(n).rjust(digits)[d] for n, _ in seg) for seg in band))
    return lines


def _matrix(groups: list[KernelGroup], checks: tuple[Check, ...], paint: _Painter,
            width: int) -> list[str]:
    count_w = max((len(str(len(g.kernels))) for g in groups), default=1)
    pad = " " * (2 + count_w + 2)
    room = max(width - len(pad) - 3 - _MIN_NAMES, 8)
    bands = _bands(checks, room) if checks else [[]]
    if len(bands) > 1:  # as many bands, evened out: no last band of two columns
        even = -(-len(checks) // len(bands))
        while len(_bands(checks, even)) > len(bands):
            even += 1
        bands = _bands(checks, even)
    digits = len(str(len(checks)))
    lines: list[str] = []
    for b, band in enumerate(bands):
        if len(bands) > 1:
            first, last = band[0][0][0], band[-1][-1][0]
            lines.append(f"checks {first}-{last} of {len(checks)}:")
        if band:
            lines += _header(band, digits, pad)
        band_w = sum(len(seg) for seg in band) + max(len(band) - 1, 0)
        for group in groups:
            cells = " ".join("".join(paint.glyph(group.verdicts[n - 1]) for n, _ in seg) for seg in band)
            names = _names_line(group.kernels, width - len(pad) - band_w - 3)
            lines.append(f"  {len(group.kernels):>{count_w}}  {cells}   {names}".rstrip())
        if b != len(bands) - 1:
            lines.append("")
    return lines


def _check_key(checks: tuple[Check, ...], width: int) -> list[str]:
    """``kfunc   1 bpf_task_acquire  2 bpf_task_release``: each kind's columns, named."""
    label_w = max((len(c.kind.label) for c in checks), default=0)
    lines: list[str] = []
    for kind in CheckKind:
        entries = [f"{n} {c.name}" for n, c in enumerate(checks, 1) if c.kind == kind]
        if not entries:
            continue
        indent = "  " + " " * label_w + "  "
        room = width - len(indent)
        line = "  " + kind.label.ljust(label_w) + "  "
        start = True
        for entry in entries:
            entry = _fit(entry, room)
            if not start and len(line) + 2 + len(entry) > width:
                lines.append(line)
                line, start = indent, True
            line += ("" if start else "  ") + entry
            start = False
        lines.append(line)
    return lines


def _legend(paint: _Painter, any_missing: bool, width: int) -> list[str]:
    parts = [(v, f"{VERDICT_MEANING[v]}") for v in Verdict]
    if any_missing:
        parts.append((None, "not answered"))
    lines, line, used = [], "legend: ", 8
    for verdict, meaning in parts:
        sep = "" if used == 8 else "   "
        if used + len(sep) + 2 + len(meaning) > width:
            lines.append(line)
            line, used, sep = " " * 8, 8, ""
        line += sep + paint.glyph(verdict) + " " + meaning
        used += len(sep) + 2 + len(meaning)
    return lines + [line]


def _reasons(group: ReasonGroup, paint: _Painter, width: int) -> list[str]:
    n = len(group.kernels)
    noun, verb = ("kernel", _HEADING[group.verdict][0]) if n == 1 else ("kernels", _HEADING[group.verdict][1])
    head = f"{paint.glyph(group.verdict)} {n} {noun} {verb}:"
    lines = [head] + _names_block(group.kernels, width, "    ")
    if group.error is not None:
        lines += textwrap.wrap(group.error, width=width, initial_indent="      ",
                               subsequent_indent="      ") or ["      (no reason given)"]
        return lines
    key_w = min(max(len(c.check) for c in group.cells), 36)
    for cell in group.cells:
        first = f"      {paint.glyph(cell.verdict)} {cell.check.ljust(key_w)}  "
        text = reason(cell)
        visible = 6 + 2 + max(len(cell.check), key_w) + 2
        if visible > width - 20:  # a very long check key: the reason goes on the next line
            lines.append(first.rstrip())
            first, visible = " " * 10, 10
        wrapped = textwrap.wrap(text, width=max(width - visible, 20)) or [""]
        lines.append(first + wrapped[0])
        lines += [" " * visible + more for more in wrapped[1:]]
    return lines


def render_text(report: FleetReport, out: TextIO, *, color: bool, width: int | None = None) -> None:
    """Write the matrix, the legend, the check key and the reasons to *out*.

    *width* is the line length to fit (default: the terminal's, kept between
    60 and 120); *color* adds ANSI colours (the caller decides: a tty, no
    ``NO_COLOR``).
    """
    width = width or _default_width()
    paint = _Painter(color)
    checks = ordered_checks(report)
    groups = group_kernels(report)
    sentence = summarize(report).sentence()
    if len(report.artifact) + 2 + len(sentence) <= width:
        lines = [f"{paint.bold(report.artifact)}: {sentence}"]
    else:  # the artifact on its own line, the counts below
        lines = [paint.bold(report.artifact) + ":"] + textwrap.wrap(
            sentence, width=width, initial_indent="  ", subsequent_indent="  ")
    if not report.kernels:
        out.write("\n".join(lines) + "\n")
        return
    lines.append("")
    lines += _matrix(groups, checks, paint, width)
    lines.append("")
    lines += _legend(paint, any(v is None for g in groups for v in g.verdicts), width)
    if checks:
        lines.append("checks:")
        lines += _check_key(checks, width)
    reasons = group_reasons(report)
    if reasons:
        lines.append("")
        lines.append(paint.bold("reasons:"))
        for group in reasons:
            lines += _reasons(group, paint, width)
    out.write("\n".join(lines) + "\n")
