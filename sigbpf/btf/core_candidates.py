"""Candidate target types of a CO-RE relocation: a kernel's types with the same essential name.

libbpf's ``bpf_core_find_cands`` / ``bpf_core_add_cands`` (and the kernel's
copy in ``kernel/bpf/btf.c``) scan every type of the target BTF for the
local root type's essential name (:func:`~sigbpf.btf.core_types.essential_name`)
and a compatible kind, vmlinux first; only when vmlinux has none are the
modules' own types searched, each module in turn.  Candidates come in id
order.

:class:`CandidateFinder` gives the same lists without a scan per relocation:

* names equal to the essential name itself come from the target's
  ``find_all_by_name_kind`` (the BTF's own name index, or the scanning
  look-up of :class:`sigbpf.fleet.scanbtf.ScanBTF` -- whichever the caller
  passes);
* flavored target names (``task_struct___2``) are found in the string section:
  every string that holds ``essential + "___"`` is read whole and kept if
  its essential name is the one asked; those names are looked up the same way.

Answers are cached per (essential name, kind) for the life of the finder, so
one finder serves every relocation of every program against one kernel.

The kind rule differs between libbpf and the kernel, and :class:`CoreRules`
says which one applies: libbpf accepts ENUM and ENUM64 candidates for each
other (``btf_kind_core_compat``), the kernel only the local type's own kind
(``btf_kind(t) != cands->kind``, 6.18).
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Sequence

from sigbpf.btf.core_types import essential_name
from sigbpf.btf.kinds import Kind
from sigbpf.btf.strings import decode_name, encode_name

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf.spec import BTF

__all__ = ["CoreRules", "Candidate", "CandidateFinder"]

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


class CandidateFinder:
    """Candidates in one kernel: *vmlinux* and its *modules* (split BTF on it), by *rules*."""

    def __init__(self, vmlinux: "BTF", modules: Sequence["BTF"] = (),
                 rules: CoreRules = CoreRules.KERNEL) -> None:
        self.vmlinux = vmlinux
        self.modules = tuple(modules)
        self.rules = rules
        self._cache: dict[tuple[str, Kind], tuple[Candidate, ...]] = {}
        self._flavors: dict[tuple[int, str], tuple[str, ...]] = {}

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
        names = [essential] if essential_name(essential) == essential else []
        names += self._flavored(btf, essential)
        ids: set[int] = set()
        start = getattr(btf, "start_id", 1)
        for target_kind in self.kinds_for(kind):
            for name in names:
                ids.update(i for i in btf.find_all_by_name_kind(name, target_kind) if i >= start)
        return tuple((btf, i) for i in sorted(ids))

    def _flavored(self, btf: "BTF", essential: str) -> tuple[str, ...]:
        """Names in *btf*'s strings (its base's too: module names may live there) that are
        *essential* with a flavor (``x___y``)."""
        key = (id(btf), essential)
        found = self._flavors.get(key)
        if found is None:
            needle = encode_name(essential) + b"___"
            names: dict[str, None] = {}
            table = btf.strings
            while table is not None:
                data = table.data
                i = data.find(needle)
                while i >= 0:
                    end = data.find(b"\0", i)
                    name = decode_name(data[i:end if end >= 0 else len(data)])
                    if essential_name(name) == essential:
                        names[name] = None
                    i = data.find(needle, i + 1)
                table = table.base
            found = self._flavors[key] = tuple(names)
        return found
