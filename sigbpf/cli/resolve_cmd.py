"""``sigbpf resolve``: the verifier's PROG_BTF kfunc resolution pass, plus sigbpf's checks.

::

    sigbpf resolve ARTIFACT [--btf VMLINUX] [--json]
    sigbpf resolve --insns FILE [--prog-btf FILE] [--btf VMLINUX] [--json]

options: ``--module FILE`` (repeatable; split BTF on the ``--btf`` kernel),
``--btf-ids FILE`` (the vmlinux ELF's ``.BTF_ids`` section, for kernels whose
BTF has no ``bpf_kfunc`` tags), ``--no-proto-check``, ``--no-kfunc-check``,
``--no-module-check``, ``--no-digest`` (no tag/SHA-256 report: ``"digest"``
is null and ``"excl_prog_hash"`` absent), ``--unvalidated-prog-btf`` (with
``--insns``: take ``--prog-btf`` as given, without ``BPF_BTF_LOAD``'s checks,
so that the pass's own checks see what a kernel never would, e.g. the seed's
check 3, a FUNC without a name).

JSON::

    {"ok": bool, "errno": "EINVAL"|"ENOENT"|"EACCES"|null, "log": [str],
     "calls": [{"insn": int, "name": str, "btf_id": int|null}],
     "findings": [...], "digest": {...},           # raw input: one program
     "programs": [{"name": ..., same fields}],     # artifacts: per program
     "checks": {...}, "excl_prog_hash": {"compares": "before"|"after", "why": str},
     "native_prog_btf": {"native": bool|null, "source": "probe"|"BTF", "detail": str},
     "btf": path}

``native_prog_btf`` says whether the kernel resolves ``src_reg 3`` calls
itself: for the running kernel (``--btf`` is /sys/kernel/btf/vmlinux) the
probe answers; for a kernel given as BTF, :func:`sigbpf.resolve.native.native_prog_btf`
(true when the BTF has the seed's FUNC ``resolve_loader_kfunc``, else null:
unknown). ``excl_prog_hash.compares`` follows it: the digest "before"
resolution on a kernel that resolves natively, "after" otherwise.

``errno`` is the seed's (EINVAL, ENOENT) when its pass rejects; when a check
beyond the seed rejects, the errno the kernel would answer later: EINVAL for
an incompatible prototype, EACCES for a FUNC that is not a kfunc (the
verifier's "calling kernel function %s is not allowed").

Exit status: 0 every program resolves and passes the checks, 1 a program is
rejected (by the seed's rules or by a check), 2 bad input.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sigbpf.btf.spec import VMLINUX_PATH

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.spec import BTF


def add_check_flags(parser: argparse.ArgumentParser, *, digest: bool = False) -> None:
    """The three ``--no-*-check`` switches, shared with ``sigbpf check`` and ``sigbpf load``.

    With *digest* also ``--no-digest`` (the commands that report digests: resolve, check).
    """
    parser.add_argument("--no-proto-check", dest="proto_check", action="store_false",
                        help="do not compare the program-BTF prototype with the kernel's")
    parser.add_argument("--no-kfunc-check", dest="kfunc_check", action="store_false",
                        help="do not check that each resolved FUNC is a kfunc")
    parser.add_argument("--no-module-check", dest="module_check", action="store_false",
                        help="do not report kfunc names that a module also defines")
    if digest:
        parser.add_argument("--no-digest", dest="digest", action="store_false",
                            help="do not report the program tag / SHA-256 before and after "
                                 "resolution")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", nargs="?", metavar="ARTIFACT", help="a portable artifact")
    parser.add_argument("--insns", metavar="FILE", help="raw instructions (8 bytes each)")
    parser.add_argument("--prog-btf", metavar="FILE", help="raw program BTF (with --insns)")
    parser.add_argument("--unvalidated-prog-btf", action="store_true",
                        help="with --prog-btf: skip BPF_BTF_LOAD's checks of the program BTF "
                             "(a kernel never gets such BTF; shows the pass's own checks)")
    parser.add_argument("--btf", metavar="VMLINUX", default=VMLINUX_PATH,
                        help=f"the kernel's vmlinux BTF (default {VMLINUX_PATH})")
    parser.add_argument("--module", metavar="FILE", action="append", default=[],
                        help="module BTF, split on --btf (repeatable)")
    parser.add_argument("--btf-ids", metavar="FILE", action="append", default=[],
                        help="the kernel's .BTF_ids section: kfunc sets of untagged kernels")
    add_check_flags(parser, digest=True)
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from sigbpf.cli.output import emit_json
    from sigbpf.fileio import read_input
    from sigbpf.errors import UsageError
    from sigbpf.resolve.report import CheckOptions, analyze_bound
    from sigbpf.resolve.subject import Subject
    from sigbpf.resolve.target import KernelTarget

    if (args.artifact is None) == (args.insns is None):
        raise UsageError("give either ARTIFACT or --insns FILE")
    if args.prog_btf is not None and args.insns is None:
        raise UsageError("--prog-btf goes with --insns")
    if args.unvalidated_prog_btf and args.prog_btf is None:
        raise UsageError("--unvalidated-prog-btf goes with --prog-btf")
    if args.artifact is not None:
        subject = Subject.from_artifact(read_input(args.artifact), args.artifact)
    else:
        subject = Subject.from_raw(
            read_input(args.insns), args.insns,
            read_input(args.prog_btf) if args.prog_btf is not None else None, args.prog_btf,
            validate=not args.unvalidated_prog_btf)
    target = KernelTarget.load(args.btf, args.module, args.btf_ids, kfunc_set=args.kfunc_check)
    options = CheckOptions(prototype=args.proto_check, kfunc=args.kfunc_check,
                           module=args.module_check, digest=args.digest)
    reports = [analyze_bound(b, subject.prog_btf, target.vmlinux, modules=target.modules,
                             kfunc_set=target.kfunc_set, options=options)
               for b in subject.bind(target.vmlinux)]
    ok = all(r.ok for r in reports)
    native = native_support(args.btf, target.vmlinux)
    if args.json:
        emit_json(_as_json(reports, subject.is_artifact, args.btf, args.digest, native))
    else:
        _print_text(reports, args.btf, args.digest, native)
    return 0 if ok else 1


@dataclass(frozen=True, slots=True)
class NativeSupport:
    """Does the kernel resolve src_reg 3 itself: True/False, None = unknown; how it was known."""

    native: bool | None
    source: str   # "probe" (the running kernel) or "BTF"
    detail: str

    def as_json(self) -> dict[str, object]:
        return {"native": self.native, "source": self.source, "detail": self.detail}


def native_support(btf_path: str, vmlinux: "BTF") -> NativeSupport:
    """For the running kernel's BTF path, the probe (the BTF rule if it cannot run: no
    permission); for any other kernel, the BTF rule (:mod:`sigbpf.resolve.native`)."""
    import os

    from sigbpf.resolve.native import describe, native_prog_btf

    if os.path.realpath(btf_path) == os.path.realpath(VMLINUX_PATH):
        from sigbpf.errors import KernelError
        from sigbpf.kernel.probe import kernel_resolves_prog_btf

        try:
            probe = kernel_resolves_prog_btf()
            return NativeSupport(probe.native, "probe",
                                 f"{describe(probe.native, source='probe')}: {probe.detail}")
        except KernelError:
            pass
    native = native_prog_btf(vmlinux)
    return NativeSupport(native, "BTF", describe(native, source="BTF"))


def _as_json(reports: list, is_artifact: bool, btf: str, digest: bool,
             native: NativeSupport) -> dict[str, object]:
    from sigbpf.resolve.report import excl_prog_hash_digest

    if not is_artifact:
        out = reports[0].as_json()
    else:
        prefix = len(reports) > 1
        failing = next((r for r in reports if not r.ok), None)
        out = {
            "ok": failing is None,
            "errno": failing.errno_name if failing else None,
            "log": [f"{r.name}: {line}" if prefix else line for r in reports for line in r.log],
            "calls": [{**c.as_json(), "program": r.name}
                      for r in reports for c in r.resolution.calls],
            "findings": [{**f.as_json(), "program": r.name} for r in reports for f in r.findings],
            "programs": [r.as_json() for r in reports],
        }
    out["checks"] = reports[0].checks if reports else {}
    if digest:
        compares, why = excl_prog_hash_digest(native.native)
        out["excl_prog_hash"] = {"compares": compares, "why": why}
    out["native_prog_btf"] = native.as_json()
    out["btf"] = btf
    return out


def _print_text(reports: list, btf: str, digest: bool, native: NativeSupport) -> None:
    from sigbpf.resolve.report import excl_prog_hash_digest

    for r in reports:
        label = f"program {r.name}" if r.name is not None else "instructions"
        calls = r.resolution.calls
        if r.ok:
            print(f"{label}: resolved {len(calls)} kfunc call(s) against {btf}")
        else:
            print(f"{label}: rejected ({r.errno_name})")
        for c in calls:
            target = f"vmlinux FUNC [{c.btf_id}]" if c.btf_id is not None else "unresolved"
            print(f"  insn {c.insn}: {c.name or '(prog-BTF id ' + str(c.prog_btf_id) + ')'}"
                  f" -> {target}")
        for line in r.log:
            print(f"  {line}")
        for f in r.findings:
            if f.prototypes:
                print(f"      program: {f.prototypes[0]}")
                print(f"      kernel:  {f.prototypes[1]}")
            for d in f.detail:
                print(f"      {d}")
        if r.before is None:
            continue
        after = r.after.tag.hex() if r.after else "-"
        print(f"  tag     before {r.before.tag.hex()}  after {after}")
        after = r.after.sha256.hex() if r.after else "-"
        print(f"  sha256  before {r.before.sha256.hex()}")
        print(f"          after  {after}")
    print(native.detail)
    if digest:
        compares, why = excl_prog_hash_digest(native.native)
        print(f"excl_prog_hash: compare with the digest {compares} resolution: {why}")
