"""``sigbpf check``: an artifact against many kernels, as a kfunc x kernel matrix.

For every kernel (:class:`~sigbpf.resolve.target.KernelTarget`) two answers:

* per **program**, what that kernel's verifier would say: the seed's pass and
  sigbpf's checks over the program's real instruction stream
  (:func:`~sigbpf.resolve.report.analyze`), stopping at the first failing
  call like the kernel;
* per **kfunc** (each prog-BTF FUNC a src_reg 3 call names), the same pass
  on that call alone, so that every kfunc gets an answer on every kernel even
  when an earlier call would already stop the program: resolves? to which
  id? prototype compatible? strict differences? is it a kfunc (or unknown)?
  which modules also define it?

A kernel "rejects" the artifact when any program's report is not ok.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sigbpf.asm.instruction import Instruction, call_kfunc, ja
from sigbpf.asm.opcodes import PseudoCall
from sigbpf.resolve.findings import CheckName, Finding, Severity
from sigbpf.resolve.report import CheckOptions, ProgramReport, analyze, analyze_bound
from sigbpf.resolve.resolver import is_prog_btf_kfunc_call
from sigbpf.resolve.subject import Subject
from sigbpf.resolve.target import KernelTarget


@dataclass(frozen=True, slots=True)
class Cell:
    """One kfunc on one kernel."""

    name: str
    kernel: str
    btf_id: int | None
    log: tuple[str, ...]  # the seed's line when it does not resolve
    prototype: str  # "compatible" | "incompatible" | "off" | "-" (not resolved)
    strict: tuple[str, ...]  # strict-mode differences (warnings)
    kfunc: str  # "yes" | "no" | "unknown" | "off" | "-"
    modules: tuple[str, ...]  # modules that also define the name
    ok: bool

    def as_json(self) -> dict[str, object]:
        return {"kernel": self.kernel, "resolves": self.btf_id is not None,
                "btf_id": self.btf_id, "log": list(self.log), "prototype": self.prototype,
                "strict": list(self.strict), "kfunc": self.kfunc,
                "modules": list(self.modules), "ok": self.ok}


@dataclass(frozen=True, slots=True)
class KernelVerdict:
    """What one kernel says about every program of the artifact."""

    kernel: str
    programs: tuple[ProgramReport, ...]

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.programs)


@dataclass(frozen=True, slots=True)
class Matrix:
    """Rows: kfunc names (first-use order); columns: kernels."""

    kfuncs: tuple[str, ...]
    kernels: tuple[KernelVerdict, ...]
    cells: dict[tuple[str, str], Cell]

    @property
    def ok(self) -> bool:
        return all(k.ok for k in self.kernels)

    def cell(self, name: str, kernel: str) -> Cell:
        return self.cells[(name, kernel)]


def _kfunc_ids(subject: Subject) -> list[tuple[int, int]]:
    """(prog-BTF id, first insn) of every distinct src_reg 3 call target, in first-use order."""
    seen: dict[int, int] = {}
    for prog in subject.programs:
        for index, insn in enumerate(prog.insns):
            if is_prog_btf_kfunc_call(insn) and insn.off == 0 and insn.imm not in seen:
                seen[insn.imm] = index
    return list(seen.items())


def _cell(name: str, kernel: str, report: ProgramReport, options: CheckOptions) -> Cell:
    res = report.resolution
    call = res.calls[0]
    by_check: dict[CheckName, list[Finding]] = {}
    for f in report.findings:
        by_check.setdefault(f.check, []).append(f)
    resolved = call.btf_id is not None
    proto = by_check.get(CheckName.PROTOTYPE, [])
    if not options.prototype:
        prototype = "off"
    elif not resolved:
        prototype = "-"
    else:
        prototype = "incompatible" if any(f.is_error for f in proto) else "compatible"
    strict = tuple(d for f in proto if f.severity is Severity.WARNING for d in f.detail)
    kf = by_check.get(CheckName.KFUNC, [])
    if not options.kfunc:
        kfunc = "off"
    elif not resolved:
        kfunc = "-"
    elif any(f.is_error for f in kf):
        kfunc = "no"
    elif any(f.severity is Severity.NOTE for f in kf):
        kfunc = "unknown"
    else:
        kfunc = "yes"
    modules = tuple(f.module for f in by_check.get(CheckName.MODULE, []) if f.module)
    return Cell(name, kernel, call.btf_id, res.log, prototype, strict, kfunc, modules, report.ok)


def check_matrix(subject: Subject, targets: Sequence[KernelTarget],
                 options: CheckOptions = CheckOptions()) -> Matrix:
    """Every program and every kfunc of *subject* against every kernel in *targets*."""
    ids = _kfunc_ids(subject)
    prog_btf = subject.prog_btf
    names: list[str] = []
    kernels: list[KernelVerdict] = []
    cells: dict[tuple[str, str], Cell] = {}
    for target in targets:
        reports = tuple(analyze_bound(b, prog_btf, target.vmlinux, modules=target.modules,
                                      kfunc_set=target.kfunc_set, options=options)
                        for b in subject.bind(target.vmlinux))
        kernels.append(KernelVerdict(target.label, reports))
        for prog_id, insn in ids:
            # The same pass on this one call alone, placed at its real insn index
            # (after `goto +0` fillers) so that messages name the right instruction.
            stream: list[Instruction] = [ja(0)] * insn
            stream.append(call_kfunc(prog_id, src=PseudoCall.KFUNC_CALL_PROG_BTF))
            single = analyze(stream, prog_btf, target.vmlinux, modules=target.modules,
                             kfunc_set=target.kfunc_set, options=options)
            call = single.resolution.calls[0]
            name = call.name or f"(prog-BTF id {prog_id})"
            if name not in names:
                names.append(name)
            cells[(name, target.label)] = _cell(name, target.label, single, options)
    return Matrix(tuple(names), tuple(kernels), cells)
