"""The seed's verifier pass in Python: resolve PROG_BTF kfunc CALLs by name.

This is ``resolve_loader_kfunc()`` of the patch "bpf: resolve loader-style
kfunc CALLs against prog BTF", run over every instruction slot the way
``add_subprog_and_kfunc()`` walks them.  For each slot with
``code == BPF_JMP|BPF_CALL`` and ``src_reg == BPF_PSEUDO_KFUNC_CALL_PROG_BTF``
(3) -- exactly ``bpf_pseudo_kfunc_call_prog_btf()``: a ``BPF_JMP32|BPF_CALL``
with src_reg 3 is *not* such a call and is left alone -- the four checks run
in the seed's order:

1. no prog BTF, no vmlinux BTF, or ``off != 0`` -> ``-EINVAL``
   ``kfunc call insn %d: PROG_BTF resolution requires prog BTF and insn->off == 0``
2. ``btf_type_by_id(prog_btf, imm)`` is NULL or not a FUNC -> ``-EINVAL``
   ``kfunc call insn %d: imm %d is not a FUNC in prog BTF``.  ``imm`` is an
   ``s32`` passed as the ``u32`` id: negative values are huge ids (NULL), 0
   is ``void`` (a type, but not a FUNC), ids above the last type are NULL.
   The log prints ``imm`` with ``%d``, i.e. signed.
3. the FUNC's name is empty -> ``-EINVAL`` ``kfunc call insn %d: prog-BTF FUNC has no name``.
   (The kernel's ``BPF_BTF_LOAD`` already refuses a nameless FUNC with
   "Invalid name", so on a real kernel this check cannot fire; it can here,
   for BTF that was not validated.)
4. ``btf_find_by_name_kind(vmlinux, name, BTF_KIND_FUNC)`` fails -> its error,
   ``-ENOENT``, ``kfunc call insn %d: %s not found in vmlinux BTF``.  The
   first (lowest) id with that name wins, as in the kernel's linear search.

On success ``imm`` becomes the vmlinux id and ``src_reg`` becomes
``BPF_PSEUDO_KFUNC_CALL`` (2); nothing else changes (``off`` stays 0, so the
call is pinned to vmlinux).  The first failure ends the pass.

Partial rewrites: the kernel patches ``env->prog->insnsi`` in place, so when
call *k* fails, calls before it are already rewritten.  The kernel then frees
the program, so nobody can observe those instructions; :class:`Resolution`
nevertheless returns them in exactly that state (rewritten up to, not
including, the failing call) so that the result is the kernel's memory at the
moment the pass returned.  Callers must look at :attr:`Resolution.ok`.

The function is pure: it never touches the input list, the kernel or /sys.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from sigbpf.asm.instruction import Instruction
from sigbpf.asm.opcodes import CALL_CODE, PseudoCall
from sigbpf.btf.kinds import Kind
from sigbpf.errors import NotFoundError, ResolveError, errno_name

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.spec import BTF

#: The seed's log formats (``verbose(env, ...)`` without the trailing newline).
MSG_REQUIRES = "kfunc call insn {insn}: PROG_BTF resolution requires prog BTF and insn->off == 0"
MSG_NOT_FUNC = "kfunc call insn {insn}: imm {imm} is not a FUNC in prog BTF"
MSG_NO_NAME = "kfunc call insn {insn}: prog-BTF FUNC has no name"
MSG_NOT_FOUND = "kfunc call insn {insn}: {name} not found in vmlinux BTF"


@dataclass(frozen=True, slots=True)
class KfuncCall:
    """One PROG_BTF kfunc call the pass looked at.

    ``name`` is the prog-BTF FUNC's name ("" when the pass failed before it
    had one); ``btf_id`` the vmlinux FUNC id it resolved to, None if it did not.
    """

    insn: int
    prog_btf_id: int
    name: str
    btf_id: int | None

    def as_json(self) -> dict[str, object]:
        return {"insn": self.insn, "name": self.name, "btf_id": self.btf_id}


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the pass did: the instructions after it, the calls, the log, the errno."""

    insns: tuple[Instruction, ...]
    calls: tuple[KfuncCall, ...]
    log: tuple[str, ...]
    errno: int | None = None
    failed_insn: int | None = None

    @property
    def ok(self) -> bool:
        return self.errno is None

    @property
    def errno_name(self) -> str | None:
        return errno_name(self.errno)

    @property
    def resolved(self) -> tuple[KfuncCall, ...]:
        """The calls that got a vmlinux id."""
        return tuple(c for c in self.calls if c.btf_id is not None)

    def error(self) -> ResolveError:
        """The rejection as a :class:`ResolveError` (only meaningful when not :attr:`ok`)."""
        message = self.log[-1] if self.log else "PROG_BTF resolution failed"
        return ResolveError(message, log=list(self.log), errno=self.errno, insn=self.failed_insn)

    def raise_for_error(self) -> None:
        if not self.ok:
            raise self.error()


def is_prog_btf_kfunc_call(insn: Instruction) -> bool:
    """``bpf_pseudo_kfunc_call_prog_btf()``: ``code == BPF_JMP|BPF_CALL`` and src_reg 3, nothing else."""
    return insn.code == CALL_CODE and insn.src == PseudoCall.KFUNC_CALL_PROG_BTF


def _prog_btf_func_name(prog_btf: "BTF", imm: int) -> str | None:
    """``btf_type_by_id(prog_btf, (u32)imm)``: the FUNC's name, or None when it is not a FUNC."""
    type_id = imm & 0xFFFFFFFF
    if type_id == 0 or type_id > prog_btf.type_count:  # void, or NULL
        return None
    if prog_btf.kind_of(type_id) != Kind.FUNC:
        return None
    return prog_btf.name_of(type_id)


def attached_prog_btf(prog_btf: "BTF | None", *, func_info: bool, line_info: bool,
                      core_relos: bool) -> "BTF | None":
    """The program BTF the verifier has (``env->prog->aux->btf``) for a ``BPF_PROG_LOAD``.

    The kernel takes ``prog_btf_fd`` only when ``func_info``, ``line_info`` or
    CO-RE relocations come with it (7.3's ``bpf_prepare_btf_info()``; older
    kernels' ``check_btf_info_early()`` the same, without the CO-RE case):
    a ``prog_btf_fd`` alone leaves ``aux->btf`` NULL and the seed's first
    check refuses every PROG_BTF call ("requires prog BTF"), as the
    differential test measured on the patched 7.3 kernel.  *prog_btf* is the
    BTF behind ``prog_btf_fd`` (None: no fd); the flags say which of the
    three the load passes.
    """
    return prog_btf if func_info or line_info or core_relos else None


def resolve_kfunc_calls(insns: Sequence[Instruction], prog_btf: "BTF | None",
                        vmlinux: "BTF | None") -> Resolution:
    """Run the seed's PROG_BTF resolution over *insns* (slot indexes = the kernel's insn indexes).

    *prog_btf* is the program BTF the verifier has: the BTF of ``prog_btf_fd``
    when the load also passes func_info, line_info or CO-RE relocations, None
    otherwise (:func:`attached_prog_btf` says which); *vmlinux* the kernel's
    (None = a kernel without BTF).  Returns a :class:`Resolution`; a
    rejected program is a result, not an exception.
    """
    out = list(insns)
    calls: list[KfuncCall] = []
    log: list[str] = []
    for index, insn in enumerate(out):
        if not is_prog_btf_kfunc_call(insn):
            continue
        if prog_btf is None or vmlinux is None or insn.off:
            log.append(MSG_REQUIRES.format(insn=index))
            calls.append(KfuncCall(index, insn.imm, "", None))
            return Resolution(tuple(out), tuple(calls), tuple(log), _errno.EINVAL, index)
        name = _prog_btf_func_name(prog_btf, insn.imm)
        if name is None:
            log.append(MSG_NOT_FUNC.format(insn=index, imm=insn.imm))
            calls.append(KfuncCall(index, insn.imm, "", None))
            return Resolution(tuple(out), tuple(calls), tuple(log), _errno.EINVAL, index)
        if not name:
            log.append(MSG_NO_NAME.format(insn=index))
            calls.append(KfuncCall(index, insn.imm, "", None))
            return Resolution(tuple(out), tuple(calls), tuple(log), _errno.EINVAL, index)
        try:
            vmlinux_id = vmlinux.find_by_name_kind(name, Kind.FUNC)
        except NotFoundError as err:
            log.append(MSG_NOT_FOUND.format(insn=index, name=name))
            calls.append(KfuncCall(index, insn.imm, name, None))
            return Resolution(tuple(out), tuple(calls), tuple(log), err.errno or _errno.ENOENT, index)
        out[index] = insn.replace(src=PseudoCall.KFUNC_CALL, imm=vmlinux_id)
        calls.append(KfuncCall(index, insn.imm, name, vmlinux_id))
    return Resolution(tuple(out), tuple(calls), tuple(log))
