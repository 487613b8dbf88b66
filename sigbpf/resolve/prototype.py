"""Prototype check: the program-BTF FUNC_PROTO against the kernel FUNC the name resolved to.

The seed resolves by name only, so a program declaring
``bpf_task_from_pid(s32 pid, s32 extra)`` would be bound to the kernel's
one-argument function; the verifier then checks the *kernel's* prototype
against the registers, and whatever the program meant by its own prototype
(the prototype it was signed with) is never compared.  This check answers
the review's "resolution by name only" point:

* libbpf's rule (:func:`sigbpf.btf.compat.types_are_compat`, what libbpf
  applies to every ``__ksym`` extern before loading) fails -> **error**,
  errno ``EINVAL`` (the errno of the seed's other rejections, and what the
  verifier returns when a kfunc's arguments do not match in
  ``check_kfunc_args``).  The message shows both prototypes as C.
* compatible, but the strict comparison finds differences libbpf ignores
  (int size, signedness, const below a pointer, struct names, ...) ->
  **warning** with both prototypes side by side.  KERNEL-FACTS lists real
  drifts of this kind between kernels (``bpf_dynptr_adjust`` u32 -> u64, ...).
"""

from __future__ import annotations

import errno as _errno
from typing import TYPE_CHECKING, Sequence

from sigbpf.resolve.findings import CheckName, Finding, Severity
from sigbpf.resolve.resolver import KfuncCall

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.spec import BTF

PROTOTYPE_ERRNO = _errno.EINVAL


def check_prototypes(calls: Sequence[KfuncCall], prog_btf: "BTF", vmlinux: "BTF") -> list[Finding]:
    """One finding per resolved prog-BTF FUNC whose prototype differs from the kernel's."""
    from sigbpf.btf.compat import compare_func_protos

    findings: list[Finding] = []
    seen: set[int] = set()
    for call in calls:
        if call.btf_id is None or call.prog_btf_id in seen:
            continue
        seen.add(call.prog_btf_id)
        report = compare_func_protos(prog_btf, call.prog_btf_id, vmlinux, call.btf_id, strict=True)
        protos = (report.local, report.target)
        if not report.compatible:
            why = "; ".join(str(d) for d in report.differences if d.breaks_compat)
            findings.append(Finding(
                CheckName.PROTOTYPE, Severity.ERROR, call.name, call.insn,
                f"{call.name}: prototype incompatible with the kernel's ({why}): "
                f"program '{report.local}', kernel '{report.target}'",
                errno=PROTOTYPE_ERRNO, prototypes=protos,
                detail=tuple(str(d) for d in report.differences)))
        elif report.strict_differences:
            why = "; ".join(str(d) for d in report.strict_differences)
            findings.append(Finding(
                CheckName.PROTOTYPE, Severity.WARNING, call.name, call.insn,
                f"{call.name}: prototype differs from the kernel's, compatible by libbpf's "
                f"rules ({why})",
                prototypes=protos, detail=tuple(str(d) for d in report.strict_differences)))
    return findings
