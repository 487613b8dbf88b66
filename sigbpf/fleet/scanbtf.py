"""Kernel BTF for the fleet check: look a few names up without indexing every name.

:meth:`BTF.find_by_name_kind` builds, on first use, an index of every name of
the kind asked (~40 ms for the 56,000 FUNCs of a vmlinux): the right choice
when a process asks thousands of questions of one kernel.  The fleet check
asks a dozen questions of each of a thousand kernels, so :class:`ScanBTF`
answers each name by scanning for it instead:

1. every offset where the name's bytes followed by a NUL stand in the string
   section(s) (``bytes.find``, C speed; a name can start mid-string, as in C,
   so every occurrence counts, and for split BTF the base's strings too:
   libbpf's ``btf__add_str`` points a module's names into vmlinux strings when
   it can);
2. every record whose ``name_off`` is one of those offsets: a ``bytes.find``
   of the offset among the records' ``name_off`` words, laid out as bytes
   once per BTF (~5 ms for vmlinux; each search then takes ~0.1 ms);
3. those records of the kind asked, in id order.

The answers are exactly :class:`BTF`'s (the kernel's ``btf_find_by_name_kind``:
lowest id first, base before own types); a test compares both on real
kernels.  Everything else (framing, decoding, kinds) is :class:`BTF`'s own.
"""

from __future__ import annotations

import errno as _errno
import struct
from array import array
from operator import itemgetter
from typing import Iterator

from sigbpf.btf import kinds as K
from sigbpf.btf.kinds import Kind
from sigbpf.btf.spec import BTF
from sigbpf.btf.strings import encode_name
from sigbpf.errors import NotFoundError

_U32 = struct.Struct("=I")
#: More string offsets than this for one name: look it up in BTF's index instead.
_MANY = 32


def word_positions(data: bytes | bytearray, word: int) -> Iterator[int]:
    """Indexes (in 4-byte words) where the host-order u32 *word* stands at a word boundary."""
    needle = _U32.pack(word)
    i = data.find(needle)
    while i >= 0:
        if i % 4 == 0:
            yield i // 4
        i = data.find(needle, i + 1)


def string_offsets(btf: BTF, raw: bytes) -> list[int]:
    """Every offset (base strings first) from which the string reads *raw*."""
    out: list[int] = []
    table = btf.strings
    chain = []
    while table is not None:
        chain.append(table)
        table = table.base
    needle = raw + b"\0"
    for t in reversed(chain):
        data = t.data
        i = data.find(needle)
        while i >= 0:
            out.append(t.start + i)
            i = data.find(needle, i + 1)
    return out


class ScanBTF(BTF):
    """A :class:`BTF` whose name look-ups scan for the name asked (see the module docstring)."""

    _name_offs: bytes | None = None

    def _own_name_offs(self) -> bytes:
        """``name_off`` of every own record, as host-order u32s (built once: ~5 ms for vmlinux)."""
        if self._name_offs is None:
            offsets = self._offsets
            if len(offsets) > 1:
                first_words = itemgetter(*offsets)(self._words)
            else:
                first_words = tuple(self._words[o] for o in offsets)
            self._name_offs = array("I", first_words).tobytes()
        return self._name_offs

    def _own_ids_named(self, raw: bytes, kind: int) -> list[int]:
        """Own ids of *kind* whose name is *raw*, in id order (remembered: checks ask twice)."""
        memo = self.__dict__.setdefault("_named", {})
        found = memo.get((raw, kind))
        if found is None:
            found = memo[(raw, kind)] = self._scan(raw, kind)
        return list(found)

    def _scan(self, raw: bytes, kind: int) -> list[int]:
        offsets = self.__dict__.setdefault("_string_offsets", {}).get(raw)
        if offsets is None:
            offsets = self._string_offsets[raw] = string_offsets(self, raw)
        if not offsets:
            return []
        if len(offsets) > _MANY:  # "" or a short common name: the index is cheaper
            return list(map(self._id_at, self._index(kind).all(raw)))
        data = self._own_name_offs()
        words = self._words
        records = self._offsets
        found: list[int] = []
        for off in offsets:
            for idx in word_positions(data, off):
                if (words[records[idx] + 1] >> 24) & 0x1F == kind:
                    found.append(self.start_id + idx)
        return sorted(set(found))

    def names_any(self, names: "tuple[bytes, ...]") -> bool:
        """True when one of this blob's own records (any kind) is named one of *names*."""
        data = self._own_name_offs()
        return any(next(word_positions(data, off), None) is not None
                   for raw in names for off in string_offsets(self, raw))

    def core_type_names(self) -> "ScanTypeNames":
        """The CO-RE candidate search's look-up (:class:`~sigbpf.btf.core_candidates.
        CandidateFinder`), answered by scanning."""
        return ScanTypeNames(self)

    def find_all_by_name_kind(self, name: str, kind: Kind | int) -> list[int]:
        found = self.base.find_all_by_name_kind(name, kind) if self.base is not None else []
        return found + self._own_ids_named(encode_name(name), int(kind))

    def find_by_name_kind(self, name: str, kind: Kind | int) -> int:
        if self.base is not None:
            try:
                return self.base.find_by_name_kind(name, kind)
            except NotFoundError:
                pass
        ids = self._own_ids_named(encode_name(name), int(kind))
        if not ids:
            label = Kind(kind).name if 0 <= int(kind) <= K.KIND_MAX else str(int(kind))
            raise NotFoundError(f"{label} {name!r} not found in BTF", file=self.file, errno=_errno.ENOENT)
        return ids[0]


class ScanTypeNames:
    """:class:`~sigbpf.btf.core_candidates.TypeNames`' two questions, about *btf*'s own types,
    answered by scanning for the names asked (same answers, a test compares them)."""

    def __init__(self, btf: ScanBTF) -> None:
        self.btf = btf

    def named(self, name: str | bytes, kinds) -> list[int]:
        """Own ids of the types of *kinds* called exactly *name* (kind by kind, id order)."""
        raw = encode_name(name)
        return [i for kind in kinds for i in self.btf._own_ids_named(raw, int(kind))]

    def flavored(self, essential: str, kinds) -> list[int]:
        """Own ids of the types of *kinds* named *essential* plus a flavor (``x___y``)."""
        from sigbpf.btf.core_types import essential_name
        from sigbpf.btf.strings import decode_name

        needle = encode_name(essential) + b"___"
        raws: set[bytes] = set()
        table = self.btf.strings
        while table is not None:
            data = table.data
            i = data.find(needle)
            while i >= 0:
                raw = bytes(data[i:data.index(b"\0", i)])
                if essential_name(decode_name(raw)) == essential:
                    raws.add(raw)
                i = data.find(needle, i + 1)
            table = table.base
        return [i for raw in sorted(raws) for i in self.named(raw, kinds)]
