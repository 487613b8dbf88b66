"""Candidate target types of a CO-RE relocation: a kernel's types with the same essential name.

libbpf's ``bpf_core_find_cands`` / ``bpf_core_add_cands`` (and the kernel's
copy in ``kernel/bpf/btf.c``) scan every type of the target BTF for the
local root type's essential name (:func:`~sigbpf.btf.core_types.essential_name`)
and a compatible kind, vmlinux first; only when vmlinux has none are the
modules' own types searched, each module in turn.  Candidates come in id
order.

:class:`CandidateFinder` gives the same lists without a scan per relocation.
Per target BTF it builds, once, a :class:`TypeNames` index of the types a
relocation can name (ints, structs, unions, enums, forward declarations,
typedefs, floats) by (name, kind), in C-level builtins over the records'
``name_off`` words and the strings they point at (a few ms for vmlinux);
flavored names (``task_struct___2``) are grouped by essential name on first
use.  A look-up never decodes a type it does not return.  Answers are
cached per (essential name, kind) for the life of the finder: one finder
serves every relocation of every program against one kernel.

The kind rule differs between libbpf and the kernel; :class:`CoreRules`
says which one applies: libbpf accepts ENUM and ENUM64 candidates for each
other (``btf_kind_core_compat``), the kernel only the local type's own kind
(``btf_kind(t) != cands->kind``, 6.18).

The kernel also keeps the candidates of the last 31 essential names it
searched (one per slot, ``jhash(name) % 31``) and answers a name from there
*whatever the kind asked*, across every program loaded since: a local ENUM
loaded after an ENUM64 of the same essential name gets the ENUM64 as
candidate.  What the kernel answers thus depends on what was loaded before;
:class:`CandidateFinder` answers as a fresh search does (measured in
tests/test_core_relo.py).
"""

from __future__ import annotations

from collections import Counter
from enum import IntEnum
from itertools import compress, repeat
from operator import getitem
from typing import TYPE_CHECKING, Sequence

from sigbpf.btf.core_types import essential_name
from sigbpf.btf.kinds import Kind
from sigbpf.btf.strings import decode_name, encode_name
from sigbpf.errors import BTFError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.spec import BTF

__all__ = ["CoreRules", "Candidate", "CandidateFinder", "TypeNames"]

#: A candidate: the BTF it is in (vmlinux or a module) and its id there.
Candidate = tuple["BTF", int]


class CoreRules(IntEnum):
    """Whose CO-RE rules apply: they agree except where noted.

    ``KERNEL``: kernel-side CO-RE (``BPF_PROG_LOAD`` with ``core_relos``, what
    sigbpf's artifacts use): candidates of exactly the local kind, searched
    afresh for every relocation.  ``LIBBPF``: ``bpf_object__relocate_core``:
    ENUM and ENUM64 are candidates for each other, and the candidate list of a
    local type is shared by the object's relocations in ``.BTF.ext`` order,
    each relocation keeping only the candidates that matched it.
    """

    KERNEL = 0
    LIBBPF = 1


_ENUM_KINDS = (Kind.ENUM, Kind.ENUM64)
#: The kinds a relocation's root type can have and carry a name.
INDEXED_KINDS = frozenset({Kind.INT, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.FWD, Kind.TYPEDEF,
                           Kind.FLOAT, Kind.ENUM64})
_INDEXED = bytes(int(k in INDEXED_KINDS) for k in range(256))


class TypeNames:
    """One BTF's own types of :data:`INDEXED_KINDS`, by (name, kind), built once.

    Reads the records' ``name_off`` words (package-internal, as
    :mod:`sigbpf.btf.validate` does) and the names they point at, all in
    C-level builtins: a few ms for vmlinux, after which a look-up is a dict
    access.  Flavored names are grouped by essential name on first use.
    """

    def __init__(self, btf: "BTF") -> None:
        kinds = btf.kinds()
        mask = kinds.translate(_INDEXED)
        name_offs = list(map(getitem, repeat(btf._words), compress(btf._offsets, mask)))
        ids = list(compress(compress(range(btf.start_id, btf.type_count + 1), mask), name_offs))
        kinds_of = list(compress(compress(kinds, mask), name_offs))
        name_offs = list(compress(name_offs, name_offs))  # anonymous types are never candidates
        table = btf.strings
        if table.start == 0 and table.base is None and (not name_offs or max(name_offs) < len(table.data)):
            data = table.data
            names = list(map(getitem, repeat(data),
                             map(slice, name_offs, map(data.find, repeat(b"\0"), name_offs))))
        else:  # split BTF (names may live in the base's strings), or offsets to check one by one
            names = [_raw_name(table, off) for off in name_offs]
        keys = list(zip(names, kinds_of))
        self._first = dict(zip(reversed(keys), reversed(ids)))  # lowest id wins
        self._all: dict[tuple[bytes | None, int], list[int]] = {}
        if len(self._first) != len(keys):  # a name used twice with one kind
            twice = {k for k, n in Counter(keys).items() if n > 1}
            for key, type_id in zip(keys, ids):
                if key in twice:
                    self._all.setdefault(key, []).append(type_id)
        self._names = names
        self._flavored: dict[str, set[bytes]] | None = None

    def named(self, name: str | bytes, kinds: Sequence[Kind]) -> list[int]:
        """Ids of the types of *kinds* called exactly *name*."""
        raw = encode_name(name)
        found: list[int] = []
        for kind in kinds:
            key = (raw, int(kind))
            more = self._all.get(key)
            if more is not None:
                found += more
            elif key in self._first:
                found.append(self._first[key])
        return found

    def flavored(self, essential: str, kinds: Sequence[Kind]) -> list[int]:
        """Ids of the types of *kinds* whose name is *essential* plus a flavor (``x___y``)."""
        if self._flavored is None:
            groups: dict[str, set[bytes]] = {}
            for raw in {n for n in self._names if n is not None and b"___" in n}:
                name = decode_name(raw)
                base = essential_name(name)
                if base != name:
                    groups.setdefault(base, set()).add(raw)
            self._flavored = groups
        return [i for raw in sorted(self._flavored.get(essential, ())) for i in self.named(raw, kinds)]


def _raw_name(table, off: int) -> bytes | None:
    try:
        return table.raw_at(off)
    except BTFError:
        return None  # never equal to a real name


class CandidateFinder:
    """Candidates in one kernel: *vmlinux* and its *modules* (split BTF on it), by *rules*."""

    def __init__(self, vmlinux: "BTF", modules: Sequence["BTF"] = (),
                 rules: CoreRules = CoreRules.KERNEL) -> None:
        self.vmlinux = vmlinux
        self.modules = tuple(modules)
        self.rules = rules
        self._cache: dict[tuple[str, Kind], tuple[Candidate, ...]] = {}
        self._names: dict[int, TypeNames] = {}

    def type_names(self, btf: "BTF") -> TypeNames:
        """The :class:`TypeNames` index of *btf* (vmlinux or one of the modules), built once.
        A BTF may bring its own look-up with the same two questions (``named``,
        ``flavored``) as ``core_type_names()``: the fleet check's, which scans for the few
        names asked instead of indexing every name."""
        names = self._names.get(id(btf))
        if names is None:
            own = getattr(btf, "core_type_names", None)
            names = self._names[id(btf)] = own() if own is not None else TypeNames(btf)
        return names

    def kinds_for(self, kind: Kind) -> tuple[Kind, ...]:
        """The target kinds a local type of *kind* may match under these rules."""
        if self.rules is CoreRules.LIBBPF and kind in _ENUM_KINDS:
            return _ENUM_KINDS
        return (kind,)

    def candidates(self, name: str, kind: Kind) -> tuple[Candidate, ...]:
        """Candidates for a local type named *name* of *kind* (vmlinux's, else the modules')."""
        key = (essential_name(name), kind)
        found = self._cache.get(key)
        if found is None:
            found = self._search(self.vmlinux, key[0], kind)
            if not found:
                for module in self.modules:
                    found += self._search(module, key[0], kind)
            self._cache[key] = found
        return found

    def _search(self, btf: "BTF", essential: str, kind: Kind) -> tuple[Candidate, ...]:
        """Own types of *btf* (not its base's) whose essential name is *essential*, in id order."""
        if not essential:
            return ()
        kinds = self.kinds_for(kind)
        exact = essential_name(essential) == essential  # "a___b___c" is not a___b's essential
        if kind in INDEXED_KINDS:
            names = self.type_names(btf)
            ids = names.flavored(essential, kinds)
            if exact:
                ids += names.named(essential, kinds)
        else:  # no clang relocation has such a root (FUNC, VAR, ...): exact names only
            start = btf.start_id
            ids = [i for k in kinds for i in btf.find_all_by_name_kind(essential, k) if i >= start]
            ids = ids if exact else []
        return tuple((btf, i) for i in sorted(set(ids)))
