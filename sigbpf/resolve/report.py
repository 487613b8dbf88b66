"""One program through the seed's pass and sigbpf's checks: :func:`analyze` -> :class:`ProgramReport`.

Order of work, for one program:

1. the seed's pass (:func:`~sigbpf.resolve.resolver.resolve_kfunc_calls`),
   exactly as the kernel would run it; its log and errno are kept verbatim;
2. on the calls it resolved (all of them, or those before the first failure),
   the checks beyond the seed, each unless switched off in
   :class:`CheckOptions`: prototype (:mod:`.prototype`), is-it-a-kfunc
   (:mod:`.kfunc_check`), module replacement (:mod:`.modules`);
3. the digests before and after resolution (:mod:`.digest`), unless
   switched off (``CheckOptions.digest``, the CLI's ``--no-digest``).

The program is accepted when the seed's pass succeeds and no check reports
an error.  ``errno`` is the seed's when it failed (what the kernel returns),
else the errno of the first error finding.  Findings are added to the log as
``sigbpf: <severity>: kfunc call insn N: ...`` lines after the kernel's lines.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from sigbpf.asm.instruction import Instruction
from sigbpf.errors import errno_name
from sigbpf.resolve.findings import Finding
from sigbpf.resolve.modules import POLICY, ModuleBTF, check_module_collisions
from sigbpf.resolve.resolver import Resolution, resolve_kfunc_calls

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.resolve.subject import BoundProgram  # only analyze_bound takes one
    from sigbpf.btf.spec import BTF
    from sigbpf.resolve.kfunc_check import KfuncSet

#: The digest a map's ``excl_prog_hash`` is compared with (measured, docs/FINDINGS.md §4):
#: ``bpf_prog_calc_tag()`` hashes the instructions as they reach the kernel, before the
#: seed's rewrite. So "after" (the resolved instructions) when sigbpf resolves in userspace,
#: "before" (src_reg 3, prog-BTF ids) when the kernel resolves them itself.
_EXCL_PROG_HASH = {
    False: ("after", "sigbpf resolves the calls in userspace for this kernel, so the kernel "
                     "digests the resolved instructions (measured on 6.18)"),
    True: ("before", "this kernel resolves the calls itself, after bpf_prog_calc_tag() has "
                     "digested the instructions as sent (measured on the seed test kernel)"),
    None: ("after", "unknown whether this kernel resolves src_reg 3 itself: the digest after "
                    "resolution if sigbpf resolves in userspace (its path there), before if the "
                    "kernel does (measured on the seed test kernel)"),
}


def excl_prog_hash_digest(native: bool | None) -> tuple[str, str]:
    """("before"|"after", why): the digest ``excl_prog_hash`` must equal on a kernel that
    resolves src_reg 3 itself (*native* True), does not (False), or may (None)."""
    return _EXCL_PROG_HASH[native]


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """Which checks and reports beyond the seed run (all on by default)."""

    prototype: bool = True
    kfunc: bool = True
    module: bool = True
    digest: bool = True


@dataclass(frozen=True, slots=True)
class Digest:
    """``prog->tag`` and ``prog->digest`` of one instruction stream."""

    tag: bytes
    sha256: bytes

    @classmethod
    def of(cls, insns: Sequence[Instruction]) -> "Digest":
        from sigbpf.resolve.digest import prog_sha256, prog_tag

        return cls(prog_tag(insns), prog_sha256(insns))

    def as_json(self) -> dict[str, str]:
        return {"tag": self.tag.hex(), "sha256": self.sha256.hex()}


@dataclass(frozen=True, slots=True)
class ProgramReport:
    """Everything ``sigbpf resolve`` says about one program."""

    name: str | None
    resolution: Resolution
    findings: tuple[Finding, ...]
    before: Digest | None  # None when the digest report is off
    after: Digest | None  # None when the program is rejected or the digest report is off
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.resolution.ok and not any(f.is_error for f in self.findings)

    @property
    def errno(self) -> int | None:
        if not self.resolution.ok:
            return self.resolution.errno
        return next((f.errno for f in self.findings if f.is_error), None)

    @property
    def errno_name(self) -> str | None:
        return errno_name(self.errno)

    @property
    def log(self) -> list[str]:
        return [*self.resolution.log, *(f.log_line() for f in self.findings)]

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.name is not None:
            out["name"] = self.name
        out.update({
            "ok": self.ok, "errno": self.errno_name, "log": self.log,
            "calls": [c.as_json() for c in self.resolution.calls],
            "findings": [f.as_json() for f in self.findings],
            "digest": ({"before": self.before.as_json(),
                        "after": self.after.as_json() if self.after else None}
                       if self.before is not None else None),
        })
        return out


def analyze(insns: Sequence[Instruction], prog_btf: "BTF | None", vmlinux: "BTF | None", *,
            name: str | None = None, modules: Sequence[ModuleBTF] = (),
            kfunc_set: "KfuncSet | None" = None,
            options: CheckOptions = CheckOptions(),
            notes: Sequence[Finding] = ()) -> ProgramReport:
    """Run the seed's pass and the enabled checks over one program's instructions.

    *notes* are findings found before the pass (e.g. by binding an artifact
    to the kernel) to report along with the checks' own.
    """
    res = resolve_kfunc_calls(insns, prog_btf, vmlinux)
    resolved = res.resolved
    findings: list[Finding] = list(notes)
    checks: dict[str, str] = {}
    if options.prototype:
        from sigbpf.resolve.prototype import check_prototypes

        if prog_btf is not None and vmlinux is not None:
            findings += check_prototypes(resolved, prog_btf, vmlinux)
        checks["prototype"] = "on"
    else:
        checks["prototype"] = "off"
    if options.kfunc:
        from sigbpf.resolve.kfunc_check import check_is_kfunc

        kfunc_findings, source = check_is_kfunc(resolved, kfunc_set)
        findings += kfunc_findings
        checks["kfunc"] = source
    else:
        checks["kfunc"] = "off"
    if options.module:
        findings += check_module_collisions(res.calls, modules)
        checks["module"] = f"{len(modules)} module(s), {POLICY}"
    else:
        checks["module"] = "off"
    findings.sort(key=lambda f: (f.insn if f.insn is not None else -1))
    report_ok = res.ok and not any(f.is_error for f in findings)
    checks["digest"] = "on" if options.digest else "off"
    before = Digest.of(insns) if options.digest else None
    after = Digest.of(res.insns) if options.digest and report_ok else None
    return ProgramReport(name, res, tuple(findings), before, after, checks)


def analyze_bound(bound: BoundProgram, prog_btf: "BTF | None", vmlinux: "BTF", *,
                  modules: Sequence[ModuleBTF] = (), kfunc_set: "KfuncSet | None" = None,
                  options: CheckOptions = CheckOptions()) -> ProgramReport:
    """:func:`analyze` for a program bound to a kernel (:meth:`Subject.bind`).

    A program that binding already refused gets a rejected report carrying
    binding's log line and errno; the pass does not run.  A program whose load carries
    no func_info, line_info or CO-RE relocations is analyzed without *prog_btf*: the
    kernel does not attach it (:func:`~sigbpf.resolve.resolver.attached_prog_btf`).
    """
    if bound.error is not None:
        err = bound.error
        res = Resolution(bound.insns, (), tuple(err.log or [err.message]),
                         err.errno or _errno.EINVAL, err.insn)
        before = Digest.of(bound.insns) if options.digest else None
        return ProgramReport(bound.name, res, tuple(bound.notes), before, None, {})
    return analyze(bound.insns, prog_btf if bound.prog_btf_attached else None, vmlinux,
                   name=bound.name, modules=modules, kfunc_set=kfunc_set, options=options,
                   notes=bound.notes)
