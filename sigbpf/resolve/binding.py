"""Bind an artifact's kfunc *sites* to one kernel: weak kfuncs and kfunc addresses.

The seed's pass (and sigbpf's userspace copy of it, :mod:`sigbpf.resolve`)
resolves only ``call`` instructions with ``src_reg = 3``.  Two things in an
artifact are outside that pass and must be bound by the loader for the
kernel at hand, in both resolution paths, the way libbpf binds them for
``__weak`` ``__ksym`` externs:

* a **kfunc address** (``bpf_ksym_exists(f)``): an ``ld_imm64`` with
  ``src_reg = BPF_PSEUDO_BTF_ID`` whose ``imm`` the artifact sets to the
  prog-BTF FUNC id.  The kernel reads such an ``imm`` as a *vmlinux* id, so
  the loader writes the vmlinux id there (second slot ``imm`` = 0: vmlinux,
  not a module BTF fd); for a weak kfunc the kernel lacks it becomes
  ``ld_imm64 dst, 0`` (src_reg 0), the constant the verifier uses to drop the
  dead branch.
* a **call of a weak kfunc the kernel lacks**: replaced by libbpf's poisoned
  call (``poison_kfunc_call``): a helper call (src_reg 0) with ``imm =
  2002000000 + kfunc index``.  It is only ever reached in code the verifier
  proves dead; if it were live, the verifier would refuse it with
  ``invalid func unknown#2002000000+i``.

Calls of kfuncs the kernel has are left to the resolution pass, and so are
calls of missing non-weak kfuncs (which then fail with the seed's own
``%s not found in vmlinux BTF``).  A missing non-weak kfunc *address* is
refused here in the same words (``kfunc address insn %d: %s not found in
vmlinux BTF``, ENOENT).

This binding changes instructions, so it changes what a 6.18 signature over
"the instructions as loaded" covers; sigbpf's signed metadata covers the
kfunc table (names, weak flags) that decides it.
"""

from __future__ import annotations

import errno as errno_mod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from sigbpf.asm import Instruction
from sigbpf.asm.opcodes import CALL_CODE, LD_IMM64_CODE, PseudoCall, PseudoLdImm64
from sigbpf.errors import NotFoundError, ResolveError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Artifact, Program
    from sigbpf.btf import BTF

#: libbpf's POISON_CALL_KFUNC_BASE: imm of a poisoned call is this + the extern's index.
POISON_CALL_KFUNC_BASE = 2002000000


@dataclass(frozen=True, slots=True)
class KfuncBinding:
    """One kfunc of the artifact bound to this kernel: ``btf_id`` 0 = weak and absent."""

    name: str
    btf_id: int
    weak: bool

    @property
    def present(self) -> bool:
        return self.btf_id != 0


def lookup_kfuncs(artifact: "Artifact", vmlinux: "BTF") -> tuple[KfuncBinding, ...]:
    """Each kfunc of the artifact with its vmlinux FUNC id (0 when absent)."""
    from sigbpf.btf import Kind

    out = []
    for k in artifact.kfuncs:
        try:
            vm_id = vmlinux.find_by_name_kind(k.name, Kind.FUNC)
        except NotFoundError:
            vm_id = 0
        out.append(KfuncBinding(k.name, vm_id, k.weak))
    return tuple(out)


def bind_sites(program: "Program", bindings: Sequence[KfuncBinding]) -> list[Instruction]:
    """The program's instructions with kfunc addresses bound and absent weak calls poisoned."""
    from sigbpf.artifact.format import KfuncSiteKind

    insns = list(program.insns)
    for site in program.kfunc_sites:
        binding = bindings[site.kfunc]
        insn = insns[site.insn]
        if site.kind == KfuncSiteKind.CALL:
            if insn.code != CALL_CODE or insn.src != PseudoCall.KFUNC_CALL_PROG_BTF:
                raise ResolveError(f"program {program.name!r}: kfunc site for {binding.name} is not a "
                                   f"src_reg 3 call", insn=site.insn, errno=errno_mod.EINVAL)
            if not binding.present and binding.weak:
                insns[site.insn] = Instruction(CALL_CODE, 0, PseudoCall.HELPER, 0,
                                               POISON_CALL_KFUNC_BASE + site.kfunc)
        elif site.kind == KfuncSiteKind.KSYM_ADDR:
            if (insn.code != LD_IMM64_CODE or insn.src != PseudoLdImm64.BTF_ID
                    or site.insn + 1 >= len(insns)):
                raise ResolveError(f"program {program.name!r}: kfunc address site for {binding.name} "
                                   f"is not an ld_imm64 with src_reg {int(PseudoLdImm64.BTF_ID)}",
                                   insn=site.insn, errno=errno_mod.EINVAL)
            if binding.present:
                insns[site.insn] = insn.replace(imm=binding.btf_id)
                insns[site.insn + 1] = insns[site.insn + 1].replace(imm=0)
            elif binding.weak:
                insns[site.insn] = Instruction(LD_IMM64_CODE, insn.dst, 0, 0, 0)
                insns[site.insn + 1] = Instruction(0, 0, 0, 0, 0)
            else:
                line = f"kfunc address insn {site.insn}: {binding.name} not found in vmlinux BTF"
                raise ResolveError(line, log=[line], insn=site.insn, errno=errno_mod.ENOENT)
    return insns
