"""CO-RE's relations between a local (program) type and a target (kernel) type.

libbpf's ``src/relo_core.c`` judges candidate target types with four rules;
this module holds them, each once, all taking ``(local_btf, local_id,
targ_btf, targ_id)``:

:func:`essential_name`
    ``bpf_core_essential_name_len``: a name up to its *last* flavor separator,
    ``x___y`` where ``x`` is not ``_`` and ``y`` is not ``_``
    (``task_struct___v2`` -> ``task_struct``, ``a___b___c`` -> ``a___b``,
    ``___GFP_DMA`` and ``cap_____res`` are their own essential names).
:func:`types_are_compat`
    ``bpf_core_types_are_compat``, the rule of type-based relocations
    (type id, exists, size); it is the kfunc prototype rule too and lives in
    :mod:`sigbpf.btf.compat` (:func:`~sigbpf.btf.compat.core_types_are_compat`).
:func:`fields_are_compat`
    ``bpf_core_fields_are_compat``: whether a member found by name in the
    target can stand for the local one (any two structs/unions, any two
    pointers or floats, ints unless bitfield-like, enums and forward
    declarations by essential name or when one is anonymous, arrays by
    element).
:func:`types_match`
    ``bpf_core_types_match``, the stricter rule of ``bpf_core_type_matches()``
    (TYPE_MATCHES): names by essential name at every level, ints by size and
    signedness, enums by their enumerators' names, structs and unions member
    by member (only names and kinds behind a pointer), arrays by length,
    function prototypes by parameters.

Each returns libbpf's raw answer: 1 (yes), 0 (no) or ``-EINVAL`` (a broken
chain, or deeper than libbpf's bound of 32); callers treat a negative answer
as the relocation's error, as libbpf does.
"""

from __future__ import annotations

import errno as _errno
from typing import TYPE_CHECKING

from sigbpf.btf.compat import core_types_are_compat as types_are_compat
from sigbpf.btf.kinds import IntEncoding, Kind
from sigbpf.errors import BTFError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.spec import BTF

__all__ = ["essential_name", "types_are_compat", "fields_are_compat", "types_match",
           "skip_mods_and_typedefs", "kinds_core_compat", "MATCH_DEPTH"]

#: libbpf's bound on nesting for ``bpf_core_types_match`` (``level`` and ``depth`` both 32).
MATCH_DEPTH = 32
_EINVAL = -_errno.EINVAL
_COMPOSITES = (Kind.STRUCT, Kind.UNION)
_ENUMS = (Kind.ENUM, Kind.ENUM64)


def essential_name(name: str) -> str:
    """*name* without its flavor: libbpf's ``bpf_core_essential_name_len`` (last ``x___y``)."""
    n = len(name)
    i = name.rfind("___")
    while i > 0:
        if name[i - 1] != "_" and i + 3 < n and name[i + 3] != "_":
            return name[:i]
        i = name.rfind("___", 0, i + 2)
    return name


def skip_mods_and_typedefs(btf: "BTF", type_id: int) -> int | None:
    """libbpf's ``skip_mods_and_typedefs``: the id after modifiers and typedefs; None if broken."""
    try:
        return btf.resolve_modifiers(type_id)
    except BTFError:
        return None


def kinds_core_compat(a: Kind, b: Kind) -> bool:
    """libbpf's ``btf_kind_core_compat``: the same kind, or ENUM and ENUM64."""
    return a == b or (a in _ENUMS and b in _ENUMS)


def _names_compat(local_name: str, targ_name: str) -> bool:
    """Enum/fwd rule of ``bpf_core_fields_are_compat``: one anonymous, or the same essential name."""
    local_e, targ_e = essential_name(local_name), essential_name(targ_name)
    return not local_e or not targ_e or local_e == targ_e


def fields_are_compat(local_btf: "BTF", local_id: int, targ_btf: "BTF", targ_id: int) -> int:
    """libbpf's ``bpf_core_fields_are_compat``: 1, 0 or ``-EINVAL``."""
    while True:
        lid = skip_mods_and_typedefs(local_btf, local_id)
        tid = skip_mods_and_typedefs(targ_btf, targ_id)
        if lid is None or tid is None:
            return _EINVAL
        lk, tk = local_btf.kind_of(lid), targ_btf.kind_of(tid)
        if lk in _COMPOSITES and tk in _COMPOSITES:
            return 1
        if not kinds_core_compat(lk, tk):
            return 0
        if lk in (Kind.PTR, Kind.FLOAT):
            return 1
        if lk in (Kind.FWD, Kind.ENUM, Kind.ENUM64):
            return int(_names_compat(local_btf.name_of(lid), targ_btf.name_of(tid)))
        if lk is Kind.INT:
            return int(local_btf[lid].offset == 0 and targ_btf[tid].offset == 0)
        if lk is Kind.ARRAY:
            local_id, targ_id = local_btf[lid].type, targ_btf[tid].type
            continue
        return 0


def _names_match(local_name: str, targ_name: str) -> bool:
    """libbpf's ``bpf_core_names_match``: an anonymous target needs an anonymous local."""
    if not targ_name:
        return not local_name
    return essential_name(local_name) == essential_name(targ_name)


def _enums_match(lt, tt) -> int:
    if lt.size != tt.size or len(lt.values) > len(tt.values):
        return 0
    for lv in lt.values:
        if not any(_names_match(lv.name, tv.name) for tv in tt.values):
            return 0
    return 1


def _composites_match(local_btf: "BTF", lt, targ_btf: "BTF", tt, behind_ptr: bool,
                      level: int) -> int:
    if len(lt.members) > len(tt.members):
        return 0
    for lm in lt.members:
        for tm in tt.members:
            if not _names_match(lm.name, tm.name):
                continue
            err = _types_match(local_btf, lm.type, targ_btf, tm.type, behind_ptr, level - 1)
            if err < 0:
                return err
            if err > 0:
                break
        else:
            return 0
    return 1


def types_match(local_btf: "BTF", local_id: int, targ_btf: "BTF", targ_id: int) -> int:
    """libbpf's ``bpf_core_types_match``: 1, 0 or ``-EINVAL`` (root names already matched)."""
    return _types_match(local_btf, local_id, targ_btf, targ_id, False, MATCH_DEPTH)


def _types_match(local_btf: "BTF", local_id: int, targ_btf: "BTF", targ_id: int,
                 behind_ptr: bool, level: int) -> int:
    """``__bpf_core_types_match``."""
    if level <= 0:
        return _EINVAL
    depth = MATCH_DEPTH
    while True:
        depth -= 1
        if depth < 0:
            return _EINVAL
        lid = skip_mods_and_typedefs(local_btf, local_id)
        tid = skip_mods_and_typedefs(targ_btf, targ_id)
        if lid is None or tid is None:
            return _EINVAL
        if not _names_match(local_btf.name_of(lid), targ_btf.name_of(tid)):
            return 0
        lt, tt = local_btf[lid], targ_btf[tid]
        lk, tk = lt.kind, tt.kind
        if lk is Kind.UNKN:
            return int(lk == tk)
        if lk is Kind.FWD:
            if behind_ptr and lk != tk:
                # a forward declaration's kind_flag says struct (0) or union (1)
                return int((tk is Kind.STRUCT and not lt.union) or (tk is Kind.UNION and lt.union))
            return int(lk == tk and lt.union == tt.union)
        if lk in _ENUMS:
            return _enums_match(lt, tt) if tk in _ENUMS else 0
        if lk in _COMPOSITES:
            if behind_ptr:
                if lk == tk:
                    return 1
                return int(tk is Kind.FWD and (lk is Kind.UNION) == tt.union)
            if lk != tk:
                return 0
            return _composites_match(local_btf, lt, targ_btf, tt, behind_ptr, level)
        if lk != tk:
            return 0
        if lk is Kind.INT:
            signed = IntEncoding.SIGNED
            return int(lt.size == tt.size and (lt.encoding & signed) == (tt.encoding & signed))
        if lk is Kind.PTR:
            behind_ptr = True
            local_id, targ_id = lt.type, tt.type
            continue
        if lk is Kind.ARRAY:
            if lt.nelems != tt.nelems:
                return 0
            local_id, targ_id = lt.type, tt.type
            continue
        if lk is Kind.FUNC_PROTO:
            if len(lt.params) != len(tt.params):
                return 0
            for lp, tp in zip(lt.params, tt.params):
                err = _types_match(local_btf, lp.type, targ_btf, tp.type, behind_ptr, level - 1)
                if err <= 0:
                    return err
            local_id, targ_id = lt.return_type, tt.return_type
            continue
        return 0  # libbpf: "unexpected kind %s relocated"
