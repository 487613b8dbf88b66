"""Finding the types of one kind by name: the index behind ``BTF.find_by_name_kind``.

The kernel's ``btf_find_by_name_kind()`` (kernel/bpf/btf.c) walks the ids in
order and returns the first type of the kind whose whole name matches, so
the answer for a name is the *lowest* id that has it.  :class:`NameIndex`
gives that answer without a linear search, from the names of the kind's
types listed in id order, in one of two ways:

* **names already in order: binary search.**  pahole writes the FUNCs of
  vmlinux sorted by name (all 56,000 of them in 6.18).  When the names are in
  order (checked once, one comparison per name, stopping at the first pair
  out of order), :func:`bisect.bisect_left` finds the first of a run of equal
  names, which is the lowest id with that name.  Nothing is built and no
  name is kept: each comparison of a search reads its name from the string
  section again (:class:`StringsAt`).
* **otherwise: a dict** from each name to its first (lowest) entry.

Either way the answers are the kernel's, for any input; the sorted case is
only cheaper.  For the FUNCs of vmlinux the check takes ~12 ms (making each
name once, as bytes), and filling a dict would take another 4-8 ms in a fresh
process (hashing 56,000 names, growing the table, and ~2 MB of new memory).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import repeat, tee
from operator import getitem, le
from typing import Iterator, Sequence

__all__ = ["NameIndex", "StringsAt"]


class StringsAt:
    """The NUL-terminated strings of *data* that start at *offsets*, as a read-only sequence.

    Nothing is copied up front: an item is sliced out of *data* when asked
    for, and iterating makes the items one by one in C-level ``map`` calls.
    The caller guarantees ``0 <= offset < len(data)`` for every offset and a
    NUL as the last byte of *data* (a BTF string section, checked at parse),
    so every string ends inside *data*.
    """

    __slots__ = ("_data", "_offsets")

    def __init__(self, data: bytes, offsets: Sequence[int]) -> None:
        self._data = data
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, i: int) -> bytes:
        start = self._offsets[i]
        return self._data[start:self._data.find(b"\0", start)]

    def __iter__(self) -> Iterator[bytes]:
        data, offsets = self._data, self._offsets
        return map(getitem, repeat(data), map(slice, offsets, map(data.find, repeat(b"\0"), offsets)))


class NameIndex:
    """Names of the types of one kind, in id order, with what to answer for each (*keys*).

    ``names[i]`` is the raw name of the i-th type of the kind (``None`` for a
    name that cannot be read: it never matches), ``keys[i]`` the value to
    return for it (a type id, or anything that grows with the id).
    """

    __slots__ = ("_names", "_keys", "_first", "_groups")

    def __init__(self, names: "Sequence[bytes | None]", keys: Sequence[int]) -> None:
        self._names = names
        self._keys = keys
        self._first: dict[bytes | None, int] | None = None
        self._groups: dict[bytes | None, list[int]] | None = None
        ahead, behind = tee(names)
        next(ahead, None)
        try:
            in_order = all(map(le, behind, ahead))
        except TypeError:  # a None among the names: not comparable, use the dict
            in_order = False
        if not in_order:
            first = dict(zip(names, keys))
            if len(first) != len(keys):  # duplicate names: the first (lowest) must win
                first = dict(zip(reversed(list(names)), reversed(keys)))
            self._first = first

    @property
    def binary_search(self) -> bool:
        """True when the names were in order and look-ups are binary searches."""
        return self._first is None

    def __len__(self) -> int:
        return len(self._keys)

    def first(self, name: bytes) -> int | None:
        """The key of the first (lowest) entry named *name*; None if there is none."""
        if self._first is not None:
            return self._first.get(name)
        names = self._names
        i = bisect_left(names, name)  # type: ignore[arg-type]
        return self._keys[i] if i < len(names) and names[i] == name else None

    def all(self, name: bytes) -> list[int]:
        """The keys of every entry named *name*, in id order."""
        if self._first is None:
            names = self._names
            lo = bisect_left(names, name)  # type: ignore[arg-type]
            return list(self._keys[lo:bisect_right(names, name, lo)])  # type: ignore[arg-type]
        if name not in self._first:
            return []
        if self._groups is None:
            groups: dict[bytes | None, list[int]] = {}
            for n, key in zip(self._names, self._keys):
                groups.setdefault(n, []).append(key)
            self._groups = groups
        return list(self._groups[name])
