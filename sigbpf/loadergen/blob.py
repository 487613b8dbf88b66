"""The loader's data blob: named chunks, each 8-aligned, offsets returned by name.

The blob is the single value of the loader's ARRAY map.  It holds the
``bpf_attr`` of every command the loader issues, the program BTF, the
programs' instructions and func/line info, map initial values, the names to
look up, and the ``fd_array``.  Pointers inside it cannot be known in advance
(the kernel chooses where the map value lives); the loader stores them at run
time from ``ld_imm64 src_reg 6`` addresses (:mod:`.emit`).  Chunks are laid
out in the order they are added, each zero-padded to a multiple of 8, as
libbpf's ``add_data()`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sigbpf.errors import ArtifactError


@dataclass(frozen=True, slots=True)
class BlobEntry:
    """One chunk: its name, offset and size (without padding)."""

    name: str
    offset: int
    size: int


@dataclass
class Blob:
    """A blob under construction."""

    _data: bytearray = field(default_factory=bytearray)
    _entries: dict[str, BlobEntry] = field(default_factory=dict)

    def add(self, name: str, data: bytes = b"", size: int | None = None) -> int:
        """Append *data* (zero-extended to *size*) as chunk *name*; its offset."""
        if name in self._entries:
            raise ArtifactError(f"loader blob: chunk {name!r} added twice")
        size = len(data) if size is None else size
        if size < len(data):
            raise ArtifactError(f"loader blob: chunk {name!r}: {len(data)} bytes do not fit {size}")
        offset = len(self._data)
        self._data += data + bytes(-(-size // 8) * 8 - len(data))
        self._entries[name] = BlobEntry(name, offset, size)
        return offset

    def offset(self, name: str) -> int:
        return self._entries[name].offset

    def entry(self, name: str) -> BlobEntry:
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    @property
    def size(self) -> int:
        return len(self._data)

    def offsets(self) -> dict[str, int]:
        return {name: e.offset for name, e in self._entries.items()}

    def entries(self) -> tuple[BlobEntry, ...]:
        return tuple(self._entries.values())

    def bytes(self) -> bytes:
        # An empty ARRAY value is refused by the kernel: at least 8 bytes.
        return bytes(self._data) if self._data else bytes(8)


__all__ = ["Blob", "BlobEntry"]
