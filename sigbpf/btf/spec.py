"""Parsed BTF: the :class:`BTF` class (raw BTF, split BTF, ``.BTF`` of an ELF).

Parsing is lazy, like cilium/ebpf's:

1. ``BTF.parse`` checks the header and the section layout (the kernel's
   ``btf_parse_hdr``/``btf_check_sec_info``), the string section
   (``btf_parse_str_sec``) and the *framing* of the type section: a chain of
   C-level iterators over the 32-bit words (a view of the input, no copy;
   the kernel's vmlinux file is mapped, not read) lists the word offset of
   every record (:func:`sigbpf.btf.reader.frame`).  Truncated records,
   unknown kinds and reserved info bits are found here.  Nothing else is
   kept per record: kinds, infos and names are read from the words when
   asked for.
2. Types are decoded into :mod:`sigbpf.btf.types` dataclasses only when asked
   for (``btf[id]``), and cached; ``kind_of``/``name_of`` never decode.
3. Name look-ups build, per kind and on first use, a
   :class:`~sigbpf.btf.nameindex.NameIndex` of that kind's names, entirely
   with C-level builtins (``map``, ``compress``, ``bytes.find``): a binary
   search when the names are already in order (the FUNCs of vmlinux), else
   a dict; measured by ``bench/btf_lookup.py``.
4. Full validation (every record's own rules, references, member layout,
   loops: :mod:`sigbpf.btf.validate`) runs in ``BTF.parse(..., validate=True)``,
   the default, or by calling :meth:`BTF.validate` (~0.4 s for vmlinux).
   ``BTF.load_vmlinux()`` skips it by default: the running kernel already
   verified its own BTF, and this is the hot path of every command that
   resolves kfuncs.

Either byte order is accepted (the kernel only takes the host's);
:attr:`BTF.byte_order` says which one was read and :meth:`BTF.encode` writes
the same one back.
"""

from __future__ import annotations

import errno as _errno
import sys
from array import array
from bisect import bisect_left
from itertools import compress, repeat
from operator import getitem, sub
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from sigbpf.btf import kinds as K
from sigbpf.btf.kinds import FuncLinkage, IntEncoding, Kind, VarLinkage
from sigbpf.btf.nameindex import NameIndex, StringsAt
from sigbpf.btf.strings import StringTable, encode_name
from sigbpf.errors import BTFError, NotFoundError

if TYPE_CHECKING:
    from sigbpf.btf import types as T

VMLINUX_PATH = "/sys/kernel/btf/vmlinux"

_TYPES = None


def _types():
    """sigbpf.btf.types, imported on first decode (creating its dataclasses costs ~10 ms)."""
    global _TYPES
    if _TYPES is None:
        from sigbpf.btf import types

        _TYPES = types
    return _TYPES


_FUNC_LINKAGE = tuple(FuncLinkage)
_VAR_LINKAGE = tuple(VarLinkage)
_INT_ENCODINGS = tuple(IntEncoding(i) for i in range(16))
# The byte of an info word that holds kind_flag (bit 7) and the kind (bits 0-4), and
# the table that keeps only the kind of it (BTF_INFO_KIND).
_KIND_BYTE = 3 if sys.byteorder == "little" else 0
_KIND_BITS = bytes(b & 0x1F for b in range(256))


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


class BTF:
    """A parsed BTF blob (optionally split on top of a *base*).

    Type ids run from 1 to :attr:`type_count`; ids below :attr:`start_id`
    belong to the base.  Id 0 is ``void``.
    """

    def __init__(self, *, words: "array | memoryview", offsets: list[int], strings: StringTable,
                 base: "BTF | None", byte_order: str, header: bytes, type_off: int, str_off: int,
                 file: str | None) -> None:
        # Use BTF.parse(); this constructor trusts its arguments.
        self._words = words  # own type section as host-order u32 words
        self._offsets = offsets  # word offset of each own record (framing already checked)
        self._infos_cache: "array | None" = None
        self.strings = strings
        self.base = base
        self.byte_order = byte_order  # "little" or "big"
        self._header = header  # the header bytes exactly as read (hdr_len bytes)
        self._type_off = type_off
        self._str_off = str_off
        self.file = file
        self.start_id = (base.type_count + 1) if base is not None else 1
        self._cache: dict[int, "T.Type"] = {}
        self._str_cache: dict[int, str] = {}
        self._name_index: dict[int, NameIndex] = {}
        self._kinds: bytes | None = None

    # -- construction -----------------------------------------------------
    @classmethod
    def parse(cls, data: bytes, base: "BTF | None" = None, *, file: str | None = None,
              validate: bool = True) -> "BTF":
        """Parse raw BTF bytes (split BTF when *base* is given).

        Raises :class:`BTFError` for malformed input, naming the byte offset
        and type id.  ``validate=False`` skips the full per-type checks (see
        the module docstring); framing and header checks always run.
        """
        from sigbpf.btf import reader

        btf = reader.parse(cls, data, base, file=file)
        if validate:
            btf.validate()
        return btf

    @classmethod
    def from_file(cls, path: str | Path, base: "BTF | None" = None, *, validate: bool = True) -> "BTF":
        """Read raw BTF from *path*, or the ``.BTF`` section if *path* is an ELF file."""
        from sigbpf.btf import reader

        name = str(path)
        data = reader.load_file(path)
        if data[:4] == b"\x7fELF":
            data = reader.elf_btf_section(bytes(data), name)
        return cls.parse(data, base, file=name, validate=validate)

    @classmethod
    def load_vmlinux(cls, path: str | Path = VMLINUX_PATH, *, validate: bool = False) -> "BTF":
        """The running kernel's BTF (``/sys/kernel/btf/vmlinux``); not re-validated by default."""
        return cls.from_file(path, validate=validate)

    # -- sizes and ids ----------------------------------------------------
    @property
    def _infos(self) -> "array":
        """The info word of each own record (read from the words on first use)."""
        if self._infos_cache is None:
            self._infos_cache = array("I", map(getitem, repeat(self._words[1:]), self._offsets))
        return self._infos_cache

    @property
    def type_count(self) -> int:
        """Highest type id (base types included) = libbpf's ``btf__type_cnt() - 1``."""
        return self.start_id - 1 + len(self._offsets)

    def __len__(self) -> int:
        return self.type_count

    @property
    def own_count(self) -> int:
        """Number of types in this blob (not the base)."""
        return len(self._offsets)

    def __contains__(self, type_id: object) -> bool:
        return isinstance(type_id, int) and 0 <= type_id <= self.type_count

    def _own_index(self, type_id: int) -> int:
        idx = type_id - self.start_id
        if idx < 0 or idx >= len(self._offsets):
            raise NotFoundError(f"no type with id {type_id} (ids are 1..{self.type_count})",
                                file=self.file, type_id=type_id, errno=_errno.ENOENT)
        return idx

    def record_offset(self, type_id: int) -> int:
        """Byte offset of the record of *type_id* in this blob (own types only)."""
        idx = self._own_index(type_id)
        return len(self._header) + self._type_off + 4 * self._offsets[idx]

    # -- raw record access (no decoding) ------------------------------------
    def kind_of(self, type_id: int) -> Kind:
        """The kind of *type_id* without decoding the record."""
        if type_id == 0:
            return Kind.UNKN
        if type_id < self.start_id and self.base is not None:
            return self.base.kind_of(type_id)
        return Kind((self._words[self._offsets[self._own_index(type_id)] + 1] >> 24) & 0x1F)

    def name_of(self, type_id: int) -> str:
        """The name of *type_id* ("" if anonymous) without decoding the record."""
        if type_id == 0:
            return ""
        if type_id < self.start_id and self.base is not None:
            return self.base.name_of(type_id)
        idx = self._own_index(type_id)
        try:
            return self.strings.at(self._words[self._offsets[idx]])
        except BTFError as err:
            raise err.at(type_id=type_id, offset=self.record_offset(type_id), file=self.file) from None

    def string_at(self, offset: int) -> str:
        """The string at *offset* of the string section (base strings included)."""
        return self.strings.at(offset)

    def _string(self, offset: int, type_id: int, word: int) -> str:
        try:
            return self.strings.at(offset)
        except BTFError as err:
            raise err.at(type_id=type_id, offset=self._byte_offset(word), file=self.file) from None

    def _byte_offset(self, word: int) -> int:
        return len(self._header) + self._type_off + 4 * word

    # -- decoded types ----------------------------------------------------
    def type_by_id(self, type_id: int) -> "T.Type":
        """The decoded type with id *type_id* (0 is :data:`~sigbpf.btf.types.VOID`)."""
        if type_id == 0:
            return _types().VOID
        if type_id < self.start_id and self.base is not None and type_id > 0:
            return self.base.type_by_id(type_id)
        t = self._cache.get(type_id)
        if t is None:
            t = self._decode(type_id, self._offsets[self._own_index(type_id)])
            self._cache[type_id] = t
        return t

    __getitem__ = type_by_id

    def types(self) -> Iterator[tuple[int, "T.Type"]]:
        """(id, type) of this blob's own types, in id order."""
        for type_id in range(self.start_id, self.type_count + 1):
            yield type_id, self.type_by_id(type_id)

    def __iter__(self) -> Iterator[tuple[int, "T.Type"]]:
        return self.types()

    def _decode(self, type_id: int, o: int) -> "T.Type":
        """Decode the record at word *o* (hot path of full walks: plain ints, a name cache)."""
        T = _types()
        w = self._words
        name_off, info, size_type = w[o], w[o + 1], w[o + 2]
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = info >= 0x80000000
        cache = self._str_cache
        s = cache.get

        def name(off: int) -> str:
            text = s(off)
            if text is None:
                try:
                    text = cache[off] = self.strings.at(off)
                except BTFError as err:
                    raise err.at(type_id=type_id, offset=self._byte_offset(o), file=self.file) from None
            return text

        if kind == 12:  # FUNC
            return T.Func(name(name_off), size_type, _FUNC_LINKAGE[vlen] if vlen <= 2 else vlen)
        if kind == 13:  # FUNC_PROTO
            params = []
            append = params.append
            Param = T.Param
            for p in range(o + 3, o + 3 + 2 * vlen, 2):
                append(Param(name(w[p]), w[p + 1]))
            return T.FuncProto(size_type, tuple(params))
        if kind == 2:
            return T.Ptr(size_type)
        if kind == 4 or kind == 5:  # STRUCT, UNION
            members = []
            append = members.append
            Member = T.Member
            if kflag:
                for p in range(o + 3, o + 3 + 3 * vlen, 3):
                    moff = w[p + 2]
                    append(Member(name(w[p]), w[p + 1], moff & 0xFFFFFF, moff >> 24))
            else:
                for p in range(o + 3, o + 3 + 3 * vlen, 3):
                    append(Member(name(w[p]), w[p + 1], w[p + 2]))
            cls = T.Struct if kind == 4 else T.Union
            return cls(name(name_off), size_type, tuple(members), kflag)
        if kind == 10:
            return T.Const(size_type)
        if kind == 8:
            return T.Typedef(name(name_off), size_type)
        if kind == 1:
            data = w[o + 3]
            return T.Int(name(name_off), size_type, _INT_ENCODINGS[(data >> 24) & 0x0F], (data >> 16) & 0xFF,
                         data & 0xFF)
        if kind == 3:
            return T.Array(w[o + 3], w[o + 4], w[o + 5])
        if kind == 6:  # ENUM
            EnumValue = T.EnumValue
            values = tuple(EnumValue(name(w[p]), _s32(w[p + 1]) if kflag else w[p + 1])
                           for p in range(o + 3, o + 3 + 2 * vlen, 2))
            return T.Enum(name(name_off), size_type, values, kflag)
        if kind == 19:  # ENUM64
            values_ = []
            for p in range(o + 3, o + 3 + 3 * vlen, 3):
                v = w[p + 1] | (w[p + 2] << 32)
                if kflag and v & (1 << 63):
                    v -= 1 << 64
                values_.append(T.EnumValue(name(w[p]), v))
            return T.Enum64(name(name_off), size_type, tuple(values_), kflag)
        if kind == 7:
            return T.Fwd(name(name_off), kflag)
        if kind == 9:
            return T.Volatile(size_type)
        if kind == 11:
            return T.Restrict(size_type)
        if kind == 18:
            return T.TypeTag(name(name_off), size_type, kflag)
        if kind == 14:  # VAR
            lk = w[o + 3]
            return T.Var(name(name_off), size_type, _VAR_LINKAGE[lk] if lk <= 2 else lk)
        if kind == 15:  # DATASEC
            VarSecinfo = T.VarSecinfo
            vars_ = tuple(VarSecinfo(w[p], w[p + 1], w[p + 2]) for p in range(o + 3, o + 3 + 3 * vlen, 3))
            return T.Datasec(name(name_off), size_type, vars_)
        if kind == 16:
            return T.Float(name(name_off), size_type)
        if kind == 17:
            return T.DeclTag(name(name_off), size_type, _s32(w[o + 3]), kflag)
        raise BTFError(f"Invalid kind:{kind}", file=self.file, type_id=type_id, offset=self._byte_offset(o))

    # -- look-ups by name -------------------------------------------------
    def kinds(self) -> bytes:
        """``kinds()[i]`` = kind number of own type ``start_id + i`` (a compact array)."""
        if self._kinds is None:
            # The byte of each info word that holds the kind, read through a strided view:
            # no int is made for a whole info word.
            kind_bytes = memoryview(self._words).cast("B")[4 + _KIND_BYTE::4]
            self._kinds = bytes(map(getitem, repeat(kind_bytes), self._offsets)).translate(_KIND_BITS)
        return self._kinds

    def _kind_mask(self, kind: int) -> bytes:
        """mask[i] (0 or 1): own type ``start_id + i`` is of *kind* (BTF_INFO_KIND, kind_flag ignored)."""
        return self.kinds().translate(bytes(int(b == kind) for b in range(256)))

    def _own_ids_of_kind(self, kind: int) -> list[int]:
        """Ids of own types of *kind*, in id order."""
        return list(compress(range(self.start_id, self.type_count + 1), self._kind_mask(kind)))

    def _id_at(self, offset: int) -> int:
        """The id of the own record at word *offset* (offsets grow with ids)."""
        return self.start_id + bisect_left(self._offsets, offset)

    def _names_at(self, name_offs: list[int]) -> list[bytes | None]:
        """Raw names for a list of name offsets, C-level for the common case (None: invalid offset)."""
        strings = self.strings
        data = strings.data
        start = strings.start
        rel = list(map(sub, name_offs, repeat(start))) if start else name_offs
        ends = list(map(data.find, repeat(b"\0"), rel))
        names: list[bytes | None] = list(map(data.__getitem__, map(slice, rel, ends)))
        if -1 in ends or (start and min(rel, default=0) < 0):
            for i, (r, e) in enumerate(zip(rel, ends)):
                if r < 0 or e < 0:
                    try:
                        names[i] = strings.raw_at(name_offs[i])
                    except BTFError:
                        names[i] = None  # never equal to a real name; validate() reports it
        return names

    def _index(self, kind: int) -> NameIndex:
        """The names of own types of *kind* -> record offsets, built on first use, in C-level builtins."""
        index = self._name_index.get(kind)
        if index is None:
            positions = list(compress(self._offsets, self._kind_mask(kind)))  # the same ints, no copies
            # name_off, the first word of each record (a list: read twice per name, as the same ints)
            offs = list(map(getitem, repeat(self._words), positions))
            data = self.strings.data
            names: "Sequence[bytes | None]"
            if offs and (self.strings.start or max(offs) >= len(data)):
                names = self._names_at(offs)  # split BTF or bad offsets: the slow path
            else:
                names = StringsAt(data, offs)  # the string section ends with NUL (checked at parse)
            index = self._name_index[kind] = NameIndex(names, positions)
        return index

    def find_by_name_kind(self, name: str, kind: Kind | int) -> int:
        """Id of the first type (lowest id, base first) named *name* of *kind*.

        Exactly the kernel's ``btf_find_by_name_kind()``: a linear search by id
        over base then own types, names compared whole.  Raises
        :class:`NotFoundError` with ``errno = ENOENT`` (the kernel's
        ``-ENOENT``) when there is none.
        """
        if self.base is not None:
            try:
                return self.base.find_by_name_kind(name, kind)
            except NotFoundError:
                pass
        found = self._index(int(kind)).first(encode_name(name))
        if found is None:
            label = Kind(kind).name if 0 <= int(kind) <= K.KIND_MAX else str(int(kind))
            raise NotFoundError(f"{label} {name!r} not found in BTF", file=self.file, errno=_errno.ENOENT)
        return self._id_at(found)

    def find_all_by_name_kind(self, name: str, kind: Kind | int) -> list[int]:
        """Ids of every type named *name* of *kind*, base first, in id order."""
        found = self.base.find_all_by_name_kind(name, kind) if self.base is not None else []
        return found + list(map(self._id_at, self._index(int(kind)).all(encode_name(name))))

    def ids_of_kind(self, kind: Kind | int) -> list[int]:
        """Ids of all types of *kind* (base first), in id order."""
        found = self.base.ids_of_kind(kind) if self.base is not None else []
        return found + self._own_ids_of_kind(int(kind))

    # -- type helpers -----------------------------------------------------
    def resolve_modifiers(self, type_id: int, *, typedefs: bool = True) -> int:
        """Follow CONST/VOLATILE/RESTRICT/TYPE_TAG (and TYPEDEF unless ``typedefs=False``).

        libbpf's ``skip_mods_and_typedefs``.  A loop is reported as the
        kernel does ("Loop detected").
        """
        skip = {Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG}
        if typedefs:
            skip.add(Kind.TYPEDEF)
        seen = 0
        start = type_id
        while self.kind_of(type_id) in skip:
            nxt = self.type_by_id(type_id).type  # type: ignore[union-attr]
            if nxt > self.type_count:
                raise BTFError(f"Invalid type_id: {nxt} (ids are 0..{self.type_count})", file=self.file,
                               type_id=type_id)
            type_id = nxt
            seen += 1
            if seen > self.type_count:
                raise BTFError("Loop detected", file=self.file, type_id=start)
        return type_id

    def resolved_size(self, type_id: int) -> int:
        """Size in bytes of *type_id*: libbpf's ``btf__resolve_size``.

        One implementation serves every caller: :func:`sigbpf.btf.layout.resolve_size`
        (pointer size guessed from ``long``, arrays multiplied, at most 32 steps,
        sizes above ``UINT32_MAX`` refused); where libbpf fails this raises
        :class:`BTFError` naming the type.
        """
        from sigbpf.btf.layout import resolve_size

        if not 0 <= type_id <= self.type_count:
            raise BTFError(f"Invalid type_id: {type_id} (ids are 0..{self.type_count})", file=self.file)
        size = resolve_size(self, type_id)
        if size is None:
            kind = self.kind_of(type_id).name if type_id else "void"
            raise BTFError(f"cannot resolve the size of {kind} (void, function, loop or over 4 GiB)",
                           file=self.file, type_id=type_id)
        return size

    # -- checks and encoding ------------------------------------------------
    def validate(self) -> None:
        """Run every check the kernel's btf_parse does; raise :class:`BTFError` on the first problem."""
        from sigbpf.btf import validate as _validate

        _validate.validate(self)

    def encode(self) -> bytes:
        """Serialize again, in :attr:`byte_order`; the same bytes as parsed for any deduplicated BTF."""
        from sigbpf.btf import marshal

        return marshal.encode_btf(self)

    def __repr__(self) -> str:
        where = f" {self.file}" if self.file else ""
        split = f" split@{self.start_id}" if self.base is not None else ""
        return f"<BTF{where}: {self.own_count} types{split}, {self.byte_order}-endian>"
