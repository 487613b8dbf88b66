"""Is it a kfunc?  A FUNC found by name must also be one the kernel lets programs call.

The seed's pass accepts any FUNC in vmlinux BTF: ``vfs_read`` resolves as
well as ``bpf_task_from_pid``.  The verifier refuses a non-kfunc only much
later, in ``check_kfunc_call``: ``calling kernel function vfs_read is not
allowed`` (EACCES; measured on 6.18).  This check reports it first:

* the kernel's BTF tags kfuncs (``DECL_TAG "bpf_kfunc"``, pahole >= 1.26;
  the running 6.18 kernel has 203): a resolved FUNC without the tag ->
  **error**, errno ``EACCES`` (the verifier's later answer);
* the kernel's BTF has no tags (Debian 6.1 and 6.12 in the corpus) but its
  ``.BTF_ids`` section is given (``--btf-ids``): the ids in its kfunc sets
  decide, with the same error;
* neither -> a **note** per kfunc that the check could not be done.

Which *program types* may call a kfunc is decided by per-type kfunc sets the
kernel registers at boot, not by BTF; that part stays the verifier's.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from sigbpf.resolve.findings import CheckName, Finding, Severity
from sigbpf.resolve.resolver import KfuncCall

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.spec import BTF

NOT_A_KFUNC_ERRNO = _errno.EACCES


@dataclass(frozen=True, slots=True)
class KfuncSet:
    """The vmlinux FUNC ids that are kfuncs (None: unknown) and where that knowledge came from."""

    ids: frozenset[int] | None
    source: str

    @classmethod
    def for_kernel(cls, vmlinux: "BTF", btf_ids_paths: Sequence[str] = ()) -> "KfuncSet":
        """From ``bpf_kfunc`` decl tags when the BTF has them, else from ``.BTF_ids`` files.

        Uses :mod:`sigbpf.btf.kfuncs`; a ``.BTF_ids`` file that is not this
        kernel's (no kfunc set of its FUNCs in it) is an error, not an empty list.
        """
        from sigbpf.btf import kfuncs

        if kfuncs.has_kfunc_tags(vmlinux):
            ids = frozenset(k.id for k in kfuncs.kfuncs(vmlinux))
            return cls(ids, "bpf_kfunc decl tags")
        if btf_ids_paths:
            from sigbpf.errors import FormatError, NotFoundError
            from sigbpf.fileio import read_input

            found: set[int] = set()
            for path in btf_ids_paths:
                data = read_input(path)
                try:
                    listed = kfuncs.kfuncs_from_btf_ids(vmlinux, data, file=str(path))
                except NotFoundError as err:  # the wrong kernel's section: bad input
                    raise FormatError(err.message, file=str(path)) from None
                found |= {k.id for k in listed}
            return cls(frozenset(found), ".BTF_ids kfunc sets")
        return cls(None, "unknown: the kernel's BTF has no bpf_kfunc decl tags and no "
                         "--btf-ids was given")

    @property
    def known(self) -> bool:
        return self.ids is not None


def check_is_kfunc(calls: Sequence[KfuncCall], kfunc_set: KfuncSet | None) -> tuple[list[Finding], str]:
    """Findings for resolved calls whose FUNC is not a kfunc; and the source of the kfunc list."""
    findings: list[Finding] = []
    seen: set[int] = set()
    for call in calls:
        if call.btf_id is None or call.btf_id in seen:
            continue
        seen.add(call.btf_id)
        if kfunc_set is None or kfunc_set.ids is None:
            why = kfunc_set.source if kfunc_set is not None else "unknown: no kfunc list"
            findings.append(Finding(
                CheckName.KFUNC, Severity.NOTE, call.name, call.insn,
                f"{call.name}: cannot tell whether vmlinux FUNC [{call.btf_id}] is a kfunc ({why})"))
        elif call.btf_id not in kfunc_set.ids:
            findings.append(Finding(
                CheckName.KFUNC, Severity.ERROR, call.name, call.insn,
                f"{call.name} (vmlinux FUNC [{call.btf_id}]) is not a kfunc of this kernel "
                f"(per its {kfunc_set.source}); the verifier would refuse it later: "
                f"'calling kernel function {call.name} is not allowed' (EACCES)",
                errno=NOT_A_KFUNC_ERRNO))
    source = kfunc_set.source if kfunc_set is not None else "unknown"
    return findings, source
