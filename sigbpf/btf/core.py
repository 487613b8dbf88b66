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

import errno as _errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from sigbpf.asm.instruction import Instruction
from sigbpf.btf.core_candidates import Candidate, CandidateFinder, CoreRules, TypeNames
from sigbpf.btf.core_spec import (
    ENUMVAL_KINDS, FIELD_KINDS, TYPE_KINDS, CoreSpec, SpecError, match_spec, parse_spec,
)
from sigbpf.btf.core_types import skip_mods_and_typedefs
from sigbpf.btf.kinds import IntEncoding, Kind
from sigbpf.btf.layout import resolve_size
from sigbpf.elf.btf_ext import CoreReloKind

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Artifact
    from sigbpf.btf.spec import BTF
    from sigbpf.elf.object import BPFObject

__all__ = ["CoreReloKind", "CoreRules", "CoreRelocation", "CoreOutcome", "CoreRelocationSet",
           "relocate_all", "core_relocations", "kernel_core_kinds", "POISON_IMM", "KIND_LABELS"]

#: libbpf's poisoned-instruction immediate: ``call 0xbad2310`` ("bad relo"); the verifier
#: says ``invalid func unknown#195896080`` when it reaches one.
POISON_IMM = 0xBAD2310

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

_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
_SHRT_MAX = 0x7FFF
_CALL = 0x85  # BPF_JMP | BPF_CALL
_LD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW
_SIZE_BYTES = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}  # BPF_SIZE(code) -> bytes
_BYTES_SIZE = {v: k for k, v in _SIZE_BYTES.items()}


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


# ---------------------------------------------------------------- one relocation's values

class _Poison(Exception):
    """libbpf's ``-EUCLEAN``: the instruction is to be poisoned."""


@dataclass(slots=True)
class _Result:
    """libbpf's ``struct bpf_core_relo_res``."""

    orig_val: int = 0
    new_val: int = 0
    poison: bool = False
    validate: bool = True
    fail_memsz_adjust: bool = False
    orig_sz: int = 0
    new_sz: int = 0
    orig_type_id: int = 0
    new_type_id: int = 0


def _size(btf: "BTF", type_id: int) -> int:
    size = resolve_size(btf, type_id)
    if size is None:
        raise SpecError(_errno.EINVAL, f"cannot resolve the size of [{type_id}]")
    return size


def _element_size(btf: "BTF", type_id: int) -> int:
    """Size of the innermost element of (nested) arrays, or of the type itself."""
    tid = skip_mods_and_typedefs(btf, type_id)
    while tid is not None and btf.kind_of(tid) is Kind.ARRAY:
        tid = skip_mods_and_typedefs(btf, btf[tid].type)
    if tid is None:
        raise SpecError(_errno.EINVAL, f"[{type_id}] does not resolve")
    return _size(btf, tid)


def _field_value(kind: CoreReloKind, spec: CoreSpec | None) -> tuple[int, int, int, bool]:
    """``bpf_core_calc_field_relo``: (value, load size, field type id, validate)."""
    if kind is CoreReloKind.FIELD_EXISTS:
        return (1 if spec is not None else 0), 0, 0, True
    if spec is None:
        raise _Poison()
    btf = spec.btf
    acc = spec.accessors[-1]
    if acc.name is None:  # a[n]
        if kind is CoreReloKind.FIELD_BYTE_OFFSET:
            return spec.bit_offset // 8, _element_size(btf, acc.type_id), acc.type_id, True
        if kind is CoreReloKind.FIELD_BYTE_SIZE:
            return _size(btf, acc.type_id), 0, 0, True
        raise SpecError(_errno.EINVAL, f"relo {int(kind)} can't be applied to array access")
    member = btf[acc.type_id].members[acc.idx]
    field_id = skip_mods_and_typedefs(btf, member.type)
    if field_id is None:
        raise SpecError(_errno.EINVAL, f"member {member.name!r} does not resolve")
    mt = btf[field_id]
    bit_off = spec.bit_offset
    bit_sz = member.bitfield_size
    bitfield = bit_sz > 0
    if bitfield:
        byte_sz = getattr(mt, "size", 0)
        if not byte_sz:
            raise SpecError(_errno.EINVAL, f"bitfield {member.name!r} has no sized type")
        byte_off = bit_off // 8 // byte_sz * byte_sz
        # the smallest load that holds the whole bitfield
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise SpecError(_errno.E2BIG, f"relo {int(kind)} can't be satisfied for bitfield")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = _size(btf, field_id)
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8
    validate = not bitfield  # bitfield values are ambiguous: only sign and rshift are checked
    if kind is CoreReloKind.FIELD_BYTE_OFFSET:
        if bitfield:
            return byte_off, 0, 0, validate
        return byte_off, _element_size(btf, field_id), field_id, validate
    if kind is CoreReloKind.FIELD_BYTE_SIZE:
        return byte_sz, 0, 0, validate
    if kind is CoreReloKind.FIELD_SIGNED:
        signed = ((mt.kind in (Kind.ENUM, Kind.ENUM64) and mt.signed)
                  or (mt.kind is Kind.INT and bool(mt.encoding & IntEncoding.SIGNED)))
        return int(signed), 0, 0, True
    if kind is CoreReloKind.FIELD_LSHIFT_U64:  # little-endian
        return (64 - (bit_off + bit_sz - byte_off * 8)) & _U32, 0, 0, validate
    if kind is CoreReloKind.FIELD_RSHIFT_U64:
        return (64 - bit_sz) & _U32, 0, 0, True
    raise SpecError(_errno.EOPNOTSUPP, f"unrecognized CO-RE relocation {int(kind)}")


def _type_value(kind: CoreReloKind, spec: CoreSpec | None) -> tuple[int, bool]:
    """``bpf_core_calc_type_relo``: (value, validate); 0 when the type is not found."""
    if spec is None:
        return 0, True
    if kind is CoreReloKind.TYPE_ID_TARGET:
        return spec.root_type_id, False  # ids change when objects are linked: not checked
    if kind in (CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_MATCHES):
        return 1, True
    if kind is CoreReloKind.TYPE_SIZE:
        return _size(spec.btf, spec.root_type_id), True
    raise SpecError(_errno.EOPNOTSUPP, f"unrecognized CO-RE relocation {int(kind)}")


def _enumval_value(kind: CoreReloKind, spec: CoreSpec | None) -> int:
    """``bpf_core_calc_enumval_relo``; an ENUM value is libbpf's s32 widened to u64."""
    if kind is CoreReloKind.ENUMVAL_EXISTS:
        return 1 if spec is not None else 0
    if spec is None:
        raise _Poison()
    acc = spec.accessors[0]
    t = spec.btf[acc.type_id]
    value = t.values[acc.idx].value
    if t.kind is Kind.ENUM:
        value &= _U32
        if value & 0x80000000:
            value -= 1 << 32
    return value & _U64


def _calc(kind: CoreReloKind, local: CoreSpec, targ: CoreSpec | None) -> _Result:
    """``bpf_core_calc_relo``: original and new values; poison instead of ``-EUCLEAN``."""
    res = _Result()
    try:
        if kind in FIELD_KINDS:
            res.orig_val, res.orig_sz, res.orig_type_id, res.validate = _field_value(kind, local)
            res.new_val, res.new_sz, res.new_type_id, _ = _field_value(kind, targ)
            if res.orig_sz != res.new_sz:
                assert targ is not None
                orig_t = local.btf[res.orig_type_id]
                new_t = targ.btf[res.new_type_id]
                # a smaller load is safe for pointers and unsigned ints (zero-extension)
                safe = ((orig_t.kind is Kind.PTR and new_t.kind is Kind.PTR)
                        or (orig_t.kind is Kind.INT and new_t.kind is Kind.INT
                            and orig_t.encoding != IntEncoding.SIGNED
                            and new_t.encoding != IntEncoding.SIGNED))
                res.fail_memsz_adjust = not safe
        elif kind in TYPE_KINDS:
            res.orig_val, res.validate = _type_value(kind, local)
            res.new_val, _ = _type_value(kind, targ)
        else:
            res.orig_val = _enumval_value(kind, local)
            res.new_val = _enumval_value(kind, targ)
    except _Poison:
        res.poison = True
    return res


# ---------------------------------------------------------------- the instruction

def _poisoned_insns(insns: tuple[Instruction, ...]) -> tuple[Instruction, ...]:
    """``bpf_core_poison_insn``: ``call 0xbad2310``, on both slots of an ld_imm64."""
    bad = Instruction(_CALL, 0, 0, 0, POISON_IMM)
    if insns and insns[0].code == _LD_IMM64:
        return (bad, bad)
    return (bad,)


def _s32(value: int) -> int:
    value &= _U32
    return value - (1 << 32) if value & 0x80000000 else value


def _patch(res: _Result, insns: tuple[Instruction, ...]) -> tuple[tuple[Instruction, ...], str | None, str]:
    """``bpf_core_patch_insn``: (instructions after, refusal or None, poison reason or "")."""
    if res.poison:
        return _poisoned_insns(insns), None, ""
    insn = insns[0]
    cls = insn.code & 0x07
    orig, new = res.orig_val, res.new_val
    if cls in (0x04, 0x07):  # ALU, ALU64
        if insn.code & 0x08:
            return insns, "ALU instruction does not take an immediate operand", ""
        if res.validate and (insn.imm & _U64) != orig:
            return insns, f"unexpected insn value: got {insn.imm}, exp {orig} -> {new}", ""
        return (insn.replace(imm=_s32(new)),), None, ""
    if cls in (0x01, 0x02, 0x03):  # LDX, ST, STX
        if res.validate and (insn.off & _U64) != orig:
            return insns, f"unexpected insn value: got {insn.off}, exp {orig} -> {new}", ""
        if new > _SHRT_MAX:
            return insns, f"insn (LDX/ST/STX) value too big: {new}", ""
        if res.fail_memsz_adjust:
            return (_poisoned_insns(insns), None,
                    f"load/store of {res.orig_sz} bytes cannot become {res.new_sz} bytes "
                    "(not a pointer or unsigned int on both sides)")
        patched = insn.replace(off=new)
        if res.new_sz != res.orig_sz:
            size = _SIZE_BYTES[insn.code & 0x18]
            if size != res.orig_sz:
                return insns, f"unexpected mem size: got {size}, exp {res.orig_sz}", ""
            if res.new_sz not in _BYTES_SIZE:
                return insns, f"invalid new mem size: {res.new_sz}", ""
            patched = patched.replace(code=(insn.code & ~0x18) | _BYTES_SIZE[res.new_sz])
        return (patched,), None, ""
    if cls == 0x00:  # LD
        if (insn.code != _LD_IMM64 or insn.src or insn.off or len(insns) < 2
                or insns[1].code or insns[1].dst or insns[1].src or insns[1].off):
            return insns, "insn (LDIMM64) has unexpected form", ""
        imm = (insn.imm & _U32) | ((insns[1].imm & _U32) << 32)
        if res.validate and imm != orig:
            return insns, f"unexpected insn value: got {imm}, exp {orig} -> {new}", ""
        return (insn.replace(imm=_s32(new)), insns[1].replace(imm=_s32(new >> 32))), None, ""
    return insns, f"trying to relocate unrecognized insn, code:{insn.code:#x}", ""


# ---------------------------------------------------------------- all relocations

def _type_label(btf: "BTF", type_id: int) -> str:
    if not 0 <= type_id <= btf.type_count:
        return f"[{type_id}]"
    if type_id == 0:
        return "void"
    name = btf.name_of(type_id)
    return f"{btf.kind_of(type_id).name.lower()} {name or '<anon>'}"


def _decide(kind: CoreReloKind, spec: CoreSpec,
            cands: list[Candidate]) -> tuple[_Result, CoreSpec | None]:
    """``bpf_core_calc_relo_insn``'s candidate loop: every matching candidate must give the
    same bit offset and the same value (else libbpf's ambiguity errors, raised as
    :class:`SpecError`); *cands* keeps only the matching ones (when any matched).
    Returns the result and the target spec used (None: no candidate matched)."""
    chosen: tuple[_Result, CoreSpec] | None = None
    kept: list[Candidate] = []
    for targ_btf, targ_id in cands:
        matched, targ = match_spec(spec, targ_btf, targ_id)
        if not matched:
            continue
        res = _calc(kind, spec, targ)
        if chosen is None:
            chosen = (res, targ)
        else:
            first_res, first = chosen
            both = f"(candidates {first.describe()} and {targ.describe()})"
            if targ.bit_offset != first.bit_offset:
                raise SpecError(_errno.EINVAL, f"field offset ambiguity: {targ.bit_offset} != "
                                               f"{first.bit_offset} {both}")
            if res.poison != first_res.poison or res.new_val != first_res.new_val:
                raise SpecError(_errno.EINVAL, (
                    "relocation decision ambiguity: "
                    f"{'failure' if res.poison else 'success'} {res.new_val} != "
                    f"{'failure' if first_res.poison else 'success'} {first_res.new_val} {both}"))
        kept.append((targ_btf, targ_id))
    if kept:
        cands[:] = kept  # libbpf's shared list keeps only the candidates that matched
    if chosen is None:
        return _calc(kind, spec, None), None
    return chosen


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
            res = _Result(orig_val=relo.type_id, new_val=relo.type_id, validate=False)
            return self._finish(res, relo, outcome, member, "", "")
        if not local.name_of(relo.type_id):
            return outcome(reason=f"<{KIND_LABELS[kind]}> relocation doesn't support anonymous types",
                           member=member)
        cands = self.candidates(relo.type_id)
        try:
            res, targ = _decide(kind, spec, cands)
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
    def _finish(res: _Result, relo: CoreRelocation, outcome: Callable[..., CoreOutcome],
                member: str, target: str, why: str) -> CoreOutcome:
        """Apply libbpf's instruction checks (when the instruction is known) and build the outcome."""
        patched: tuple[Instruction, ...] = ()
        poison_reason = ""
        if relo.insns:
            patched, refusal, poison_reason = _patch(res, relo.insns)
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
    if insns[at].code == _LD_IMM64:
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
