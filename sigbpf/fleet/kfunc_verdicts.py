"""``program:`` and ``kfunc:`` cells: the seed's pass and sigbpf's kfunc checks, for one kernel.

Both come from :func:`sigbpf.resolve.matrix.check_matrix` run on one kernel
-- the code behind ``sigbpf resolve`` -- so the fleet check says exactly what
``sigbpf resolve``/``sigbpf load`` would for that kernel:

``program:NAME``
    ``accepts`` (OK) or ``rejected`` (FAIL, ``value`` = the errno, ``detail``
    = the first log line: the seed's ``kfunc call insn N: X not found in
    vmlinux BTF``, or a ``sigbpf: error:`` finding).

``kfunc:NAME`` -- ``code`` is the worst finding, ``also`` the milder ones:
    ``resolves`` (OK, ``value`` = the vmlinux FUNC id); ``missing`` (FAIL; a
    ``__weak`` kfunc: ``missing-weak``, WARN -- the loader poisons its calls,
    which must be dead code); ``incompatible`` (FAIL: libbpf's prototype
    rule); ``not-kfunc`` (FAIL: the FUNC is not in the kernel's kfunc set --
    DECL_TAG ``bpf_kfunc``, or ``.BTF_ids`` for untagged kernels);
    ``drift`` (WARN: compatible, but the strict comparison differs);
    ``kfunc-unknown`` (WARN: untagged kernel, no ``.BTF_ids``);
    ``shadowed`` (WARN: a module also defines the name; the call stays pinned
    to vmlinux); ``module-only`` (as ``also`` of ``missing``: only a module has
    it, which PROG_BTF resolution cannot reach).
"""

from __future__ import annotations

import errno as _errno
from typing import TYPE_CHECKING, Sequence

from sigbpf.fleet.model import Cell, CheckKind, Verdict

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Artifact
    from sigbpf.fleet.scanbtf import ScanBTF
    from sigbpf.resolve.kfunc_check import KfuncSet
    from sigbpf.resolve.modules import ModuleBTF
    from sigbpf.resolve.report import CheckOptions
    from sigbpf.resolve.subject import Subject


def kfunc_set(vmlinux: "ScanBTF", btf_ids: Sequence[tuple[str, bytes]]) -> "KfuncSet":
    """The kernel's kfunc ids: DECL_TAG ``bpf_kfunc`` if tagged, else its ``.BTF_ids`` sets
    (:meth:`KfuncSet.for_kernel`'s rule, for sections already in memory), else unknown."""
    from sigbpf.btf import kfuncs
    from sigbpf.errors import FormatError, NotFoundError
    from sigbpf.resolve.kfunc_check import KfuncSet

    if not btf_ids or kfuncs.has_kfunc_tags(vmlinux):
        return KfuncSet.for_kernel(vmlinux)
    found: set[int] = set()
    for where, data in btf_ids:
        try:
            found |= {k.id for k in kfuncs.kfuncs_from_btf_ids(vmlinux, data, file=where)}
        except NotFoundError as err:  # the wrong kernel's section: bad input
            raise FormatError(err.message, file=where) from None
    return KfuncSet(frozenset(found), ".BTF_ids kfunc sets")


def program_and_kfunc_cells(subject: "Subject", artifact: "Artifact", label: str, vmlinux: "ScanBTF",
                            modules: Sequence["ModuleBTF"], kset: "KfuncSet | None",
                            options: "CheckOptions") -> list[Cell]:
    """The ``program:`` cells, then the ``kfunc:`` cells (artifact kfunc-table order)."""
    from sigbpf.resolve.matrix import check_matrix
    from sigbpf.resolve.target import KernelTarget

    target = KernelTarget(label, vmlinux, tuple(modules), kset)
    matrix = check_matrix(subject, [target], options)
    (kernel,) = matrix.kernels
    cells: list[Cell] = []
    for p in kernel.programs:
        key = f"{CheckKind.PROGRAM.label}:{p.name}"
        if p.ok:
            resolved = len(p.resolution.resolved)
            cells.append(Cell(key, Verdict.OK, "accepts",
                              f"resolution pass: {resolved} kfunc call(s) resolved"))
        else:
            line = next((ln for ln in p.log if "error" in ln or not ln.startswith("sigbpf:")),
                        p.log[0] if p.log else "rejected")
            if p.errno_name and p.errno_name not in line:
                line = f"{line} ({p.errno_name})"
            cells.append(Cell(key, Verdict.FAIL, "rejected", line, p.errno))
    weak = {k.name: k.weak for k in artifact.kfuncs}
    for k in artifact.kfuncs:
        key = f"{CheckKind.KFUNC.label}:{k.name}"
        try:
            mc = matrix.cell(k.name, label)
        except KeyError:  # in the kfunc table, called by no src_reg 3 call (&kfunc only)
            mc = None
        cells.append(_kfunc_cell(key, k.name, mc, weak[k.name], vmlinux, modules))
    return cells


def _kfunc_cell(key: str, name: str, mc, weak: bool, vmlinux: "ScanBTF",
                modules: Sequence["ModuleBTF"]) -> Cell:
    from sigbpf.btf.kinds import Kind
    from sigbpf.errors import NotFoundError

    if mc is None:  # look it up directly (an address-only kfunc)
        try:
            btf_id: int | None = vmlinux.find_by_name_kind(name, Kind.FUNC)
        except NotFoundError:
            btf_id = None
        mods = tuple(m.name for m in modules if m.own_funcs(name))
        if btf_id is None:
            return _missing(key, name, weak, mods)
        also = ("shadowed",) if mods else ()
        return Cell(key, Verdict.WARN if also else Verdict.OK, also[0] if also else "resolves",
                    f"FUNC [{btf_id}] (address only: no call to check)", btf_id)
    if mc.btf_id is None:
        return _missing(key, name, weak, mc.modules)
    findings: list[tuple[Verdict, str, str]] = []
    if mc.prototype == "incompatible":
        findings.append((Verdict.FAIL, "incompatible", "prototype incompatible with the kernel's "
                                                       "(libbpf's rule)"))
    if mc.kfunc == "no":
        findings.append((Verdict.FAIL, "not-kfunc", "not a kfunc of this kernel: the verifier would "
                                                    "refuse it (EACCES)"))
    if mc.strict and mc.prototype != "incompatible":
        findings.append((Verdict.WARN, "drift", "prototype drift: " + "; ".join(mc.strict)))
    if mc.kfunc == "unknown":
        findings.append((Verdict.WARN, "kfunc-unknown", "cannot tell whether it is a kfunc (untagged "
                                                        "BTF, no .BTF_ids)"))
    if mc.modules:
        findings.append((Verdict.WARN, "shadowed", "also defined by module(s) " + ", ".join(mc.modules)
                         + "; the call stays pinned to vmlinux"))
    if not findings:
        return Cell(key, Verdict.OK, "resolves", f"FUNC [{mc.btf_id}]", mc.btf_id)
    findings.sort(key=lambda f: -int(f[0]))
    verdict, code, _ = findings[0]
    detail = f"FUNC [{mc.btf_id}]: " + "; ".join(f[2] for f in findings)
    return Cell(key, verdict, code, detail, mc.btf_id, tuple(f[1] for f in findings[1:]))


def _missing(key: str, name: str, weak: bool, modules: Sequence[str]) -> Cell:
    also = ("module-only",) if modules else ()
    where = f"; only module(s) {', '.join(modules)} define it (unreachable: pinned to vmlinux)" \
        if modules else ""
    if weak:
        return Cell(key, Verdict.WARN, "missing-weak",
                    f"{name} is not in vmlinux BTF; __weak: its calls are poisoned and must be dead "
                    f"code{where}", None, also)
    return Cell(key, Verdict.FAIL, "missing", f"{name} not found in vmlinux BTF{where}",
                _errno.ENOENT, also)
