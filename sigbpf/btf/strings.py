"""The BTF string section: NUL-terminated names addressed by byte offset.

A split BTF (module BTF on top of vmlinux) continues the offsets of its base:
offsets below ``start`` belong to the base table, the rest to this one
(the kernel's ``btf->start_str_off``).  Offsets may point into the middle of a
string; the string then runs to the next NUL, as in C.

Look-ups by offset are cheap (``bytes.find``).  The reverse index (name ->
first offset, and offset -> name for every string start) is built lazily, all
in C-level builtins, the first time somebody asks for it.
"""

from __future__ import annotations

from itertools import accumulate, repeat
from operator import add

from sigbpf.errors import BTFError

_ENCODING = "utf-8"
_ERRORS = "surrogateescape"  # any bytes survive decode -> encode


def decode_name(raw: bytes) -> str:
    """Bytes of a BTF name -> str (lossless for any bytes)."""
    return raw.decode(_ENCODING, _ERRORS)


def encode_name(name: str | bytes) -> bytes:
    """str name -> the bytes stored in a string section (inverse of decode_name)."""
    return name if isinstance(name, bytes) else name.encode(_ENCODING, _ERRORS)


class StringTable:
    """One BTF string section, optionally continuing a base table."""

    __slots__ = ("data", "base", "start", "file", "_starts", "_first")

    def __init__(self, data: bytes, base: "StringTable | None" = None, *, file: str | None = None) -> None:
        self.data = bytes(data)
        self.base = base
        self.start = base.size if base is not None else 0
        self.file = file
        self._starts: dict[int, bytes] | None = None
        self._first: dict[bytes, int] | None = None

    @property
    def size(self) -> int:
        """One past the highest valid offset (base strings included)."""
        return self.start + len(self.data)

    def is_valid(self, offset: int) -> bool:
        """The kernel's btf_name_offset_valid(): the offset is inside some table."""
        return 0 <= offset < self.size

    def raw_at(self, offset: int) -> bytes:
        """The bytes of the string at *offset* (up to the next NUL)."""
        if offset < self.start:
            if offset < 0 or self.base is None:
                raise BTFError(f"string offset {offset} out of range", file=self.file)
            return self.base.raw_at(offset)
        i = offset - self.start
        data = self.data
        if i >= len(data):
            raise BTFError(f"string offset {offset} out of range (string section ends at {self.size})",
                           file=self.file)
        end = data.find(b"\0", i)
        return data[i:] if end < 0 else data[i:end]

    def at(self, offset: int) -> str:
        """The string at *offset*, decoded."""
        return decode_name(self.raw_at(offset))

    # -- reverse look-ups -------------------------------------------------
    def starts(self) -> dict[int, bytes]:
        """Own strings by start offset: {offset: bytes} for each string after a NUL (or first)."""
        if self._starts is None:
            parts = self.data.split(b"\0")
            if parts and parts[-1] == b"":
                parts.pop()
            offsets = accumulate(map(add, map(len, parts), repeat(1)), initial=self.start)
            self._starts = dict(zip(offsets, parts))
        return self._starts

    def own_offset_of(self, name: str | bytes) -> int | None:
        """First offset in *this* table (not the base) where the whole string *name* starts."""
        if self._first is None:
            starts = self.starts()
            # reversed, so that the first occurrence of a duplicate wins
            self._first = dict(zip(reversed(starts.values()), reversed(starts.keys())))
        return self._first.get(encode_name(name))

    def suffix_offset_of(self, name: str | bytes) -> int | None:
        """First offset where *name* is the tail of some string (base first); None if nowhere."""
        if self.base is not None:
            off = self.base.suffix_offset_of(name)
            if off is not None:
                return off
        i = self.data.find(encode_name(name) + b"\0")
        return None if i < 0 else self.start + i

    def offset_of(self, name: str | bytes) -> int | None:
        """First offset of *name* as a whole string, looking in the base first (as libbpf does)."""
        if self.base is not None:
            off = self.base.offset_of(name)
            if off is not None:
                return off
        return self.own_offset_of(name)
