"""A CO-RE relocation's values in one target, and the decision across candidate targets.

libbpf's ``bpf_core_calc_relo`` (``src/relo_core.c``) computes, from the local
spec and one candidate's spec (:mod:`sigbpf.btf.core_spec`), the value the
instruction holds now (``orig_val``, checked against it) and the value it gets
(``new_val``): a field's byte offset, byte size, signedness and bitfield
shifts (``bpf_core_calc_field_relo``: the smallest load that holds a
bitfield; the element size of arrays for loads), a type's id, existence,
size or match (``bpf_core_calc_type_relo``), an enumerator's existence or
value (``bpf_core_calc_enumval_relo``, an ENUM value widened from s32).
Where libbpf returns ``-EUCLEAN`` the result says ``poison``: the field or
enumerator is in no candidate.  A load whose size would change is marked
unsafe (``fail_memsz_adjust``) unless both sides are pointers or unsigned
ints.

:func:`decide` is ``bpf_core_calc_relo_insn``'s loop over the candidates:
every candidate that matches must give the same bit offset and the same
result, else the relocation fails (libbpf's "field offset ambiguity" and
"relocation decision ambiguity", raised as
:class:`~sigbpf.btf.core_spec.SpecError`); with no match, the result is
computed for "not found".
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sigbpf.btf.core_spec import (
    FIELD_KINDS, TYPE_KINDS, CoreSpec, SpecError, match_spec, type_size,
)
from sigbpf.btf.core_types import skip_mods_and_typedefs
from sigbpf.btf.kinds import IntEncoding, Kind
from sigbpf.elf.btf_ext import CoreReloKind

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.core_candidates import Candidate
    from sigbpf.btf.spec import BTF

__all__ = ["RelocResult", "calc_relo", "decide"]

_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1


class _Poison(Exception):
    """libbpf's ``-EUCLEAN``: the instruction is to be poisoned."""


@dataclass(slots=True)
class RelocResult:
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


def _element_size(btf: "BTF", type_id: int) -> int:
    """Size of the innermost element of (nested) arrays, or of the type itself."""
    tid = skip_mods_and_typedefs(btf, type_id)
    while tid is not None and btf.kind_of(tid) is Kind.ARRAY:
        tid = skip_mods_and_typedefs(btf, btf[tid].type)
    if tid is None:
        raise SpecError(_errno.EINVAL, f"[{type_id}] does not resolve")
    return type_size(btf, tid)


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
            return type_size(btf, acc.type_id), 0, 0, True
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
        byte_sz = type_size(btf, field_id)
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
        return type_size(spec.btf, spec.root_type_id), True
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


def calc_relo(kind: CoreReloKind, local: CoreSpec, targ: CoreSpec | None) -> RelocResult:
    """``bpf_core_calc_relo``: original and new values; poison instead of ``-EUCLEAN``."""
    res = RelocResult()
    try:
        if kind in FIELD_KINDS:
            res.orig_val, res.orig_sz, res.orig_type_id, res.validate = _field_value(kind, local)
            res.new_val, res.new_sz, res.new_type_id, _ = _field_value(kind, targ)
            if targ is not None and res.orig_sz != res.new_sz:
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


def decide(kind: CoreReloKind, spec: CoreSpec,
           cands: list["Candidate"]) -> tuple[RelocResult, CoreSpec | None]:
    """``bpf_core_calc_relo_insn``'s candidate loop: every matching candidate must give the
    same bit offset and the same value (else libbpf's ambiguity errors, raised as
    :class:`SpecError`); *cands* keeps only the matching ones (when any matched).
    Returns the result and the target spec used (None: no candidate matched)."""
    chosen: tuple[RelocResult, CoreSpec] | None = None
    kept: list["Candidate"] = []
    for targ_btf, targ_id in cands:
        matched, targ = match_spec(spec, targ_btf, targ_id)
        if not matched:
            continue
        res = calc_relo(kind, spec, targ)
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
        return calc_relo(kind, spec, None), None
    return chosen
