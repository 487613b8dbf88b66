"""The differential test's prediction: what a kernel carrying the seed does with one program.

A program meets three stages of the verifier, and :func:`predict` models each
with sigbpf's code or, where sigbpf has no model, with what the programs are
built to meet (see :mod:`.programs`):

1. **before** the seed's pass -- 7.3's ``check_and_resolve_insns()``, which
   runs before ``add_kfuncs()``: its instruction checks are
   :func:`sigbpf.asm.check` (the one a program here can fail is
   ``unknown opcode 86``, a ``BPF_JMP32|BPF_CALL``, which
   ``bpf_opcode_in_insntable()`` does not know);
2. **the seed's pass** -- :func:`sigbpf.resolve.resolver.resolve_kfunc_calls`
   with the program BTF *as the verifier has it*: 7.3's
   ``bpf_prepare_btf_info()`` attaches ``prog_btf_fd`` only when
   ``func_info``, ``line_info`` or ``core_relos`` come with it
   (:func:`sigbpf.resolve.resolver.attached_prog_btf`);
3. **after** it -- the programs are built so that the rest of the verifier
   accepts every resolved call but one kind: a FUNC of vmlinux that is no
   kfunc (:data:`~.programs.PLAIN_FUNCTIONS`), which ``check_kfunc_call()``
   refuses with EACCES, ``calling kernel function %s is not allowed``, at the
   first such call the verifier walks to (main program in order, a static
   subprogram's body at its call).  The other refusal of a resolved call,
   ``bpf_add_kfunc_call()``'s (a variadic FUNC), is not modelled: it is the
   explained disagreement ``registration_between_resolutions`` of
   :mod:`.compare`.

The prediction's ``seed_line`` is the seed's own log line (None when the
seed's pass succeeds or never runs); ``reason`` is the line the kernel's
refusal must end with.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Iterator, Sequence

from sigbpf.asm import Instruction, check
from sigbpf.errors import InstructionError
from sigbpf.resolve.resolver import attached_prog_btf, resolve_kfunc_calls

from differential.programs import PLAIN_FUNCTIONS, Case

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf import BTF


class Stage(str, Enum):
    """Where a program's fate is decided."""

    BEFORE = "before the seed"
    SEED = "the seed"
    AFTER = "after the seed"
    ACCEPTED = "accepted"


@dataclass(frozen=True, slots=True)
class Expected:
    """The prediction for one program."""

    accepted: bool
    errno: int | None
    seed_line: str | None
    stage: Stage
    reason: str | None
    resolved: tuple[str, ...] = ()   # the names the seed's pass resolved, in slot order


#: The later refusal the programs are built to meet (``check_kfunc_call``).
NOT_ALLOWED = "calling kernel function {name} is not allowed"


def verification_order(insns: Sequence[Instruction], start: int = 0) -> Iterator[int]:
    """Slot indexes in the order the verifier first reaches them, for these straight-line
    programs: a function's slots in order up to its ``exit``, a bpf-to-bpf call's target
    function at the call (the forward conditional jumps of the templates skip slots the
    fall-through path reaches first)."""
    i = start
    while i < len(insns):
        insn = insns[i]
        yield i
        if insn.is_exit:
            return
        if insn.is_pseudo_call:
            yield from verification_order(insns, i + insn.imm + 1)
        i += 1


def predict(case: Case, prog_btfs: Sequence["BTF"], vmlinux: "BTF") -> Expected:
    """What the patched kernel does with *case*, whose ``imm`` values refer to ``prog_btfs[case.btf]``."""
    try:
        check(case.insns)
    except InstructionError as err:
        return Expected(False, _errno.EINVAL, None, Stage.BEFORE, err.message)
    prog_btf = attached_prog_btf(prog_btfs[case.btf] if case.passes_btf_fd else None,
                                 func_info=bool(case.func_info), line_info=bool(case.line_info),
                                 core_relos=bool(case.core_relos))
    res = resolve_kfunc_calls(case.insns, prog_btf, vmlinux)
    resolved = tuple(c.name for c in res.resolved)
    if not res.ok:
        line = res.log[-1]
        return Expected(False, res.errno, line, Stage.SEED, line, resolved)
    names = {c.insn: c.name for c in res.calls}
    for index in verification_order(res.insns):
        if names.get(index) in PLAIN_FUNCTIONS:
            return Expected(False, _errno.EACCES, None, Stage.AFTER,
                            NOT_ALLOWED.format(name=names[index]), resolved)
    return Expected(True, None, None, Stage.ACCEPTED, None, resolved)
