"""What a CO-RE access string names, in the local BTF and in one candidate target type.

A relocation's access string (``"0:1:2:3"``) walks from its root type through
members and array elements.  libbpf (``src/relo_core.c``) turns it into a
*spec*: the raw indices, the bit offset they reach, and the "high-level"
accessors that mean something across kernels (named members and array
indices; anonymous struct/union members are only steps).  The same spec is
then looked for in each candidate target type, by member *name*, giving the
target's indices and bit offset.

* :func:`parse_spec` is ``bpf_core_parse_spec`` (the local side);
* :func:`match_spec` is ``bpf_core_spec_match`` with ``bpf_core_match_member``
  (a candidate target type; field relocations find members by name and check
  them with :func:`~sigbpf.btf.core_types.fields_are_compat`, type relocations
  use :func:`~sigbpf.btf.core_types.types_are_compat` or
  :func:`~sigbpf.btf.core_types.types_match`, enum relocations find the
  enumerator by essential name);
* :meth:`CoreSpec.describe` is ``bpf_core_format_spec`` (``task_struct.pid
  (0:57 @ offset 2456)``).

Both raise :class:`SpecError` where libbpf returns a negative errno (the
relocation then fails the load) and answer False where a candidate simply
does not match.  The spec is mutable while matching, exactly as libbpf's is:
a member search that fails inside an anonymous member leaves its steps
behind, as libbpf's does.
"""

from __future__ import annotations

import errno as _errno
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sigbpf.btf.core_types import (
    essential_name, fields_are_compat, skip_mods_and_typedefs, types_are_compat, types_match,
)
from sigbpf.btf.kinds import Kind
from sigbpf.btf.layout import resolve_size
from sigbpf.elf.btf_ext import CoreReloKind

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.spec import BTF

__all__ = ["SpecError", "Accessor", "CoreSpec", "parse_spec", "match_spec", "type_size", "SPEC_MAX_LEN",
           "FIELD_KINDS", "TYPE_KINDS", "ENUMVAL_KINDS"]

#: libbpf's ``BPF_CORE_SPEC_MAX_LEN``: at most this many raw indices.
SPEC_MAX_LEN = 64
_U32 = 0xFFFFFFFF

FIELD_KINDS = frozenset({CoreReloKind.FIELD_BYTE_OFFSET, CoreReloKind.FIELD_BYTE_SIZE,
                         CoreReloKind.FIELD_EXISTS, CoreReloKind.FIELD_SIGNED,
                         CoreReloKind.FIELD_LSHIFT_U64, CoreReloKind.FIELD_RSHIFT_U64})
TYPE_KINDS = frozenset({CoreReloKind.TYPE_ID_LOCAL, CoreReloKind.TYPE_ID_TARGET,
                        CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_MATCHES,
                        CoreReloKind.TYPE_SIZE})
ENUMVAL_KINDS = frozenset({CoreReloKind.ENUMVAL_EXISTS, CoreReloKind.ENUMVAL_VALUE})

# sscanf("%d%n") at each step: optional blanks, an optional sign, digits
_NUMBER = re.compile(r"\s*([+-]?\d+)")
_COMPOSITES = (Kind.STRUCT, Kind.UNION)
_ENUMS = (Kind.ENUM, Kind.ENUM64)


class SpecError(Exception):
    """libbpf's negative answer while building or matching a spec (internal: never escapes
    :mod:`sigbpf.btf.core`, which turns it into a refused relocation)."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno
        self.message = message


def _einval(message: str) -> SpecError:
    return SpecError(_errno.EINVAL, message)


@dataclass(slots=True)
class Accessor:
    """One high-level step: a member (``name`` set) or an array index / the root (``name`` None).

    ``type_id`` is the struct/union holding the member, or the element type
    for an index; ``idx`` the member's position or the index.
    """

    type_id: int
    idx: int
    name: str | None = None


@dataclass(slots=True)
class CoreSpec:
    """libbpf's ``struct bpf_core_spec``: a root type, accessors, raw indices, bit offset."""

    btf: "BTF"
    root_type_id: int
    kind: CoreReloKind
    accessors: list[Accessor] = field(default_factory=list)
    raw: list[int] = field(default_factory=list)
    bit_offset: int = 0

    def describe(self) -> str:
        """``bpf_core_format_spec``: ``[id] struct name.a[3].b (0:1:3:2 @ offset 24)``."""
        btf = self.btf
        root = self.root_type_id
        name = btf.name_of(root) or "<anon>"
        text = f"[{root}] {btf.kind_of(root).name.lower()} {name}"
        if self.kind in TYPE_KINDS:
            return text
        if self.kind in ENUMVAL_KINDS:
            if not self.raw:
                return text
            enum_id = skip_mods_and_typedefs(btf, root)
            value = btf[enum_id].values[self.raw[0]] if enum_id is not None else None
            return f"{text}::{value.name} = {value.value}" if value is not None else text
        for i, acc in enumerate(self.accessors):
            if acc.name:
                text += f".{acc.name}"
            elif i > 0 or acc.idx > 0:
                text += f"[{acc.idx}]"
        raw = ":".join(map(str, self.raw))
        at = (f"{self.bit_offset // 8}.{self.bit_offset % 8}" if self.bit_offset % 8
              else f"{self.bit_offset // 8}")
        return f"{text} ({raw} @ offset {at})"

    def member_path(self) -> str:
        """The C view of the accessors after the root: ``.pid``, ``[3].a``, or the enumerator."""
        if self.kind in ENUMVAL_KINDS:
            return f"::{self.accessors[0].name}" if self.accessors else ""
        out = ""
        for i, acc in enumerate(self.accessors):
            if acc.name:
                out += f".{acc.name}"
            elif i > 0 or acc.idx > 0:
                out += f"[{acc.idx}]"
        return out


def type_size(btf: "BTF", type_id: int) -> int:
    """libbpf's ``btf__resolve_size``, raising :class:`SpecError` where it fails."""
    size = resolve_size(btf, type_id)
    if size is None:
        raise _einval(f"cannot resolve the size of [{type_id}]")
    return size


def _is_flex_array(btf: "BTF", acc: Accessor, nelems: int) -> bool:
    """libbpf's ``is_flex_arr``: a zero-length array that is the last member of its struct."""
    if not acc.name or nelems > 0:
        return False
    return acc.idx == len(btf[acc.type_id].members) - 1


def _parse_access(text: str) -> list[int]:
    """The raw indices of an access string, as libbpf's sscanf loop reads them."""
    if not text or text[0] == ":":
        raise _einval(f"access string {text!r} is empty or starts with ':'")
    raw: list[int] = []
    pos = 0
    while pos < len(text):
        if text[pos] == ":":
            pos += 1
        m = _NUMBER.match(text, pos)
        if m is None:
            raise _einval(f"access string {text!r} is not a list of indices")
        value = int(m.group(1))
        if value < 0:
            raise _einval(f"access string {text!r} has a negative index")
        if len(raw) == SPEC_MAX_LEN:
            raise SpecError(_errno.E2BIG, f"access string {text!r} is longer than "
                                          f"{SPEC_MAX_LEN} indices")
        raw.append(value)
        pos = m.end()
    return raw


def parse_spec(btf: "BTF", type_id: int, access: str, kind: CoreReloKind) -> CoreSpec:
    """``bpf_core_parse_spec``: the local spec of one relocation (raises :class:`SpecError`)."""
    spec = CoreSpec(btf, type_id, kind)
    if kind in TYPE_KINDS:
        if access != "0":
            raise _einval(f"type relocation with access string {access!r} (not \"0\")")
        return spec
    raw = spec.raw = _parse_access(access)
    tid = skip_mods_and_typedefs(btf, type_id)
    if tid is None:
        raise _einval(f"type [{type_id}] does not resolve")
    idx = raw[0]
    acc = Accessor(tid, idx)
    spec.accessors.append(acc)
    t = btf[tid]
    if kind in ENUMVAL_KINDS:
        if t.kind not in _ENUMS or len(raw) > 1 or idx >= len(t.values):
            raise _einval(f"enum relocation {access!r} does not name an enumerator of [{tid}]")
        acc.name = t.values[idx].name
        return spec
    if kind not in FIELD_KINDS:
        raise _einval(f"relocation kind {int(kind)} is not a field, type or enum relocation")
    spec.bit_offset = (idx * type_size(btf, tid) * 8) & _U32
    for i in range(1, len(raw)):
        tid = skip_mods_and_typedefs(btf, tid)
        if tid is None:
            raise _einval(f"access string {access!r}: step {i} does not resolve")
        t = btf[tid]
        idx = raw[i]
        if t.kind in _COMPOSITES:
            if idx >= len(t.members):
                raise _einval(f"access string {access!r}: member {idx} of [{tid}] does not exist")
            m = t.members[idx]
            spec.bit_offset = (spec.bit_offset + m.offset) & _U32
            if m.name:
                spec.accessors.append(Accessor(tid, idx, m.name))
            tid = m.type
        elif t.kind is Kind.ARRAY:
            elem = skip_mods_and_typedefs(btf, t.type)
            if elem is None:
                raise _einval(f"access string {access!r}: array element of [{tid}] does not resolve")
            if not _is_flex_array(btf, spec.accessors[-1], t.nelems) and idx >= t.nelems:
                raise _einval(f"access string {access!r}: index {idx} beyond [{tid}]'s "
                              f"{t.nelems} elements")
            tid = elem
            spec.accessors.append(Accessor(tid, idx))
            spec.bit_offset = (spec.bit_offset + idx * type_size(btf, tid) * 8) & _U32
        else:
            raise _einval(f"access string {access!r}: step {i} reaches [{tid}] of kind "
                          f"{t.kind.name}, not a struct, union or array")
    return spec


def match_spec(local: CoreSpec, targ_btf: "BTF", targ_id: int) -> tuple[bool, CoreSpec]:
    """``bpf_core_spec_match``: the target spec of candidate *targ_id*, and whether it matches."""
    targ = CoreSpec(targ_btf, targ_id, local.kind)
    kind = local.kind
    if kind in TYPE_KINDS:
        rule = types_match if kind is CoreReloKind.TYPE_MATCHES else types_are_compat
        answer = rule(local.btf, local.root_type_id, targ_btf, targ_id)
        if answer < 0:
            raise SpecError(-answer, f"comparing [{local.root_type_id}] with target [{targ_id}] "
                                     "failed (broken or too deep)")
        return answer > 0, targ
    if kind in ENUMVAL_KINDS:
        tid = skip_mods_and_typedefs(targ_btf, targ_id)
        if tid is None or targ_btf.kind_of(tid) not in _ENUMS:
            return False, targ
        want = essential_name(local.accessors[0].name or "")
        for i, value in enumerate(targ_btf[tid].values):
            if essential_name(value.name) == want:
                targ.accessors.append(Accessor(tid, i, value.name))
                targ.raw.append(i)
                return True, targ
        return False, targ
    if kind not in FIELD_KINDS:
        raise _einval(f"relocation kind {int(kind)} cannot be matched")
    tid = targ_id
    for i, local_acc in enumerate(local.accessors):
        tid = skip_mods_and_typedefs(targ_btf, tid)
        if tid is None:
            raise _einval(f"target [{targ_id}]: step {i} does not resolve")
        if local_acc.name:
            found, next_id = _match_member(local.btf, local_acc, targ_btf, tid, targ)
            if not found:
                return False, targ
            tid = next_id
            continue
        if i > 0:
            t = targ_btf[tid]
            if t.kind is not Kind.ARRAY:
                return False, targ
            if not _is_flex_array(targ_btf, targ.accessors[i - 1], t.nelems) and \
                    local_acc.idx >= t.nelems:
                return False, targ
            elem = skip_mods_and_typedefs(targ_btf, t.type)
            if elem is None:
                raise _einval(f"target [{tid}]: array element does not resolve")
            tid = elem
        if len(targ.raw) == SPEC_MAX_LEN:
            raise SpecError(_errno.E2BIG, "target spec deeper than "
                                          f"{SPEC_MAX_LEN} steps")
        targ.accessors.append(Accessor(tid, local_acc.idx))
        targ.raw.append(local_acc.idx)
        targ.bit_offset = (targ.bit_offset + local_acc.idx * type_size(targ_btf, tid) * 8) & _U32
    return True, targ


def _match_member(local_btf: "BTF", local_acc: Accessor, targ_btf: "BTF", targ_id: int,
                  spec: CoreSpec) -> tuple[bool, int]:
    """``bpf_core_match_member``: find the local member by name in *targ_id*, anonymous
    members searched depth first; (found, the target member's type id)."""
    tid = skip_mods_and_typedefs(targ_btf, targ_id)
    if tid is None:
        raise _einval(f"target [{targ_id}] does not resolve")
    t = targ_btf[tid]
    if t.kind not in _COMPOSITES:
        return False, 0
    local_member = local_btf[local_acc.type_id].members[local_acc.idx]
    for i, m in enumerate(t.members):
        if len(spec.raw) == SPEC_MAX_LEN:
            raise SpecError(_errno.E2BIG, "target spec deeper than "
                                          f"{SPEC_MAX_LEN} steps")
        # speculate this member is the one
        spec.bit_offset = (spec.bit_offset + m.offset) & _U32
        spec.raw.append(i)
        if not m.name:
            found, next_id = _match_member(local_btf, local_acc, targ_btf, m.type, spec)
            if found:
                return True, next_id
        elif m.name == local_member.name:
            spec.accessors.append(Accessor(tid, i, m.name))
            answer = fields_are_compat(local_btf, local_member.type, targ_btf, m.type)
            if answer < 0:
                raise SpecError(-answer, f"comparing member {m.name!r} failed (broken type chain)")
            if not answer:
                spec.accessors.pop()
            return bool(answer), m.type
        spec.bit_offset = (spec.bit_offset - m.offset) & _U32
        spec.raw.pop()
    return False, 0
