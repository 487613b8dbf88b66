"""Memory layout of BTF types: pointer size, size and alignment of a type.

These are libbpf's ``btf__pointer_size``, ``btf__resolve_size`` and
``btf__align_of`` (libbpf 1.1, ``src/btf.c``), with the same answers on the
same inputs, including the corner cases the C dumper depends on:

* the pointer size is guessed from the first INT named like ``long`` of size
  4 or 8 (a split BTF uses its base's guess); with no such INT, 8 is assumed;
* :func:`resolve_size` follows typedefs, modifiers, VARs and DECL_TAGs and
  multiplies array dimensions, at most 32 steps (``MAX_RESOLVE_DEPTH``); it
  returns ``None`` where libbpf returns an error (void, functions, loops,
  sizes above ``UINT32_MAX``);
* :func:`align_of` returns 1 for a struct/union whose layout shows that it
  was packed, and 0 (libbpf's error value) for kinds that have no alignment.
"""

from __future__ import annotations

import weakref
from typing import Any

from sigbpf.btf.kinds import MAX_RESOLVE_DEPTH, Kind

_LONG_NAMES = frozenset({
    "long", "long int", "int long", "unsigned long", "long unsigned",
    "unsigned long int", "unsigned int long", "long unsigned int",
    "long int unsigned", "int unsigned long", "int long unsigned",
})
_U32_MAX = 0xFFFFFFFF
_DEFAULT_POINTER_SIZE = 8  # libbpf falls back to sizeof(void *) of the host (x86-64)

_POINTER_SIZES: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()

_FOLLOW_FOR_SIZE = frozenset({Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT,
                              Kind.VAR, Kind.DECL_TAG, Kind.TYPE_TAG})
_SIZED_FOR_SIZE = frozenset({Kind.INT, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64,
                             Kind.DATASEC, Kind.FLOAT})
_FOLLOW_FOR_ALIGN = frozenset({Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT,
                               Kind.TYPE_TAG})


def guess_pointer_size(btf: Any) -> int | None:
    """libbpf's ``determine_ptr_size``: 4 or 8 from a ``long`` INT, else None."""
    base = getattr(btf, "base", None)
    if base is not None:
        size = guess_pointer_size(base)
        if size:
            return size
    start = getattr(btf, "start_id", 1)
    for type_id in range(start, btf.type_count + 1):
        t = btf[type_id]
        if t.kind is Kind.INT and t.size in (4, 8) and t.name in _LONG_NAMES:
            return t.size
    return None


def pointer_size(btf: Any) -> int:
    """The pointer size this BTF assumes (8 when it cannot be guessed); cached per BTF."""
    try:
        return _POINTER_SIZES[btf]
    except (KeyError, TypeError):
        pass
    size = guess_pointer_size(btf) or _DEFAULT_POINTER_SIZE
    try:
        _POINTER_SIZES[btf] = size
    except TypeError:  # not weak-referenceable: just do not cache
        pass
    return size


def resolve_size(btf: Any, type_id: int, ptr_size: int | None = None) -> int | None:
    """Size in bytes of *type_id* (``btf__resolve_size``); None where libbpf fails."""
    nelems = 1
    t = btf[type_id]
    for _ in range(MAX_RESOLVE_DEPTH):
        if type_id == 0:
            return None
        kind = t.kind
        if kind in _SIZED_FOR_SIZE:
            size = t.size
            break
        if kind is Kind.PTR:
            size = ptr_size if ptr_size is not None else pointer_size(btf)
            break
        if kind in _FOLLOW_FOR_SIZE:
            type_id = t.type
        elif kind is Kind.ARRAY:
            if nelems and t.nelems > _U32_MAX // nelems:
                return None
            nelems *= t.nelems
            type_id = t.type
        else:
            return None
        t = btf[type_id]
    else:
        return None
    if nelems and size > _U32_MAX // nelems:
        return None
    return nelems * size


def align_of(btf: Any, type_id: int, ptr_size: int | None = None,
             cache: dict[int, int] | None = None) -> int:
    """Alignment in bytes of *type_id* (``btf__align_of``); 0 where libbpf fails.

    Pass the same *cache* dict to many calls on one BTF to make them cheap.
    """
    if cache is not None:
        found = cache.get(type_id)
        if found is None:
            found = cache[type_id] = _align_of(btf, type_id,
                                               ptr_size if ptr_size else pointer_size(btf), cache)
        return found
    return _align_of(btf, type_id, ptr_size if ptr_size else pointer_size(btf), None)


def _align_of(btf: Any, type_id: int, ptr_size: int, cache: dict[int, int] | None) -> int:
    depth = 0
    while True:
        t = btf[type_id]
        kind = t.kind
        if kind in _FOLLOW_FOR_ALIGN:
            type_id = t.type
        elif kind is Kind.ARRAY:
            type_id = t.type
        else:
            break
        depth += 1
        if depth > 4 * MAX_RESOLVE_DEPTH:  # a loop: malformed BTF
            return 0
    if kind in (Kind.INT, Kind.ENUM, Kind.ENUM64, Kind.FLOAT):
        return min(ptr_size, t.size)
    if kind is Kind.PTR:
        return ptr_size
    if kind in (Kind.STRUCT, Kind.UNION):
        max_align = 1
        for m in t.members:
            align = align_of(btf, m.type, ptr_size, cache)
            if align <= 0:
                return align
            max_align = max(max_align, align)
            # a member off its natural alignment: the struct must be packed
            if m.bitfield_size == 0 and m.offset % (8 * align):
                return 1
        if t.size % max_align:
            return 1
        return max_align
    return 0
