"""What the fleet report's renderers share: checks in matrix order, kernels grouped by identical answers.

A thousand kernels rarely give a thousand different answers: the text matrix
(:mod:`sigbpf.fleet.render_text`) shows one row per *group* of kernels whose
verdicts agree on every check, and one block of reasons per group of kernels
whose non-OK cells read the same.  The HTML page (:mod:`sigbpf.fleet.render_html`)
groups again in the browser (its filters change the groups) but takes the
glyphs, the check order and the summary counts from here, so both say the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sigbpf.fleet.model import Cell, Check, CheckKind, FleetReport, KernelResult, Verdict

__all__ = ["GLYPHS", "NO_ANSWER", "KIND_SHORT", "VERDICT_MEANING", "KernelGroup", "ReasonGroup",
           "FleetSummary", "ordered_checks", "verdict_row", "version_key", "kernel_order",
           "group_kernels", "group_reasons", "reason", "summarize"]

# One character per verdict, the same on a terminal and in the HTML page.
GLYPHS: dict[Verdict, str] = {
    Verdict.OK: ".",
    Verdict.WARN: "!",
    Verdict.FAIL: "X",
    Verdict.UNREADABLE: "?",
}
NO_ANSWER = "-"  # a readable kernel with no cell for a check (the pipeline did not answer it)

VERDICT_MEANING: dict[Verdict, str] = {
    Verdict.OK: "ok",
    Verdict.WARN: "loads, but differs",
    Verdict.FAIL: "refused",
    Verdict.UNREADABLE: "could not read",
}


def ordered_checks(report: FleetReport) -> tuple[Check, ...]:
    """The report's checks in the matrix's column order: by kind, then as the report lists them."""
    return tuple(sorted(report.checks, key=lambda c: int(c.kind)))


def verdict_row(kernel: KernelResult, checks: tuple[Check, ...]) -> tuple[Verdict | None, ...]:
    """The kernel's verdict for each check (``None``: no answer); all UNREADABLE when it could not be read."""
    if kernel.error is not None:
        return (Verdict.UNREADABLE,) * len(checks)
    by_key = {c.check: c.verdict for c in kernel.cells}
    return tuple(by_key.get(c.key) for c in checks)


_VERSION_PART = re.compile(r"(\d+)")


def version_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order for kernel names: ``6.1.0-9`` before ``6.1.0-10`` before ``6.12.1``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part)
                 for part in _VERSION_PART.split(name) if part)


@dataclass(frozen=True, slots=True)
class KernelGroup:
    """Kernels (in version order) whose verdicts agree on every check."""

    verdicts: tuple[Verdict | None, ...]  # one per ordered check
    kernels: tuple[KernelResult, ...]

    @property
    def verdict(self) -> Verdict:
        """The group's worst verdict (an unreadable kernel is UNREADABLE even with no checks)."""
        return max((k.verdict for k in self.kernels), default=Verdict.OK)


def kernel_order(kernel: KernelResult) -> tuple[object, ...]:
    """The sort key that lists kernels in version order (then by where they came from)."""
    return (version_key(kernel.name), kernel.source)


def _by_name(kernels: list[KernelResult]) -> tuple[KernelResult, ...]:
    return tuple(sorted(kernels, key=kernel_order))


def group_kernels(report: FleetReport) -> list[KernelGroup]:
    """Kernels grouped by identical verdict rows, worst group first, then the largest."""
    checks = ordered_checks(report)
    groups: dict[tuple[bool, tuple[Verdict | None, ...]], list[KernelResult]] = {}
    for kernel in report.kernels:
        groups.setdefault((kernel.error is not None, verdict_row(kernel, checks)), []).append(kernel)
    out = [KernelGroup(row, _by_name(members)) for (_, row), members in groups.items()]
    out.sort(key=lambda g: (-int(g.verdict), -len(g.kernels), version_key(g.kernels[0].name)))
    return out


@dataclass(frozen=True, slots=True)
class ReasonGroup:
    """Kernels (in version order) that do not simply pass, for the same reasons.

    ``cells`` are the non-OK cells in check order (their ``value`` is the
    first kernel's: values such as BTF ids differ between kernels without
    changing the reason); ``error`` is set when the kernels could not be read
    (without the kernel's own path when the kernel is named by it).
    """

    verdict: Verdict
    kernels: tuple[KernelResult, ...]
    cells: tuple[Cell, ...] = ()
    error: str | None = None


def _own_path_dropped(kernel: KernelResult) -> str:
    """The kernel's error without its own path (listed above it), so that a directory of files
    refused for one reason is one block: ``k7.btf: offset 0x0: not BTF`` -> ``offset 0x0: not BTF``."""
    error = kernel.error or ""
    if kernel.name != kernel.source or not kernel.source:
        return error
    if error.startswith(kernel.source + ": "):
        return error[len(kernel.source) + 2:]
    return error.replace(kernel.source, "<this kernel>")


def group_reasons(report: FleetReport) -> list[ReasonGroup]:
    """Every kernel that is not OK everywhere, grouped by identical reasons, worst first."""
    order = {c.key: i for i, c in enumerate(ordered_checks(report))}
    groups: dict[tuple[object, ...], tuple[list[KernelResult], tuple[Cell, ...], str | None]] = {}
    for kernel in report.kernels:
        if kernel.error is not None:
            error: str | None = _own_path_dropped(kernel)
            key: tuple[object, ...] = ("error", error)
            cells: tuple[Cell, ...] = ()
        else:
            cells = tuple(sorted((c for c in kernel.cells if c.verdict != Verdict.OK),
                                 key=lambda c: (order.get(c.check, len(order)), c.check)))
            if not cells:
                continue
            key = tuple((c.check, c.verdict, c.code, c.also, c.detail) for c in cells)
            error = None
        groups.setdefault(key, ([], cells, error))[0].append(kernel)
    out = [ReasonGroup(max(k.verdict for k in members), _by_name(members), cells, error)
           for members, cells, error in groups.values()]
    out.sort(key=lambda g: (-int(g.verdict), -len(g.kernels), version_key(g.kernels[0].name)))
    return out


def reason(cell: Cell) -> str:
    """What a person reads for a cell: ``drift (also shadowed): <detail>``."""
    also = f" (also {', '.join(cell.also)})" if cell.also else ""
    return cell.code + also + (f": {cell.detail}" if cell.detail else "")


@dataclass(frozen=True, slots=True)
class FleetSummary:
    """How many kernels accept (some with warnings), refuse, or could not be read."""

    kernels: int
    checks: int
    ok: int
    warn: int
    fail: int
    unreadable: int

    @property
    def accept(self) -> int:
        return self.ok + self.warn

    def sentence(self) -> str:
        """``1000 kernels x 48 checks: 588 accept (120 with warnings), 400 refuse, 12 could not be read``."""
        parts = [f"{self.accept} accept" + (f" ({self.warn} with warnings)" if self.warn else ""),
                 f"{self.fail} refuse"]
        if self.unreadable:
            parts.append(f"{self.unreadable} could not be read")
        noun = "kernel" if self.kernels == 1 else "kernels"
        cnoun = "check" if self.checks == 1 else "checks"
        return f"{self.kernels} {noun} x {self.checks} {cnoun}: " + ", ".join(parts)


def summarize(report: FleetReport) -> FleetSummary:
    counts = {v: 0 for v in Verdict}
    for kernel in report.kernels:
        counts[kernel.verdict] += 1
    return FleetSummary(len(report.kernels), len(report.checks), counts[Verdict.OK],
                        counts[Verdict.WARN], counts[Verdict.FAIL], counts[Verdict.UNREADABLE])


# Short column-group labels for the matrix header (the check key spells the kind out).
KIND_SHORT: dict[CheckKind, str] = {
    CheckKind.PROGRAM: "prog",
    CheckKind.KFUNC: "kfunc",
    CheckKind.ATTACH: "attach",
    CheckKind.KSYM: "ksym",
    CheckKind.PROG_TYPE: "ptype",
    CheckKind.MAP_TYPE: "map",
    CheckKind.ATTACH_TYPE: "atype",
    CheckKind.HELPER: "helper",
    CheckKind.CORE: "core",
}
