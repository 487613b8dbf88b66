"""The differential test's verdicts: prediction against observation, and the agreement table.

A program **agrees** when the kernel accepted it exactly when predicted, with
the predicted errno, the predicted seed log line (or none), and -- for a
refusal before or after the seed's pass -- the predicted reason.  A
disagreement is **explained** only by one of :data:`EXPLAINED`: each a
named, narrow rule with the reason written in docs/FINDINGS.md ("Differential
test: model vs patched kernel"); anything else is unexplained, and the test
fails on it.
"""

from __future__ import annotations

import errno as _errno
import re
import statistics
from dataclasses import dataclass
from typing import Callable, Sequence

from differential.expect import Expected, Stage, predict
from differential.harness import Observed
from differential.programs import VARIADIC_FUNCTIONS, Case, CaseClass, Corpus


@dataclass(frozen=True, slots=True)
class Explained:
    """A disagreement that is understood: *applies* says whether it is this one."""

    name: str
    reason: str
    applies: Callable[[Case, Expected, Observed], bool]


#: ``btf_distill_func_proto()``'s refusal of a variadic FUNC, in ``bpf_add_kfunc_call()``.
VARIADIC_REFUSED = re.compile(r"The function (\w+) with variable args is unsupported\.")


def _registration_between_resolutions(case: Case, expected: Expected, observed: Observed) -> bool:
    """The kernel refused a variadic FUNC that the model resolved, and said nothing of the seed."""
    m = VARIADIC_REFUSED.fullmatch(observed.reason or "")
    return (not observed.accepted and observed.errno == _errno.EINVAL
            and observed.seed_line is None and m is not None
            and m.group(1) in VARIADIC_FUNCTIONS and m.group(1) in expected.resolved)


#: The explained disagreements.
EXPLAINED: tuple[Explained, ...] = (
    Explained(
        "registration_between_resolutions",
        "7.3's add_kfuncs() registers each call (bpf_add_kfunc_call) right after the seed "
        "resolved it, before it looks at the next instruction: a resolved FUNC that "
        "registration refuses (a variadic one) ends the load there, with EINVAL and no seed "
        "line, where the model, which resolves every call before anything else, predicts "
        "acceptance or a later call's seed failure",
        _registration_between_resolutions),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    case: Case
    expected: Expected
    observed: Observed
    differences: tuple[str, ...]
    explained_by: str | None = None

    @property
    def agrees(self) -> bool:
        return not self.differences

    def describe(self) -> str:
        e, o = self.expected, self.observed
        return (f"#{self.case.index} {self.case.klass.value} ({self.case.detail or '-'}; "
                f"{self.case.attach.value}): differs in {', '.join(self.differences)}: "
                f"predicted accepted={e.accepted} errno={e.errno} seed line={e.seed_line!r} "
                f"reason={e.reason!r}; kernel accepted={o.accepted} errno={o.errno} "
                f"seed line={o.seed_line!r} reason={o.reason!r}")


def differences(expected: Expected, observed: Observed) -> tuple[str, ...]:
    """The fields in which the kernel did not do what was predicted."""
    out = []
    if expected.accepted != observed.accepted:
        out.append("accepted")
    if expected.errno != observed.errno:
        out.append("errno")
    if expected.seed_line != observed.seed_line:
        out.append("seed line")
    if expected.stage in (Stage.BEFORE, Stage.AFTER) and expected.reason != observed.reason:
        out.append("reason")
    return tuple(out)


def judge(case: Case, expected: Expected, observed: Observed) -> Verdict:
    diff = differences(expected, observed)
    if not diff:
        return Verdict(case, expected, observed, diff)
    rule = next((x.name for x in EXPLAINED if x.applies(case, expected, observed)), None)
    return Verdict(case, expected, observed, diff, rule)


def verdicts(corpus: Corpus, observed: Sequence[Observed], vmlinux_raw: bytes) -> list[Verdict]:
    """Predict every program of *corpus* against the kernel BTF *vmlinux_raw* and judge it."""
    from sigbpf.btf import BTF

    if len(observed) != len(corpus.cases):
        raise ValueError(f"{len(observed)} observations for {len(corpus.cases)} programs")
    vmlinux = BTF.parse(vmlinux_raw, file="the kernel's vmlinux BTF", validate=False)
    prog_btfs = [BTF.parse(b.raw) for b in corpus.btfs]
    return [judge(c, predict(c, prog_btfs, vmlinux), o) for c, o in zip(corpus.cases, observed)]


@dataclass(frozen=True, slots=True)
class Row:
    klass: CaseClass
    programs: int
    agree: int
    explained: int
    unexplained: int
    accepted: int
    median_us: float


def table(results: Sequence[Verdict]) -> list[Row]:
    """One row per case class, in :class:`CaseClass` order."""
    rows = []
    for klass in CaseClass:
        mine = [v for v in results if v.case.klass is klass]
        if not mine:
            continue
        explained = sum(1 for v in mine if not v.agrees and v.explained_by)
        agree = sum(1 for v in mine if v.agrees)
        rows.append(Row(klass, len(mine), agree, explained, len(mine) - agree - explained,
                        sum(1 for v in mine if v.observed.accepted),
                        statistics.median(v.observed.seconds for v in mine) * 1e6))
    return rows


def render(results: Sequence[Verdict]) -> str:
    """The agreement table as text (a reStructuredText simple table)."""
    rows = table(results)
    head = ("case class", "programs", "agree", "explained", "disagree", "accepted", "µs/load")
    body = [(r.klass.value, str(r.programs), str(r.agree), str(r.explained), str(r.unexplained),
             str(r.accepted), f"{r.median_us:.0f}") for r in rows]
    total = ("total", str(sum(r.programs for r in rows)), str(sum(r.agree for r in rows)),
             str(sum(r.explained for r in rows)), str(sum(r.unexplained for r in rows)),
             str(sum(r.accepted for r in rows)),
             f"{statistics.median(v.observed.seconds for v in results) * 1e6:.0f}")
    widths = [max(len(x[i]) for x in (head, *body, total)) for i in range(len(head))]
    rule = "  ".join("=" * w for w in widths)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([rule, line(head), rule, *map(line, body), rule, line(total), rule])
