"""``sigbpf check``: an artifact against one or many kernels' BTF, before deployment.

::

    sigbpf check ARTIFACT --btf K1 [--module M ...] [--btf-ids F] [--btf K2 ...] [--json]

``--module`` and ``--btf-ids`` belong to the ``--btf`` they follow (module
BTF is split BTF on that kernel's vmlinux).  The same checks as ``sigbpf
resolve`` (switch them off with ``--no-proto-check``, ``--no-kfunc-check``,
``--no-module-check``; ``--no-digest``: each program's ``"digest"`` is null),
shown as a matrix: one row per kfunc, one column per kernel, each cell
saying whether the name resolves (and to which id), whether the prototype is
compatible (and strict differences), whether it is a kfunc (or unknown), and
which modules also define it.

JSON::

    {"ok": bool,
     "kernels": [{"btf": path, "ok": bool, "kfunc_list": source,
                  "programs": [{"name", "ok", "errno", "log", "calls", "findings", "digest"}]}],
     "kfuncs": [{"name": str, "kernels": [{"kernel", "resolves", "btf_id", "log",
                 "prototype", "strict", "kfunc", "modules", "ok"}]}]}

Exit status: 0 every kernel accepts every program, 1 some kernel would reject, 2 bad input.
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence


class _KernelSpec:
    """One ``--btf`` with the ``--module`` / ``--btf-ids`` options that follow it."""

    def __init__(self, btf: str) -> None:
        self.btf = btf
        self.modules: list[str] = []
        self.btf_ids: list[str] = []


class _AddKernel(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        kernels = getattr(ns, "kernels", None) or []
        kernels.append(_KernelSpec(values))
        ns.kernels = kernels


class _AddToKernel(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        kernels = getattr(ns, "kernels", None)
        if not kernels:
            parser.error(f"{option_string} must follow the --btf it belongs to")
        getattr(kernels[-1], self.dest).append(values)


def configure(parser: argparse.ArgumentParser) -> None:
    from sigbpf.cli.resolve_cmd import add_check_flags

    parser.add_argument("artifact", metavar="ARTIFACT", help="a portable artifact")
    parser.add_argument("--btf", metavar="VMLINUX", action=_AddKernel, dest="kernels",
                        default=[], help="a kernel's vmlinux BTF (repeatable)")
    parser.add_argument("--module", metavar="FILE", action=_AddToKernel, dest="modules",
                        help="module BTF split on the preceding --btf (repeatable)")
    parser.add_argument("--btf-ids", metavar="FILE", action=_AddToKernel, dest="btf_ids",
                        help="the preceding --btf kernel's .BTF_ids section (untagged kernels)")
    add_check_flags(parser, digest=True)
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from sigbpf.cli.output import emit_json
    from sigbpf.fileio import read_input
    from sigbpf.errors import UsageError
    from sigbpf.resolve.matrix import check_matrix
    from sigbpf.resolve.report import CheckOptions
    from sigbpf.resolve.subject import Subject
    from sigbpf.resolve.target import KernelTarget

    if not args.kernels:
        raise UsageError("give at least one --btf VMLINUX")
    subject = Subject.from_artifact(read_input(args.artifact), args.artifact)
    targets = [KernelTarget.load(k.btf, k.modules, k.btf_ids, kfunc_set=args.kfunc_check)
               for k in args.kernels]
    options = CheckOptions(prototype=args.proto_check, kfunc=args.kfunc_check,
                           module=args.module_check, digest=args.digest)
    matrix = check_matrix(subject, targets, options)
    if args.json:
        emit_json(_as_json(matrix, targets))
    else:
        _print_text(matrix, targets)
    return 0 if matrix.ok else 1


def _as_json(matrix: Any, targets: Sequence[Any]) -> dict[str, object]:
    return {
        "ok": matrix.ok,
        "kernels": [{"btf": k.kernel, "ok": k.ok,
                     "kfunc_list": t.kfunc_set.source if t.kfunc_set is not None else "off",
                     "modules": [m.name for m in t.modules],
                     "programs": [p.as_json() for p in k.programs]}
                    for k, t in zip(matrix.kernels, targets)],
        "kfuncs": [{"name": name,
                    "kernels": [matrix.cell(name, k.kernel).as_json() for k in matrix.kernels]}
                   for name in matrix.kfuncs],
    }


def _cell_text(cell: Any) -> str:
    if cell.btf_id is None:
        return "missing"
    parts = [f"[{cell.btf_id}]"]
    if cell.prototype == "incompatible":
        parts.append("proto INCOMPATIBLE")
    elif cell.strict:
        parts.append("proto ~strict")
    if cell.kfunc == "no":
        parts.append("NOT A KFUNC")
    elif cell.kfunc == "unknown":
        parts.append("kfunc?")
    if cell.modules:
        parts.append("also in " + ",".join(cell.modules))
    return " ".join(parts)


def _print_text(matrix: Any, targets: Sequence[Any]) -> None:
    for i, k in enumerate(matrix.kernels, 1):
        print(f"K{i} = {k.kernel}: {'accepts' if k.ok else 'REJECTS'} the artifact")
        for p in k.programs:
            if not p.ok:
                print(f"     program {p.name}: rejected ({p.errno_name})")
                for line in p.log:
                    print(f"       {line}")
    if not matrix.kfuncs:
        print("no PROG_BTF kfunc calls")
        return
    width = max(len(n) for n in matrix.kfuncs)
    cols = [[_cell_text(matrix.cell(n, k.kernel)) for k in matrix.kernels] for n in matrix.kfuncs]
    widths = [max(len(f"K{i + 1}"), *(len(row[i]) for row in cols))
              for i in range(len(matrix.kernels))]
    print((" " * width + "  " + "  ".join(f"K{i + 1}".ljust(w) for i, w in enumerate(widths))).rstrip())
    for name, row in zip(matrix.kfuncs, cols):
        print(name.ljust(width) + "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    for name in matrix.kfuncs:
        for i, k in enumerate(matrix.kernels, 1):
            cell = matrix.cell(name, k.kernel)
            for d in cell.strict:
                print(f"K{i} {name}: strict: {d}")
