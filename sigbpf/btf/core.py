"""CO-RE relocations computed against a kernel's BTF, with libbpf's rules, before any load.

A program compiled with CO-RE carries relocations (``.BTF.ext``, or the
artifact's ``core_relos``) that name a local type and an access string; at
load time libbpf (``bpf_core_calc_relo_insn`` + ``bpf_core_patch_insn`` in
``src/relo_core.c``) or the kernel (the same file, ``bpf_core_apply``) finds
the kernel's type(s) of the same essential name and rewrites the
instruction.  :func:`relocate_all` does that computation for one kernel and
says, for each relocation, what the instruction becomes::

    found = core_relocations(artifact)             # once per artifact
    local = BTF.parse(found.btf, validate=False)   # once per worker
    for outcome in relocate_all(local, found.relocations, vmlinux, rules=found.rules):
        if outcome.poisoned:   # libbpf's "call 0xbad2310": the load fails if it is reached
            print(outcome.describe())

Every :class:`CoreOutcome` is one of three things:

* **relocated** (``ok``): ``value`` is libbpf's new value (a field's byte
  offset or size, signedness, shifts, a type id, existence 0/1, a size, an
  enumerator's value as a u64) and ``patched`` the instruction(s) as the kernel
  will get them;
* **poisoned** (``poisoned``): no candidate has the field or enumerator
  (FIELD_BYTE_OFFSET/SIZE/SIGNED/shifts, ENUMVAL_VALUE), or a load/store
  cannot be resized safely; the instruction becomes ``call 0xbad2310``
  (both slots of an ``ld_imm64``), which the verifier refuses only if it is
  reachable ("fails if reached");
* **refused** (neither): libbpf/the kernel stop the load -- an access
  string that does not parse, candidates that disagree (ambiguity), an
  instruction whose value is not the expected one, an offset over 32767, ...
  ``reason`` says which, in libbpf's words where it has them.

The rules are the kernel's by default (artifacts load with kernel-side
CO-RE); :class:`~sigbpf.btf.core_candidates.CoreRules` ``LIBBPF`` gives libbpf's
for objects libbpf loads (they differ in two places, documented there).
Candidates are found through a name index, never a scan per relocation
(:mod:`sigbpf.btf.core_candidates`); the specs and type rules are in
:mod:`sigbpf.btf.core_spec` and :mod:`sigbpf.btf.core_types`.

Results are plain frozen dataclasses (picklable: the fleet check computes
them in worker processes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from sigbpf.asm.instruction import Instruction
from sigbpf.asm.opcodes import LD_IMM64_CODE
from sigbpf.btf.core_candidates import Candidate, CandidateFinder, CoreRules, TypeNames
from sigbpf.btf.core_calc import RelocResult, decide
from sigbpf.btf.core_patch import POISON_IMM, patch_insn
from sigbpf.btf.core_spec import ENUMVAL_KINDS, FIELD_KINDS, SpecError, parse_spec
from sigbpf.btf.kinds import Kind
from sigbpf.elf.btf_ext import CoreReloKind

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Artifact
    from sigbpf.btf.spec import BTF
    from sigbpf.elf.object import BPFObject

__all__ = ["CoreReloKind", "CoreRules", "CoreRelocation", "CoreOutcome", "CoreRelocationSet",
           "relocate_all", "core_relocations", "kernel_core_kinds", "POISON_IMM", "KIND_LABELS"]

#: libbpf's ``core_relo_kind_str``.
KIND_LABELS = {
    CoreReloKind.FIELD_BYTE_OFFSET: "byte_off", CoreReloKind.FIELD_BYTE_SIZE: "byte_sz",
    CoreReloKind.FIELD_EXISTS: "field_exists", CoreReloKind.FIELD_SIGNED: "signed",
    CoreReloKind.FIELD_LSHIFT_U64: "lshift_u64", CoreReloKind.FIELD_RSHIFT_U64: "rshift_u64",
    CoreReloKind.TYPE_ID_LOCAL: "local_type_id", CoreReloKind.TYPE_ID_TARGET: "target_type_id",
    CoreReloKind.TYPE_EXISTS: "type_exists", CoreReloKind.TYPE_MATCHES: "type_matches",
    CoreReloKind.TYPE_SIZE: "type_size", CoreReloKind.ENUMVAL_EXISTS: "enumval_exists",
    CoreReloKind.ENUMVAL_VALUE: "enumval_value",
}


# ---------------------------------------------------------------- inputs and results

@dataclass(frozen=True, slots=True)
class CoreRelocation:
    """One CO-RE relocation to compute: where it is and what it asks.

    ``insn`` is the slot in ``program``; ``insns`` the instruction there (two
    slots for an ``ld_imm64``), used for libbpf's checks of the instruction
    (``()``: compute the value only).  ``type_id`` and ``access`` are in the
    local (program) BTF.
    """

    program: str
    insn: int
    kind: CoreReloKind | int
    type_id: int
    access: str
    insns: tuple[Instruction, ...] = ()


@dataclass(frozen=True, slots=True)
class CoreOutcome:
    """What one relocation becomes in one kernel (see the module docstring).

    ``local_type`` is the local root type (``struct task_struct``), ``member``
    the access in C terms (``.pid``, ``[3].a``, ``::PIDTYPE_TGID``), ``target``
    libbpf's description of the candidate used (``[123] struct task_struct.pid
    (0:84 @ offset 2456)``, "" when none).
    """

    program: str
    insn: int
    kind: CoreReloKind | int
    access: str
    local_type: str
    ok: bool
    value: int | None
    poisoned: bool
    reason: str = ""
    member: str = ""
    target: str = ""
    patched: tuple[Instruction, ...] = ()

    @property
    def refused(self) -> bool:
        """The load stops on this relocation (neither relocated nor poisoned)."""
        return not self.ok and not self.poisoned

    @property
    def label(self) -> str:
        """libbpf's name of the kind: ``byte_off``, ``type_exists``, ..."""
        return KIND_LABELS.get(self.kind, f"unknown ({int(self.kind)})")  # type: ignore[call-overload]

    @property
    def code(self) -> str:
        """``relocated``, ``fails-if-reached`` or ``refused``."""
        return "relocated" if self.ok else "fails-if-reached" if self.poisoned else "refused"

    def describe(self) -> str:
        """One line: ``prog/insn 12: byte_off struct task_struct.pid (0:84): 2456``."""
        what = f"{self.program}/insn {self.insn}: {self.label} {self.local_type}{self.member} ({self.access})"
        if self.ok:
            text = f"{what}: {self.value}"
        elif self.poisoned:
            text = f"{what}: fails if reached"
        else:
            text = f"{what}: refused"
        return f"{text} ({self.reason})" if self.reason else text


@dataclass(frozen=True, slots=True)
class CoreRelocationSet:
    """An artifact's or object's CO-RE relocations with the raw local BTF they refer to.

    ``rules`` is whose rules load it: the kernel's for an artifact, libbpf's
    for an object (in ``.BTF.ext`` order, as libbpf applies them).
    """

    btf: bytes
    relocations: tuple[CoreRelocation, ...]
    rules: CoreRules

    def parse_btf(self) -> "BTF":
        """The local BTF (parsed without the kernel's full checks: it was loaded or built)."""
        from sigbpf.btf.spec import BTF

        return BTF.parse(self.btf, validate=False)


def kernel_core_kinds(vmlinux: "BTF", names: TypeNames | None = None) -> frozenset[CoreReloKind] | None:
    """The relocation kinds this kernel's own CO-RE handles: the ``BPF_CORE_*`` enumerators of
    the ``enum bpf_core_relo_kind`` in its BTF (kernel-side CO-RE and the enum came together,
    in 5.17; TYPE_MATCHES in 6.0).  None when the BTF has no such enum: a kernel without
    kernel-side CO-RE, or a BTF trimmed of it (the caller knows which).  *names* is
    *vmlinux*'s :class:`~sigbpf.btf.core_candidates.TypeNames`, if one is at hand."""
    found = (names.named("bpf_core_relo_kind", (Kind.ENUM,)) if names is not None
             else vmlinux.find_all_by_name_kind("bpf_core_relo_kind", Kind.ENUM))
    if not found:
        return None
    listed = {v.name for v in vmlinux[found[0]].values}
    return frozenset(k for k in CoreReloKind if f"BPF_CORE_{k.name}" in listed)


# ---------------------------------------------------------------- all relocations

def _type_label(btf: "BTF", type_id: int) -> str:
    if not 0 <= type_id <= btf.type_count:
        return f"[{type_id}]"
    if type_id == 0:
        return "void"
    name = btf.name_of(type_id)
    return f"{btf.kind_of(type_id).name.lower()} {name or '<anon>'}"


class _Relocator:
    """The state one kernel's relocations share: the candidate finder and libbpf's cache."""

    def __init__(self, local_btf: "BTF", finder: CandidateFinder,
                 kernel_kinds: frozenset[CoreReloKind] | None = None) -> None:
        self.local = local_btf
        self.finder = finder
        self.kernel_kinds = kernel_kinds
        # libbpf's cand_cache: local type id -> candidates still standing (LIBBPF rules)
        self.shared: dict[int, list[Candidate]] = {}

    def candidates(self, type_id: int) -> list[Candidate]:
        local = self.local
        found = list(self.finder.candidates(local.name_of(type_id), local.kind_of(type_id)))
        if self.finder.rules is CoreRules.LIBBPF:
            return self.shared.setdefault(type_id, found)
        return found

    def relocate(self, relo: CoreRelocation) -> CoreOutcome:
        local = self.local
        label = _type_label(local, relo.type_id)

        def outcome(*, ok: bool = False, value: int | None = None, poisoned: bool = False,
                    reason: str = "", member: str = "", target: str = "",
                    patched: tuple[Instruction, ...] = ()) -> CoreOutcome:
            return CoreOutcome(relo.program, relo.insn, relo.kind, relo.access, label, ok, value,
                               poisoned, reason, member, target, patched)

        try:
            kind = CoreReloKind(relo.kind)
        except ValueError:
            return outcome(reason=f"unrecognized CO-RE relocation kind {int(relo.kind)}")
        if self.kernel_kinds is not None and kind not in self.kernel_kinds:
            return outcome(reason=f"this kernel's CO-RE does not know {KIND_LABELS[kind]} (its "
                                  f"enum bpf_core_relo_kind has no BPF_CORE_{kind.name})")
        if not 0 <= relo.type_id <= local.type_count:
            return outcome(reason=f"local type [{relo.type_id}] does not exist")
        try:
            spec = parse_spec(local, relo.type_id, relo.access, kind)
        except SpecError as err:
            return outcome(reason=f"parsing {label} + {relo.access} failed: {err.message}")
        member = spec.member_path()
        if kind is CoreReloKind.TYPE_ID_LOCAL:
            res = RelocResult(orig_val=relo.type_id, new_val=relo.type_id, validate=False)
            return self._finish(res, relo, outcome, member, "", "")
        if not local.name_of(relo.type_id):
            return outcome(reason=f"<{KIND_LABELS[kind]}> relocation doesn't support anonymous types",
                           member=member)
        cands = self.candidates(relo.type_id)
        try:
            res, targ = decide(kind, spec, cands)
        except SpecError as err:
            return outcome(member=member, reason=err.message)
        if targ is not None:
            return self._finish(res, relo, outcome, member, targ.describe(), "")
        if not cands:
            why = f"{label} is not in the kernel"
        elif kind in FIELD_KINDS or kind in ENUMVAL_KINDS:
            why = f"no {label} in the kernel has {member.lstrip('.:') or 'it'}"
        else:
            why = f"no {label} in the kernel is compatible"
        return self._finish(res, relo, outcome, member, "", why)

    @staticmethod
    def _finish(res: RelocResult, relo: CoreRelocation, outcome: Callable[..., CoreOutcome],
                member: str, target: str, why: str) -> CoreOutcome:
        """Apply libbpf's instruction checks (when the instruction is known) and build the outcome."""
        patched: tuple[Instruction, ...] = ()
        poison_reason = ""
        if relo.insns:
            patched, refusal, poison_reason = patch_insn(res, relo.insns)
            if refusal is not None:
                return outcome(member=member, target=target, reason=refusal)
        if res.poison or poison_reason:
            return outcome(poisoned=True, member=member, target=target,
                           reason=poison_reason or why, patched=patched)
        return outcome(ok=True, value=res.new_val, member=member, target=target, reason=why,
                       patched=patched)


def relocate_all(local_btf: "BTF", relos: Sequence[CoreRelocation], target: "BTF", *,
                 modules: Sequence["BTF"] = (),
                 rules: CoreRules = CoreRules.KERNEL) -> list[CoreOutcome]:
    """Compute every relocation of *relos* against the kernel *target* (+ its *modules*).

    *local_btf* is the program BTF the relocations refer to; *relos* come in
    the order the loader applies them (for ``LIBBPF`` rules that order
    matters: :func:`core_relocations` gives ``.BTF.ext`` order).  Modules are
    searched only for local types vmlinux has no candidate for, as libbpf and
    the kernel do.  With ``KERNEL`` rules, a kind the kernel's own CO-RE does not
    know (:func:`kernel_core_kinds`: TYPE_MATCHES before 6.0) is refused.  One
    outcome per relocation, in order; nothing raises for a relocation that
    fails -- its outcome says so.
    """
    finder = CandidateFinder(target, modules, rules)
    kinds = kernel_core_kinds(target, finder.type_names(target)) if rules is CoreRules.KERNEL else None
    relocator = _Relocator(local_btf, finder, kinds)
    return [relocator.relocate(relo) for relo in relos]


# ---------------------------------------------------------------- listing them

def _site(insns: Sequence[Instruction], at: int) -> tuple[Instruction, ...]:
    if not 0 <= at < len(insns):
        return ()
    if insns[at].code == LD_IMM64_CODE:
        return tuple(insns[at:at + 2])
    return (insns[at],)


def core_relocations(source: "Artifact | BPFObject", local_btf: "BTF | None" = None) -> CoreRelocationSet:
    """The CO-RE relocations of an artifact's programs or an object's functions.

    For an :class:`~sigbpf.artifact.format.Artifact`: each program's
    ``core_relos`` as the kernel gets them (``insn`` a slot of the linked
    program, subprograms' relocations once per program that includes them),
    with kernel rules.  For a :class:`~sigbpf.elf.object.BPFObject`: the
    ``.BTF.ext`` records in file order, each named after the function that
    holds it (a subprogram's own name; ``insn`` relative to it), skipping what
    libbpf skips (``SEC("?...")`` programs, eliminated weak subprograms), with
    libbpf rules.  *local_btf* is the parsed program BTF if the caller has it.
    """
    from sigbpf.artifact.format import Artifact

    if isinstance(source, Artifact):
        raw = source.btf
        if not raw:
            return CoreRelocationSet(b"", (), CoreRules.KERNEL)
        if local_btf is None:
            from sigbpf.btf.spec import BTF

            local_btf = BTF.parse(raw, validate=False)
        out = [CoreRelocation(prog.name, r.insn_off // 8, _kind(r.kind), r.type_id,
                              local_btf.string_at(r.access_str_off), _site(prog.insns, r.insn_off // 8))
               for prog in source.programs for r in prog.core_relos]
        return CoreRelocationSet(raw, tuple(out), CoreRules.KERNEL)
    obj = source
    if obj.btf is None or obj.btf_ext is None:
        return CoreRelocationSet(obj.btf.encode() if obj.btf is not None else b"", (), CoreRules.LIBBPF)
    found: list[CoreRelocation] = []
    for section, records in obj.btf_ext.core_relos.items():
        functions = [p for p in obj.programs if p.section == section]
        for r in records:
            func = next((p for p in functions
                         if p.insn_offset <= r.insn < p.insn_offset + p.insn_count), None)
            if func is None or not func.autoload:
                continue
            at = r.insn - func.insn_offset
            found.append(CoreRelocation(func.name, at, r.kind, r.type_id, r.access,
                                        _site(func.insns, at)))
    return CoreRelocationSet(obj.btf.encode(), tuple(found), CoreRules.LIBBPF)


def _kind(value: int) -> CoreReloKind | int:
    try:
        return CoreReloKind(value)
    except ValueError:
        return value
