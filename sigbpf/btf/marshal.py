"""Writing BTF: the :class:`BTFBuilder` and the encoder of parsed BTF.

:func:`type_words` turns one type dataclass into its 32-bit record words; it is
the only place that knows the on-disk layout of each kind, and both the
builder and :meth:`sigbpf.btf.BTF.encode` use it.  Names become string
offsets through a callable, so the builder can add (deduplicated) strings
while the re-encoder of parsed BTF looks up the original offsets.
"""

from __future__ import annotations

import struct
import sys
from array import array
from typing import TYPE_CHECKING, Callable, Iterable

from sigbpf.btf import kinds as K
from sigbpf.btf import types as T
from sigbpf.btf.kinds import Kind
from sigbpf.btf.strings import encode_name
from sigbpf.errors import BTFError

if TYPE_CHECKING:
    from sigbpf.btf.spec import BTF

NameOffset = Callable[[str], int]

_U32 = 0xFFFFFFFF


def _info(kind: Kind, vlen: int = 0, kind_flag: bool = False) -> int:
    if not 0 <= vlen <= K.MAX_VLEN:
        raise BTFError(f"vlen {vlen} out of range for {kind.name} (max {K.MAX_VLEN})")
    return (int(bool(kind_flag)) << 31) | (int(kind) << 24) | vlen


def _u32(value: int, what: str) -> int:
    if not 0 <= value <= _U32:
        raise BTFError(f"{what} {value} does not fit in 32 bits")
    return value


def type_words(t: T.Type, name_off: NameOffset) -> list[int]:
    """The record of *t* as host-independent u32 values (layout of ``struct btf_type`` + extras)."""
    kind = t.kind
    if isinstance(t, T.Int):
        data = ((int(t.encoding) & 0x0F) << 24) | ((t.offset & 0xFF) << 16) | (t.bits & 0xFF)
        return [name_off(t.name), _info(kind), _u32(t.size, "size"), data]
    if isinstance(t, (T.Ptr, T.Volatile, T.Const, T.Restrict)):
        return [0, _info(kind), _u32(t.type, "type id")]
    if isinstance(t, T.Array):
        return [0, _info(kind), 0, _u32(t.type, "type id"), _u32(t.index_type, "type id"),
                _u32(t.nelems, "nelems")]
    if isinstance(t, (T.Struct, T.Union)):
        out = [name_off(t.name), _info(kind, len(t.members), t.kind_flag), _u32(t.size, "size")]
        for m in t.members:
            if t.kind_flag:
                if not 0 <= m.offset < (1 << 24) or not 0 <= m.bitfield_size < 256:
                    raise BTFError(f"member {m.name!r}: offset/bitfield size do not fit kind_flag encoding")
                off = (m.bitfield_size << 24) | m.offset
            else:
                if m.bitfield_size:
                    raise BTFError(f"member {m.name!r}: bitfield_size needs kind_flag on {t.name!r}")
                off = _u32(m.offset, "member offset")
            out += (name_off(m.name), _u32(m.type, "type id"), off)
        return out
    if isinstance(t, T.Enum):
        out = [name_off(t.name), _info(kind, len(t.values), t.signed), _u32(t.size, "size")]
        for v in t.values:
            if not -(1 << 31) <= v.value <= _U32:
                raise BTFError(f"enumerator {v.name!r} = {v.value} does not fit in 32 bits (use Enum64)")
            out += (name_off(v.name), v.value & _U32)
        return out
    if isinstance(t, T.Enum64):
        out = [name_off(t.name), _info(kind, len(t.values), t.signed), _u32(t.size, "size")]
        for v in t.values:
            if not -(1 << 63) <= v.value < (1 << 64):
                raise BTFError(f"enumerator {v.name!r} = {v.value} does not fit in 64 bits")
            val = v.value & ((1 << 64) - 1)
            out += (name_off(v.name), val & _U32, val >> 32)
        return out
    if isinstance(t, T.Fwd):
        return [name_off(t.name), _info(kind, 0, t.union), 0]
    if isinstance(t, T.Typedef):
        return [name_off(t.name), _info(kind), _u32(t.type, "type id")]
    if isinstance(t, T.TypeTag):
        return [name_off(t.name), _info(kind, 0, t.kind_flag), _u32(t.type, "type id")]
    if isinstance(t, T.Func):
        return [name_off(t.name), _info(kind, int(t.linkage)), _u32(t.type, "type id")]
    if isinstance(t, T.FuncProto):
        out = [0, _info(kind, len(t.params)), _u32(t.return_type, "type id")]
        for p in t.params:
            out += (name_off(p.name), _u32(p.type, "type id"))
        return out
    if isinstance(t, T.Var):
        return [name_off(t.name), _info(kind), _u32(t.type, "type id"), _u32(int(t.linkage), "linkage")]
    if isinstance(t, T.Datasec):
        out = [name_off(t.name), _info(kind, len(t.vars)), _u32(t.size, "size")]
        for v in t.vars:
            out += (_u32(v.type, "type id"), _u32(v.offset, "offset"), _u32(v.size, "size"))
        return out
    if isinstance(t, T.Float):
        return [name_off(t.name), _info(kind), _u32(t.size, "size")]
    if isinstance(t, T.DeclTag):
        if not -(1 << 31) <= t.component_idx < (1 << 31):
            raise BTFError(f"component_idx {t.component_idx} does not fit in 32 bits")
        return [name_off(t.name), _info(kind, 0, t.kind_flag), _u32(t.type, "type id"), t.component_idx & _U32]
    raise BTFError(f"cannot encode {type(t).__name__} (void is id 0, not a record)")


def _pack(header_fields: tuple[int, ...], hdr_extra: bytes, words: array, strings: bytes, order: str) -> bytes:
    if order != sys.byteorder:
        words = array("I", words)
        words.byteswap()
    e = "<" if order == "little" else ">"
    header = struct.pack(e + "HBBIIIII", *header_fields) + hdr_extra
    return header + words.tobytes() + strings


def assemble(words: array, strings: bytes, order: str = "little") -> bytes:
    """Raw BTF from type words and a string section: standard 24-byte header, types then strings."""
    if order not in ("little", "big"):
        raise BTFError(f"byte order must be 'little' or 'big', not {order!r}")
    type_len = 4 * len(words)
    fields = (K.BTF_MAGIC, K.BTF_VERSION, 0, K.HEADER_SIZE, 0, type_len, type_len, len(strings))
    return _pack(fields, b"", words, strings, order)


class BTFBuilder:
    """Build raw BTF type by type.

    >>> b = BTFBuilder()
    >>> i = b.add(Int("int", 4, IntEncoding.SIGNED, 0, 32))
    >>> b.add(Ptr(i))
    2

    With a *base*, the result is split BTF: ids continue after the base's,
    and names already in the base's strings are referred to there (as libbpf's
    ``btf__add_str`` does).  Strings are deduplicated; ``encode()`` writes
    little-endian unless *byte_order* says otherwise.
    """

    def __init__(self, base: "BTF | None" = None, *, byte_order: str = "little") -> None:
        if byte_order not in ("little", "big"):
            raise BTFError(f"byte order must be 'little' or 'big', not {byte_order!r}")
        self.base = base
        self.byte_order = byte_order
        self.start_id = (base.type_count + 1) if base is not None else 1
        self._str_start = base.strings.size if base is not None else 0
        self._strings = bytearray() if base is not None else bytearray(b"\0")
        self._string_offsets: dict[bytes, int] = {} if base is not None else {b"": 0}
        self._words = array("I")
        self._types: list[T.Type] = []

    # -- strings ------------------------------------------------------------
    def add_string(self, name: str | bytes) -> int:
        """Offset of *name* in the string section, adding it if new."""
        raw = encode_name(name)
        if b"\0" in raw:
            raise BTFError(f"name {raw!r} contains a NUL byte")
        off = self._string_offsets.get(raw)
        if off is None:
            if self.base is not None:
                off = self.base.strings.offset_of(raw)
            if off is None:
                off = self._str_start + len(self._strings)
                if off > K.MAX_NAME_OFFSET:
                    raise BTFError(f"string section too big: offset {off} > {K.MAX_NAME_OFFSET}")
                self._strings += raw + b"\0"
            self._string_offsets[raw] = off
        return off

    # -- types --------------------------------------------------------------
    def add(self, t: T.Type) -> int:
        """Append *t*; returns its type id."""
        type_id = self.start_id + len(self._types)
        if type_id > K.MAX_TYPE:
            raise BTFError(f"too many types (max id {K.MAX_TYPE})", type_id=type_id)
        mark = len(self._strings)
        try:
            words = type_words(t, self.add_string)
        except BTFError as err:
            # leave no trace: drop the strings this type added
            del self._strings[mark:]
            end = self._str_start + mark
            self._string_offsets = {k: v for k, v in self._string_offsets.items() if v < end}
            raise err.at(type_id=type_id) from None
        self._words.extend(words)
        self._types.append(t)
        return type_id

    def add_all(self, types: Iterable[T.Type]) -> list[int]:
        """Append several types; returns their ids."""
        return [self.add(t) for t in types]

    @property
    def type_count(self) -> int:
        """Highest id so far (base included)."""
        return self.start_id - 1 + len(self._types)

    def __len__(self) -> int:
        return self.type_count

    def type_by_id(self, type_id: int) -> T.Type:
        """A type added so far (or of the base)."""
        if type_id == 0:
            return T.VOID
        if type_id < self.start_id and self.base is not None:
            return self.base.type_by_id(type_id)
        idx = type_id - self.start_id
        if not 0 <= idx < len(self._types):
            raise BTFError(f"no type with id {type_id}", type_id=type_id)
        return self._types[idx]

    def encode(self) -> bytes:
        """The raw BTF built so far."""
        return assemble(self._words, bytes(self._strings), self.byte_order)

    def build(self, *, validate: bool = True) -> "BTF":
        """Encode and parse back (validating by default)."""
        from sigbpf.btf.spec import BTF

        return BTF.parse(self.encode(), self.base, validate=validate)


def encode_btf(btf: "BTF", byte_order: str | None = None) -> bytes:
    """Re-encode a parsed BTF from its decoded types (header layout and string section kept).

    Names are written at the first offset where that string starts (base
    first for split BTF), which is where every deduplicating producer
    (pahole, clang, libbpf) puts them: for such BTF the result equals the
    bytes that were parsed.
    """
    order = byte_order or btf.byte_order
    strings = btf.strings

    def name_off(name: str) -> int:
        if not name:
            return 0
        off = strings.offset_of(name)
        if off is None:
            off = strings.suffix_offset_of(name)
        if off is None:
            raise BTFError(f"name {name!r} is not in the string section")
        return off

    words = array("I")
    for type_id, t in btf.types():
        try:
            words.extend(type_words(t, name_off))
        except BTFError as err:
            raise err.at(type_id=type_id, file=btf.file) from None
    header = btf._header
    e = "<" if btf.byte_order == "little" else ">"
    fields = struct.unpack_from(e + "HBBIIIII", header, 0)
    fields = fields[:5] + (4 * len(words),) + fields[6:]
    return _pack(fields, header[K.HEADER_SIZE:], words, btf.strings.data, order)
