"""Python values of BTF-typed bytes, and bytes of Python values: what map keys and values mean.

:func:`decode` turns the bytes of a type into a Python value and :func:`encode`
does the reverse, following the type's BTF:

=========================  ==================================================
INT                        ``int`` (signedness, size and bit width from the
                           INT); ``bool`` for BOOL-encoded INTs
ENUM / ENUM64              ``int`` (signedness from the record's kind_flag);
                           :func:`encode` also takes an enumerator's name
FLOAT                      ``float`` (2, 4 and 8 bytes; other sizes: bytes)
PTR                        ``int`` (the address, pointer size of the BTF)
ARRAY                      ``list``; arrays of 1-byte INTs (``char``,
                           ``__u8``, ...) are ``bytes`` (all of them, NULs
                           included: ``decode`` then ``encode`` is exact)
STRUCT / UNION             ``dict`` by member name, bitfields included; the
                           members of an anonymous struct/union member are
                           merged into the parent (C's access rule)
DATASEC                    ``dict`` by variable name (global data: ``.data``,
                           ``.bss``, ``.rodata``)
TYPEDEF, modifiers, VAR    the type they name
=========================  ==================================================

:func:`encode` also accepts ``bytes`` of exactly the type's size for any type
(raw bytes pass through), fills what a ``dict`` or a short ``list`` leaves out
with zeros (or with *base*, the bytes to start from), and checks ranges: a value
that does not fit, a member that does not exist, a value of the wrong Python
type is a one-line :class:`~sigbpf.errors.BTFError` naming the path (``value.hdr.len``),
the problem and the type id.

This is spec code: it never touches ``/sys`` or the kernel.  Byte order is the
BTF's own (:attr:`sigbpf.btf.BTF.byte_order`).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sigbpf.btf.kinds import IntEncoding, Kind
from sigbpf.errors import BTFError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf import BTF

__all__ = ["decode", "encode", "type_size", "type_name", "is_byte_array"]

#: Kinds that only name another type: followed to reach the type that has a layout.
_FOLLOW = frozenset({Kind.TYPEDEF, Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG,
                     Kind.VAR})
_FLOAT_CODES = {2: "e", 4: "f", 8: "d"}
_MAX_DEPTH = 64  # nesting of structs/arrays; deeper is a loop in malformed BTF


def _resolve(btf: "BTF", type_id: int) -> int:
    seen = 0
    while btf.kind_of(type_id) in _FOLLOW:
        type_id = btf[type_id].type
        seen += 1
        if seen > _MAX_DEPTH:
            raise BTFError("type chain too long (a loop?)", type_id=type_id)
    return type_id


def type_size(btf: "BTF", type_id: int) -> int:
    """Size in bytes of *type_id* (BTFError for void, functions and loops)."""
    return btf.resolved_size(type_id)


def type_name(btf: "BTF", type_id: int) -> str:
    """A short C-like name for messages: ``struct event``, ``u32``, ``char[16]``, ``int *``."""
    if type_id == 0:
        return "void"
    t = btf[type_id]
    kind = t.kind
    if kind in (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64):
        word = {Kind.STRUCT: "struct", Kind.UNION: "union"}.get(kind, "enum")
        return f"{word} {t.name}" if t.name else f"{word} (anon)"
    if kind is Kind.ARRAY:
        return f"{type_name(btf, t.type)}[{t.nelems}]"
    if kind is Kind.PTR:
        return f"{type_name(btf, t.type)} *"
    if kind in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT):
        return f"{kind.name.lower()} {type_name(btf, t.type)}"
    if kind is Kind.TYPE_TAG:
        return type_name(btf, t.type)
    if kind is Kind.DATASEC:
        return f"section {t.name}"
    return t.name or kind.name.lower()


def is_byte_array(btf: "BTF", type_id: int) -> bool:
    """True for an ARRAY of 1-byte non-bool INTs (``char[16]``, ``__u8[6]``): its value is bytes."""
    type_id = _resolve(btf, type_id)
    t = btf[type_id]
    if t.kind is not Kind.ARRAY:
        return False
    elem = btf[_resolve(btf, t.type)]
    return elem.kind is Kind.INT and elem.size == 1 and not elem.encoding & IntEncoding.BOOL


def _short(value: Any) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


class _Codec:
    """One decode or encode walk over a BTF: byte order, pointer size, error context."""

    def __init__(self, btf: "BTF") -> None:
        self.btf = btf
        self.order = "big" if getattr(btf, "byte_order", "little") == "big" else "little"
        from sigbpf.btf.layout import pointer_size

        self.ptr_size = pointer_size(btf)
        self._fields: dict[int, dict[str, tuple[int, int, int]]] = {}

    def fail(self, path: str, message: str, type_id: int) -> BTFError:
        return BTFError(f"{path}: {message}", type_id=type_id)

    # -- members ------------------------------------------------------------
    def fields(self, type_id: int, path: str) -> dict[str, tuple[int, int, int]]:
        """name -> (member type id, bit offset, bitfield size or 0) of a struct/union,
        anonymous struct/union members merged in."""
        cached = self._fields.get(type_id)
        if cached is None:
            cached = self._fields[type_id] = self._member_table(type_id, path)
        return cached

    def _member_table(self, type_id: int, path: str) -> dict[str, tuple[int, int, int]]:
        t = self.btf[type_id]
        out: dict[str, tuple[int, int, int]] = {}
        for m in t.members:
            bits = m.bitfield_size if t.kind_flag else 0
            mtype = _resolve(self.btf, m.type)
            mt = self.btf[mtype]
            if not t.kind_flag and mt.kind is Kind.INT and (mt.bits != mt.size * 8 or mt.offset):
                # kind_flag 0: the width (and an extra offset) live in the member's INT.
                bits = mt.bits
                off = m.offset + mt.offset
            else:
                off = m.offset
            if not bits and off % 8:
                raise self.fail(f"{path}.{m.name or '(anon)'}",
                                f"member at bit offset {off} is neither byte aligned nor a "
                                f"bitfield", type_id)
            if not m.name:
                if mt.kind in (Kind.STRUCT, Kind.UNION):
                    for name, (ftype, foff, fbits) in self.fields(mtype, path).items():
                        out.setdefault(name, (ftype, off + foff, fbits))
                continue  # an unnamed bitfield is padding
            out[m.name] = (m.type, off, bits)
        return out

    def bitfield_signed(self, type_id: int) -> bool:
        t = self.btf[_resolve(self.btf, type_id)]
        if t.kind is Kind.INT:
            return t.signed
        if t.kind in (Kind.ENUM, Kind.ENUM64):
            return t.signed
        return False

    def bit_span(self, bit_off: int, bits: int) -> tuple[int, int, int]:
        """(first byte, byte count, shift of the field in that little/big-endian integer)."""
        first = bit_off // 8
        nbytes = (bit_off % 8 + bits + 7) // 8
        if self.order == "little":
            shift = bit_off % 8
        else:
            shift = nbytes * 8 - bit_off % 8 - bits
        return first, nbytes, shift


class _Decoder(_Codec):
    def value(self, type_id: int, data: bytes, off: int, path: str, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise self.fail(path, "types nested too deeply (a loop?)", type_id)
        tid = _resolve(self.btf, type_id)
        t = self.btf[tid]
        kind = t.kind
        if kind is Kind.INT:
            raw = int.from_bytes(data[off: off + t.size], self.order)
            width = t.size * 8
            if t.offset or (t.bits and t.bits != width):
                raw = (raw >> t.offset) & ((1 << t.bits) - 1)
                width = t.bits
            if t.encoding & IntEncoding.BOOL:
                return bool(raw)
            if t.signed and raw >> (width - 1):
                raw -= 1 << width
            return raw
        if kind in (Kind.ENUM, Kind.ENUM64):
            return int.from_bytes(data[off: off + t.size], self.order, signed=t.signed)
        if kind is Kind.FLOAT:
            code = _FLOAT_CODES.get(t.size)
            if code is None:
                return bytes(data[off: off + t.size])
            return struct.unpack_from(("<" if self.order == "little" else ">") + code, data, off)[0]
        if kind is Kind.PTR:
            return int.from_bytes(data[off: off + self.ptr_size], self.order)
        if kind is Kind.ARRAY:
            if is_byte_array(self.btf, tid):
                return bytes(data[off: off + t.nelems])
            esize = type_size(self.btf, t.type)
            return [self.value(t.type, data, off + i * esize, f"{path}[{i}]", depth + 1)
                    for i in range(t.nelems)]
        if kind in (Kind.STRUCT, Kind.UNION):
            out: dict[str, Any] = {}
            for name, (ftype, bit_off, bits) in self.fields(tid, path).items():
                if bits:
                    first, nbytes, shift = self.bit_span(bit_off, bits)
                    raw = int.from_bytes(data[off + first: off + first + nbytes], self.order)
                    raw = (raw >> shift) & ((1 << bits) - 1)
                    if self.bitfield_signed(ftype) and raw >> (bits - 1):
                        raw -= 1 << bits
                    ft = self.btf[_resolve(self.btf, ftype)]
                    if ft.kind is Kind.INT and ft.encoding & IntEncoding.BOOL:
                        raw = bool(raw)
                    out[name] = raw
                else:
                    out[name] = self.value(ftype, data, off + bit_off // 8, f"{path}.{name}",
                                           depth + 1)
            return out
        if kind is Kind.DATASEC:
            out = {}
            for vs in t.vars:
                var = self.btf[vs.type]
                if var.kind is not Kind.VAR:
                    continue  # an extern FUNC placed in the section: no bytes of its own
                out[var.name] = self.value(var.type, data, off + vs.offset, f"{path}.{var.name}",
                                           depth + 1)
            return out
        raise self.fail(path, f"cannot decode a value of kind {kind.name} "
                              f"({type_name(self.btf, type_id)})", type_id)


class _Encoder(_Codec):
    def value(self, type_id: int, value: Any, buf: bytearray, off: int, path: str,
              depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            raise self.fail(path, "types nested too deeply (a loop?)", type_id)
        tid = _resolve(self.btf, type_id)
        t = self.btf[tid]
        kind = t.kind
        byte_array = kind is Kind.ARRAY and is_byte_array(self.btf, tid)
        if isinstance(value, (bytes, bytearray, memoryview)) and not byte_array:
            size = type_size(self.btf, tid)
            raw = bytes(value)
            if len(raw) != size:
                raise self.fail(path, f"{len(raw)} bytes given, {type_name(self.btf, type_id)} is "
                                      f"{size} bytes", type_id)
            buf[off: off + size] = raw
            return
        if kind is Kind.INT:
            width = t.bits if t.bits else t.size * 8
            number = self.integer(value, path, type_id, t.signed, width,
                                  bool(t.encoding & IntEncoding.BOOL))
            if t.offset or width != t.size * 8:
                self.put_bits(buf, off * 8 + t.offset, width, number)
            else:
                buf[off: off + t.size] = (number & ((1 << width) - 1)).to_bytes(t.size, self.order)
            return
        if kind in (Kind.ENUM, Kind.ENUM64):
            if isinstance(value, str):
                found = [v.value for v in t.values if v.name == value]
                if not found:
                    names = ", ".join(v.name for v in t.values[:8])
                    raise self.fail(path, f"{value!r} is not an enumerator of "
                                          f"{type_name(self.btf, tid)} ({names}"
                                          f"{', ...' if len(t.values) > 8 else ''})", type_id)
                value = found[0]
            number = self.integer(value, path, type_id, t.signed, t.size * 8, False)
            buf[off: off + t.size] = (number & ((1 << (t.size * 8)) - 1)).to_bytes(t.size,
                                                                                 self.order)
            return
        if kind is Kind.FLOAT:
            code = _FLOAT_CODES.get(t.size)
            if code is None:
                raise self.fail(path, f"a {t.size}-byte float takes {t.size} bytes, not "
                                      f"{_short(value)}", type_id)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(path, f"expected a number for {type_name(self.btf, type_id)}, "
                                      f"got {_short(value)}", type_id)
            try:
                struct.pack_into(("<" if self.order == "little" else ">") + code, buf, off, value)
            except (OverflowError, struct.error):
                raise self.fail(path, f"value {_short(value)} out of range for "
                                      f"{type_name(self.btf, type_id)}", type_id) from None
            return
        if kind is Kind.PTR:
            number = self.integer(value, path, type_id, False, self.ptr_size * 8, False,
                                  what="pointer")
            buf[off: off + self.ptr_size] = number.to_bytes(self.ptr_size, self.order)
            return
        if kind is Kind.ARRAY:
            if byte_array:
                if isinstance(value, str):
                    value = value.encode()
                if not isinstance(value, (bytes, bytearray, memoryview)):
                    raise self.fail(path, f"expected bytes or str for "
                                          f"{type_name(self.btf, type_id)}, got {_short(value)}",
                                    type_id)
                raw = bytes(value)
                if len(raw) > t.nelems:
                    raise self.fail(path, f"{len(raw)} bytes do not fit in "
                                          f"{type_name(self.btf, type_id)}", type_id)
                buf[off: off + t.nelems] = raw + bytes(t.nelems - len(raw))
                return
            if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
                raise self.fail(path, f"expected a list for {type_name(self.btf, type_id)}, got "
                                      f"{_short(value)}", type_id)
            if len(value) > t.nelems:
                raise self.fail(path, f"{len(value)} elements do not fit in "
                                      f"{type_name(self.btf, type_id)}", type_id)
            esize = type_size(self.btf, t.type)
            for i, item in enumerate(value):
                self.value(t.type, item, buf, off + i * esize, f"{path}[{i}]", depth + 1)
            return
        if kind in (Kind.STRUCT, Kind.UNION, Kind.DATASEC):
            if not isinstance(value, Mapping):
                raise self.fail(path, f"expected a dict for {type_name(self.btf, type_id)}, got "
                                      f"{_short(value)}", type_id)
            if kind is Kind.DATASEC:
                table = {}
                for vs in t.vars:
                    var = self.btf[vs.type]
                    if var.kind is Kind.VAR:
                        table[var.name] = (var.type, vs.offset * 8, 0)
            else:
                table = self.fields(tid, path)
            for name, item in value.items():
                if name not in table:
                    known = ", ".join(list(table)[:12]) + (", ..." if len(table) > 12 else "")
                    what = "variable" if kind is Kind.DATASEC else "field"
                    raise self.fail(f"{path}.{name}", f"no {what} {name!r} in "
                                                      f"{type_name(self.btf, tid)} ({known})", tid)
                ftype, bit_off, bits = table[name]
                if bits:
                    ft = self.btf[_resolve(self.btf, ftype)]
                    if ft.kind in (Kind.ENUM, Kind.ENUM64) and isinstance(item, str):
                        scratch = bytearray(ft.size)
                        self.value(ftype, item, scratch, 0, f"{path}.{name}", depth + 1)
                        item = int.from_bytes(scratch, self.order, signed=ft.signed)
                    boolean = ft.kind is Kind.INT and bool(ft.encoding & IntEncoding.BOOL)
                    number = self.integer(item, f"{path}.{name}", ftype,
                                          self.bitfield_signed(ftype), bits, boolean,
                                          what=f"{bits}-bit bitfield")
                    self.put_bits(buf, off * 8 + bit_off, bits, number)
                else:
                    self.value(ftype, item, buf, off + bit_off // 8, f"{path}.{name}", depth + 1)
            return
        raise self.fail(path, f"cannot encode a value of kind {kind.name} "
                              f"({type_name(self.btf, type_id)})", type_id)

    def integer(self, value: Any, path: str, type_id: int, signed: bool, width: int,
                boolean: bool, *, what: str | None = None) -> int:
        if isinstance(value, bool) or (boolean and value in (0, 1)):
            value = int(value)
        if not isinstance(value, int):
            if hasattr(value, "fileno") and not signed and width >= 32:
                value = int(value.fileno())  # an fd for a map of fds
            else:
                raise self.fail(path, f"expected an int for {type_name(self.btf, type_id)}, "
                                      f"got {_short(value)}", type_id)
        if boolean:
            lo, hi = 0, 1
        elif signed:
            lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        else:
            lo, hi = 0, (1 << width) - 1
        if not lo <= value <= hi:
            if what is not None:
                desc = what
            elif boolean:
                desc = f"bool {type_name(self.btf, type_id)}"
            else:
                desc = f"{'signed' if signed else 'unsigned'} {width}-bit " \
                       f"{type_name(self.btf, type_id)}"
            raise self.fail(path, f"value {value} out of range for {desc} ({lo}..{hi})", type_id)
        return value

    def put_bits(self, buf: bytearray, bit_off: int, bits: int, number: int) -> None:
        first, nbytes, shift = self.bit_span(bit_off, bits)
        word = int.from_bytes(buf[first: first + nbytes], self.order)
        mask = ((1 << bits) - 1) << shift
        word = (word & ~mask) | ((number << shift) & mask)
        buf[first: first + nbytes] = word.to_bytes(nbytes, self.order)


def decode(btf: "BTF", type_id: int, data: bytes | bytearray | memoryview, *,
           what: str = "value") -> Any:
    """The Python value of *data*, the bytes of *type_id* (see the module docstring).

    *what* starts the path in errors (``map 'counts' value``).  *data* must be
    exactly the type's size.
    """
    raw = bytes(data)
    size = type_size(btf, type_id)
    if len(raw) != size:
        raise BTFError(f"{what}: {len(raw)} bytes, {type_name(btf, type_id)} is {size} bytes",
                       type_id=type_id)
    return _Decoder(btf).value(type_id, raw, 0, what)


def encode(btf: "BTF", type_id: int, value: Any, *, base: bytes | None = None,
           what: str = "value") -> bytes:
    """The bytes of *value* as *type_id* (see the module docstring).

    What *value* leaves out (members missing from a dict, elements after a short
    list) is zero, or taken from *base* (the type's size in bytes) when given.
    """
    size = type_size(btf, type_id)
    if base is not None and len(base) != size:
        raise BTFError(f"{what}: base is {len(base)} bytes, {type_name(btf, type_id)} is "
                       f"{size} bytes", type_id=type_id)
    buf = bytearray(base) if base is not None else bytearray(size)
    _Encoder(btf).value(type_id, value, buf, 0, what)
    return bytes(buf)
