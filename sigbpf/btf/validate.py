"""Full BTF validation: the per-type rules of the kernel's ``btf_parse``.

:func:`validate` runs after :mod:`sigbpf.btf.reader` (header, sections,
string section, framing) and applies, in the kernel's order, the rules of
``btf_check_all_metas`` (each record on its own) and ``btf_check_all_types``
(references, sizes, member layout, loops) from kernel/bpf/btf.c, with the
kernel's messages:

* names: offsets inside the string section; C identifiers (the kernel's
  ``ctype`` classes, Latin-1 letters included, ``_`` and ``.``, at most
  KSYM_NAME_LEN = 512 bytes) where a name is required or present
  (struct/union/enum names, members, enumerators, params, FUNC, FWD, TYPEDEF,
  VAR); empty where forbidden (PTR, CONST, VOLATILE, RESTRICT, ARRAY,
  FUNC_PROTO); printable for DATASEC; non-empty for TYPE_TAG and DECL_TAG;
* ``vlen`` and ``kind_flag`` only where the kind has them; INT encoding and
  bits; ENUM and FLOAT sizes;
* struct/union members: offsets in order and inside the struct, union
  offsets 0, then each member checked against its type as
  ``check_member``/``check_kflag_member`` do (byte alignment, bitfield sizes,
  "Member exceeds struct_size");
* references: every id in range; FUNC -> FUNC_PROTO whose params are named;
  ARRAY elements sized and index a regular INT; VAR/params/return types
  sized; pointers and qualifiers to sized types, ``void``, FWD or FUNC_PROTO;
  DECL_TAG targets and component indexes; DATASEC entries;
* the resolver's walk (``btf_check_all_types``/``btf_resolve``), modelled
  step by step: types resolved in id order, each walk on a stack of at most
  32 entries whose mode (pointer, or struct/array) decides which referenced
  types it descends into -- "Loop detected" for a cycle it meets (through
  qualifiers/typedefs and pointers, or by value through structs, unions and
  arrays; ``struct list { struct list *next; }`` is fine) and "Exceeded max
  resolving depth:32" for a longer chain of forward references, both at the
  type the walk started from, as the kernel logs them.

Deliberate differences, for what ELF objects legitimately contain before
libbpf fixes it up for loading: FUNC linkage EXTERN (with unnamed parameters)
and VAR linkage GLOBAL_EXTERN (possibly typeless, ``extern const void x __ksym``)
are accepted, a DATASEC may list FUNCs (``.ksyms``), and a
DATASEC of size 0 (clang writes sizes and offsets only at link time) has its
offsets and sizes unchecked.  One kernel quirk is approximated: a by-value
cycle the kernel's walk does not see (a qualifier on it was resolved earlier
in pointer mode) gets, as in the kernel, size 0 where the walk meets it, but
sigbpf does not track which sizes the kernel has computed *so far*, so a
member of such a cycle may be judged with its final size instead.
Differential fuzz tests against BPF_BTF_LOAD (tests/test_btf_validate.py:
mutated real BTF, and random type graphs) keep these the only differences.

Every error names the type id and the byte offset of its record.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sigbpf.btf import kinds as K
from sigbpf.btf.kinds import Kind
from sigbpf.errors import BTFError

if TYPE_CHECKING:
    from sigbpf.btf.spec import BTF

(INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR,
 DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64) = range(1, 20)


def _ctype_class(chars: str) -> bytes:
    return bytes(sorted(set(chars.encode("latin-1"))))


# The kernel's lib/ctype.c: letters are A-Z, a-z and Latin-1 0xC0-0xFF except 0xD7 and 0xF7;
# printable is 0x20-0x7E and 0xA0-0xFF.
_ALPHA = bytes(c for c in range(256) if (0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A
                                         or (0xC0 <= c <= 0xFF and c not in (0xD7, 0xF7))))
_FIRST = re.escape(_ALPHA + b"_.")
_NEXT = re.escape(_ALPHA + b"0123456789_.")
_IDENTIFIER = re.compile(b"[" + _FIRST + b"][" + _NEXT + b"]*\\Z")
_PRINTABLE = re.compile(b"[\\x20-\\x7e\\xa0-\\xff]+\\Z")

_NAMELESS = frozenset({PTR, CONST, VOLATILE, RESTRICT, ARRAY, FUNC_PROTO})
_NO_VLEN = frozenset({INT, PTR, ARRAY, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, VAR, FLOAT, DECL_TAG,
                      TYPE_TAG})
# kinds whose kind_flag bit means something (TYPE_TAG/DECL_TAG: attribute tags, kernel >= 6.13)
_KIND_FLAG_OK = frozenset({STRUCT, UNION, ENUM, ENUM64, FWD, DECL_TAG, TYPE_TAG})
_QUALIFIERS = frozenset({CONST, VOLATILE, RESTRICT, TYPEDEF, TYPE_TAG})
_HAS_SIZE = frozenset({INT, STRUCT, UNION, ENUM, ENUM64, DATASEC, FLOAT})
_NOSIZE = frozenset({0, FWD, FUNC, FUNC_PROTO, DECL_TAG})  # btf_type_nosize (0: void)
_SOURCE_ONLY = frozenset({VAR, DATASEC, DECL_TAG})  # btf_type_is_resolve_source_only
_DECL_TAG_TARGETS = frozenset({STRUCT, UNION, VAR, FUNC, TYPEDEF})
_ENUM_SIZES = frozenset({1, 2, 4, 8})
_FLOAT_SIZES = frozenset({2, 4, 8, 12, 16})
_REGULAR_INT_BYTES = frozenset({1, 2, 4, 8, 16})
_PTR_SIZE = 8


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


class _Checker:
    """State of one validation: where we are, and memoised sizes/resolutions."""

    def __init__(self, btf: "BTF") -> None:
        self.btf = btf
        self.max_id = btf.type_count
        self.type_id = 0
        self.where = 0
        self.good_identifiers: set[int] = set()  # name offsets already found to be identifiers
        base_kinds = _all_kinds(btf.base) if btf.base is not None else b""
        self.kinds = b"\0" + base_kinds + btf.kinds()  # kinds[id] for every id, 0 for void
        self.strings_size = btf.strings.size
        self.own_words = btf._words
        self.own_offsets = btf._offsets
        self.start = btf.start_id
        self._resolved: dict[int, int] = {}
        self._sizes: dict[int, int | None] = {}

    # -- reporting --------------------------------------------------------
    def fail(self, message: str) -> None:
        raise BTFError(message, file=self.btf.file, type_id=self.type_id, offset=self.where)

    # -- names ------------------------------------------------------------
    def name(self, off: int) -> bytes:
        try:
            return self.btf.strings.raw_at(off)
        except BTFError:
            self.fail(f"Invalid name_offset:{off}")
            raise AssertionError from None  # unreachable

    def is_identifier(self, off: int) -> bool:
        """btf_name_valid_identifier() of the string at *off* (non-empty C-like identifier)."""
        if off in self.good_identifiers:
            return True
        raw = self.name(off)
        if len(raw) > K.MAX_NAME_LEN or not _IDENTIFIER.match(raw):
            return False
        self.good_identifiers.add(off)
        return True

    # -- records (own or base) ---------------------------------------------
    def words_of(self, type_id: int) -> tuple["memoryview", int]:
        """(words, word offset) of the record of *type_id* (base records too)."""
        btf = self.btf
        while type_id < btf.start_id and btf.base is not None:
            btf = btf.base
        return btf._words, btf._offsets[type_id - btf.start_id]

    def size_type(self, type_id: int) -> int:
        w, o = self.words_of(type_id)
        return w[o + 2]

    def resolve(self, type_id: int) -> int:
        """btf_type_id_resolve: follow qualifiers/typedefs to the first other type (0 on a loop)."""
        found = self._resolved.get(type_id)
        if found is None:
            seen = 0
            found = type_id
            kinds = self.kinds
            while found <= self.max_id and kinds[found] in _QUALIFIERS:
                found = self.size_type(found)
                seen += 1
                if seen > self.max_id:
                    found = 0
                    break
            if found > self.max_id:
                found = 0  # a dangling id: that record's own check reports it
            self._resolved[type_id] = found
        return found

    def id_size(self, type_id: int) -> int | None:
        """btf_type_id_size: the size of *type_id* after qualifiers, None for types without one.

        Iterative along arrays and VARs (nelems multiply), so neither a long
        chain nor a cycle (through qualifiers the kernel resolved in pointer
        mode) can exhaust Python's stack: a cycle has size 0, as in the kernel.
        """
        if type_id in self._sizes:
            return self._sizes[type_id]
        count = 1
        seen: set[int] = set()
        tid = self.resolve(type_id)
        size: int | None = None
        while True:
            if tid in seen:
                # A by-value cycle the kernel's resolver let through (a qualifier
                # on it resolved in pointer mode): the kernel reads the size of the
                # array it is still resolving, which is 0.
                size = 0
                break
            seen.add(tid)
            kind = self.kinds[tid] if tid <= self.max_id else 0
            if tid != type_id and tid in self._sizes:
                known = self._sizes[tid]
                size = None if known is None else known * count
                break
            if kind in _HAS_SIZE:
                size = self.size_type(tid) * count
                break
            if kind == PTR:
                size = _PTR_SIZE * count
                break
            if kind == ARRAY:
                w, o = self.words_of(tid)
                count *= w[o + 5]
                nxt = w[o + 3]
            elif kind == VAR:
                nxt = self.size_type(tid)
            else:
                break
            tid = self.resolve(nxt)
        self._sizes[type_id] = size
        return size

    def is_regular_int(self, type_id: int) -> bool:
        """btf_type_int_is_regular: whole bytes, offset 0, 1/2/4/8/16 bytes."""
        if type_id > self.max_id or self.kinds[type_id] != INT:
            return False
        w, o = self.words_of(type_id)
        data = w[o + 3]
        bits = data & 0xFF
        return not (bits % 8 or (data >> 16) & 0xFF or bits // 8 not in _REGULAR_INT_BYTES)

    def ref(self, type_id: int, what: str = "type_id", *, void_ok: bool = True) -> int:
        """Check that a reference is in range; returns the kind number of the referenced type."""
        if type_id > self.max_id or (type_id == 0 and not void_ok):
            self.fail(f"Invalid {what}: {type_id} (ids are {0 if void_ok else 1}..{self.max_id})")
        return self.kinds[type_id]


def _all_kinds(btf: "BTF") -> bytes:
    return (_all_kinds(btf.base) if btf.base is not None else b"") + btf.kinds()


#: Refusals that are the kernel's policy about well-formed BTF (names, sizes, depth,
#: linkage), not damage: libbpf opens objects whose BTF breaks them and, when the kernel
#: refuses that BTF, loads without it ("BTF is optional, ignoring").
KERNEL_POLICY = ("parameters must be named", "Unexpected size", "Exceeded max resolving depth",
                 "Invalid func linkage", "Linkage not supported")
# (Not "Invalid name": a name that is no identifier may be no text at all.)


def is_kernel_policy(err: "BTFError") -> bool:
    """Whether *err* (from :func:`validate`) is a kernel policy refusal (see KERNEL_POLICY)."""
    return any(phrase in err.message for phrase in KERNEL_POLICY)


def parse_lenient(cls, data: bytes, base=None, *, file: str | None = None):
    """``cls.parse`` with the kernel's checks; BTF that only breaks a kernel *policy* is
    returned unvalidated with the refusal: (btf, None) or (btf, BTFError)."""
    from sigbpf.errors import BTFError

    try:
        return cls.parse(data, base, file=file), None
    except BTFError as err:
        if not is_kernel_policy(err):
            raise
        return cls.parse(data, base, file=file, validate=False), err


def validate(btf: "BTF") -> None:
    """Raise :class:`BTFError` (with type id and byte offset) for the first rule *btf* breaks."""
    c = _Checker(btf)
    w = btf._words
    offsets = btf._offsets
    infos = btf._infos
    base = btf.record_offset(btf.start_id) if offsets else 0
    for idx, o in enumerate(offsets):
        c.type_id = btf.start_id + idx
        c.where = base + 4 * o
        _check_meta(c, w, o, infos[idx])
    _check_resolve(c, btf)
    for idx, o in enumerate(offsets):
        c.type_id = btf.start_id + idx
        c.where = base + 4 * o
        _check_refs(c, w, o, infos[idx])
    _check_type_tags(c, btf)


_MODIFIERS = frozenset({TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG})  # btf_type_is_modifier


def _check_type_tags(c: _Checker, btf: "BTF") -> None:
    """btf_check_type_tags: in a chain of modifiers, TYPE_TAGs come first; chains end within 32 steps."""
    good_id = btf.start_id - 1
    kinds = c.kinds
    for type_id in range(btf.start_id, btf.type_count + 1):
        if kinds[type_id] not in _MODIFIERS:
            continue
        in_tags = kinds[type_id] == TYPE_TAG
        cur = type_id
        limit = 32
        while cur <= c.max_id and kinds[cur] in _MODIFIERS:
            if not limit:
                _fail_at(c, btf, type_id, "Max chain length or cycle detected")
            limit -= 1
            if kinds[cur] == TYPE_TAG:
                if not in_tags:
                    _fail_at(c, btf, type_id, "Type tags don't precede modifiers")
            else:
                in_tags = False
            if cur <= good_id:
                break
            cur = c.size_type(cur)
        good_id = type_id


def _fail_at(c: _Checker, btf: "BTF", type_id: int, message: str) -> None:
    c.type_id = type_id
    c.where = btf.record_offset(type_id) if type_id >= btf.start_id else 0
    c.fail(message)


def _check_meta(c: _Checker, w, o: int, info: int) -> None:
    """Per-record rules that need nothing but the record (btf_check_meta)."""
    kind = (info >> 24) & 0x1F
    vlen = info & 0xFFFF
    kflag = info >> 31
    name_off, size_type = w[o], w[o + 2]
    if name_off >= c.strings_size:
        c.fail(f"Invalid name_offset:{name_off}")
    if kind in _NO_VLEN and vlen:
        c.fail("vlen != 0")
    if kflag and kind not in _KIND_FLAG_OK:
        c.fail("Invalid btf_info kind_flag")
    if kind in _NAMELESS and name_off:
        c.fail("Invalid name")

    if kind == INT:
        data = w[o + 3]
        if data & 0xF0000000:
            c.fail(f"Invalid int_data:{data:x}")
        nr_bits = (data & 0xFF) + ((data >> 16) & 0xFF)
        if nr_bits > 128:
            c.fail("nr_bits exceeds 128")
        if (nr_bits + 7) // 8 > size_type:
            c.fail("nr_bits exceeds type_size")
        if (data >> 24) & 0x0F not in (0, 1, 2, 4):
            c.fail(f"Unsupported encoding {(data >> 24) & 0x0F}")
    elif kind in (TYPEDEF, FWD, FUNC):
        if kind == FWD and size_type:
            c.fail("type != 0")
        if not name_off or not c.is_identifier(name_off):
            c.fail("Invalid name")
        if kind == FUNC and vlen > 2:
            c.fail(f"Invalid func linkage {vlen}")
    elif kind == TYPE_TAG:
        if not c.name(name_off):
            c.fail("Invalid name")
    elif kind == DECL_TAG:
        if not c.name(name_off):
            c.fail("Invalid value")
        if _s32(w[o + 3]) < -1:
            c.fail(f"Invalid component_idx {_s32(w[o + 3])}")
    elif kind == ARRAY:
        if size_type:
            c.fail("size != 0")
        if not w[o + 3] or w[o + 3] > K.MAX_TYPE:
            c.fail("Invalid elem")
        if not w[o + 4] or w[o + 4] > K.MAX_TYPE:
            c.fail("Invalid index")
    elif kind == STRUCT or kind == UNION:
        if name_off and not c.is_identifier(name_off):
            c.fail("Invalid name")
        last = 0
        for i, p in enumerate(range(o + 3, o + 3 + 3 * vlen, 3)):
            mname, mtype, moff = w[p], w[p + 1], w[p + 2]
            if mname >= c.strings_size:
                c.fail(f"Invalid member name_offset:{mname} (member {i})")
            if mname and not c.is_identifier(mname):
                c.fail(f"Invalid name (member {i})")
            if not mtype or mtype > K.MAX_TYPE:
                c.fail(f"Invalid type_id (member {i})")
            bit_off = moff & 0xFFFFFF if kflag else moff
            if kind == UNION and bit_off:
                c.fail(f"Invalid member bits_offset (member {i})")
            if bit_off < last:
                c.fail(f"Invalid member bits_offset (member {i} before member {i - 1})")
            if (bit_off + 7) // 8 > size_type:
                c.fail(f"Member bits_offset exceeds its struct size (member {i})")
            last = bit_off
    elif kind == ENUM or kind == ENUM64:
        if size_type > 8 or size_type not in _ENUM_SIZES:
            c.fail(f"Unexpected size {size_type}")
        if name_off and not c.is_identifier(name_off):
            c.fail("Invalid name")
        step = 2 if kind == ENUM else 3
        for i, p in enumerate(range(o + 3, o + 3 + step * vlen, step)):
            if w[p] >= c.strings_size:
                c.fail(f"Invalid name_offset:{w[p]} (enumerator {i})")
            if not w[p] or not c.is_identifier(w[p]):
                c.fail(f"Invalid name (enumerator {i})")
    elif kind == VAR:
        if not name_off or not c.is_identifier(name_off):
            c.fail("Invalid name")
        if not size_type or size_type > K.MAX_TYPE:
            c.fail("Invalid type_id")
        if w[o + 3] > 2:
            c.fail(f"Linkage not supported {w[o + 3]}")
    elif kind == DATASEC:
        # Older kernels refused an empty DATASEC ("vlen == 0"); 6.18's btf_datasec_check_meta
        # accepts it (measured: tests/test_btf_validate.py), and clang emits one for a
        # .rodata holding only string literals.
        raw = c.name(name_off)
        if not name_off or len(raw) > K.MAX_NAME_LEN or not _PRINTABLE.match(raw):
            c.fail("Invalid name")
        last_end = 0
        total = 0
        for i, p in enumerate(range(o + 3, o + 3 + 3 * vlen, 3)):
            vtype, voff, vsize = w[p], w[p + 1], w[p + 2]
            if not vtype or vtype > K.MAX_TYPE:
                c.fail(f"Invalid type_id (entry {i})")
            if size_type:  # size 0: an unlinked object's DATASEC (see the module docstring)
                if voff < last_end or voff >= size_type:
                    c.fail(f"Invalid offset (entry {i})")
                if not vsize or vsize > size_type:
                    c.fail(f"Invalid size (entry {i})")
                last_end = voff + vsize
                if last_end > size_type:
                    c.fail(f"Invalid offset+size (entry {i})")
                total += vsize
        if size_type and size_type < total:
            c.fail("Invalid btf_info size")
    elif kind == FLOAT:
        if size_type not in _FLOAT_SIZES:
            c.fail(f"Invalid type_size {size_type}")


def _check_refs(c: _Checker, w, o: int, info: int) -> None:
    """References and resolved sizes (btf_check_all_types / the *_resolve functions), on the raw record."""
    kind = (info >> 24) & 0x1F
    vlen = info & 0xFFFF
    t = w[o + 2]
    if kind == PTR or kind in _QUALIFIERS:
        target = c.ref(t)
        if target in _SOURCE_ONLY:
            c.fail(f"Invalid type_id: {t} is a {_kind_name(target)}")
        end = c.kinds[c.resolve(t)]
        if c.id_size(t) is None and end not in (0, FWD, FUNC_PROTO):
            # The kernel's quirk: a FUNC resolved before this type counts as void (its
            # resolved id is 0).  Qualifiers push the FUNC and resolve it first; a pointer
            # treats it as a sink, so only a FUNC with a lower id has been resolved.
            if not (end == FUNC and (kind != PTR or c.resolve(t) < c.type_id)):
                c.fail(f"Invalid type_id: {t} resolves to a {_kind_name(end)}")
    elif kind == ARRAY:
        elem, index = w[o + 3], w[o + 4]
        if c.ref(index, "index") in _NOSIZE | _SOURCE_ONLY or not c.is_regular_int(c.resolve(index)):
            c.fail(f"Invalid index: {index} is not a regular int")
        if c.ref(elem, "elem") in _NOSIZE | _SOURCE_ONLY or c.id_size(elem) is None:
            c.fail(f"Invalid elem: {elem} has no size")
        if c.kinds[c.resolve(elem)] == INT and not c.is_regular_int(c.resolve(elem)):
            c.fail("Invalid array of int")
        if w[o + 5] and (c.id_size(elem) or 0) > 0xFFFFFFFF // w[o + 5]:
            c.fail("Array size overflows U32_MAX")
    elif kind == STRUCT or kind == UNION:
        kflag = info >> 31
        for i, p in enumerate(range(o + 3, o + 3 + 3 * vlen, 3)):
            _check_member(c, i, w[p + 1], w[p + 2], t, kflag)
    elif kind == FUNC:
        if c.ref(t) != FUNC_PROTO:
            c.fail(f"Invalid type_id: FUNC prototype {t} is not a FUNC_PROTO")
        pw, po = c.words_of(t)
        pvlen = pw[po + 1] & 0xFFFF
        if vlen != 2:  # extern FUNCs (objects) keep clang's unnamed params; libbpf names them
            for i, p in enumerate(range(po + 3, po + 3 + 2 * pvlen, 2)):
                if not pw[p] and pw[p + 1]:
                    c.fail(f"Invalid arg#{i + 1}: a FUNC's parameters must be named")
    elif kind == FUNC_PROTO:
        if t:
            if c.ref(t, "return type") in _SOURCE_ONLY or c.id_size(t) is None:
                c.fail("Invalid return type")
        n = vlen
        if n and not w[o + 3 + 2 * (n - 1) + 1]:  # vararg: last param type 0 ...
            if w[o + 3 + 2 * (n - 1)]:  # ... and no name
                c.fail(f"Invalid arg#{n}")
            n -= 1
        for i, p in enumerate(range(o + 3, o + 3 + 2 * n, 2)):
            pname, ptype = w[p], w[p + 1]
            if not ptype:
                c.fail(f"Invalid arg#{i + 1}")
            c.ref(ptype, f"arg#{i + 1} type_id")
            if pname and (pname >= c.strings_size or not c.is_identifier(pname)):
                c.fail(f"Invalid arg#{i + 1}")
            if c.kinds[ptype] in _SOURCE_ONLY or c.id_size(ptype) is None:
                c.fail(f"Invalid arg#{i + 1}")
    elif kind == VAR:
        if c.ref(t) in _SOURCE_ONLY:
            c.fail(f"Invalid type_id: VAR of a {_kind_name(c.kinds[t])}")
        # an extern (object-only) VAR may be typeless: 'extern const void sym __ksym;'
        if c.id_size(t) is None and w[o + 3] != 2:
            c.fail(f"Invalid type_id: VAR of a {_kind_name(c.kinds[c.resolve(t)])}")
    elif kind == DATASEC:
        for i, p in enumerate(range(o + 3, o + 3 + 3 * vlen, 3)):
            vt = w[p]
            target = c.ref(vt, f"entry {i} type_id", void_ok=False)
            if target == FUNC:
                continue  # .ksyms of an object (see the module docstring)
            if target != VAR:
                c.fail(f"Not a VAR kind member (entry {i} is a {_kind_name(target)})")
            vw, vo = c.words_of(vt)
            if vw[vo + 3] == 2:
                continue  # extern VAR of an object: libbpf gives it a type and place
            size = c.id_size(vt)
            if size is None:
                c.fail(f"Invalid type (entry {i})")
            if t and w[p + 2] < size:
                c.fail(f"Invalid size (entry {i}: {w[p + 2]} < {size})")
    elif kind == DECL_TAG:
        target = c.ref(t, void_ok=False)
        if target not in _DECL_TAG_TARGETS:
            c.fail(f"Invalid type_id: DECL_TAG on a {_kind_name(target)}")
        idx = _s32(w[o + 3])
        if idx != -1:
            if target in (VAR, TYPEDEF):
                c.fail(f"Invalid component_idx {idx} (must be -1 for a {_kind_name(target)})")
            tw, to = c.words_of(t)
            if target == FUNC:
                proto = tw[to + 2]
                tw, to = c.words_of(proto) if c.kinds[proto] == FUNC_PROTO else (tw, to)
            if idx >= tw[to + 1] & 0xFFFF:
                c.fail(f"Invalid component_idx {idx}")


def _check_member(c: _Checker, i: int, mtype: int, moff: int, struct_size: int, kflag: int) -> None:
    """btf_struct_resolve for one member: the member type's check_member / check_kflag_member."""
    if mtype > c.max_id:
        c.fail(f"Invalid member (member {i}: type_id {mtype} out of range 1..{c.max_id})")
    mkind = c.kinds[mtype]
    if mkind in _NOSIZE or mkind in _SOURCE_ONLY:
        c.fail(f"Invalid member (member {i} is a {_kind_name(mkind)})")
    rid = c.resolve(mtype) if mkind in _QUALIFIERS else mtype
    rkind = c.kinds[rid]
    if rkind in _NOSIZE or rkind in _SOURCE_ONLY:
        c.fail(f"Unsupported check_member (member {i} resolves to a {_kind_name(rkind)})")
    bitfield = moff >> 24 if kflag else 0
    bit_off = moff & 0xFFFFFF if kflag else moff
    byte_off = bit_off // 8

    if rkind == INT:
        w, o = c.words_of(rid)
        data = w[o + 3]
        int_bits, int_off = data & 0xFF, (data >> 16) & 0xFF
        if kflag:
            if not c.is_regular_int(rid):
                c.fail(f"Invalid member base type (member {i})")
            nr_bits = bitfield
            if not nr_bits:
                if bit_off % 8:
                    c.fail(f"Invalid member offset (member {i})")
                nr_bits = int_bits
            elif nr_bits > int_bits:
                c.fail(f"Invalid member bitfield_size (member {i})")
            copy_bits = nr_bits + bit_off % 8
        else:
            bit_off += int_off
            byte_off = bit_off // 8
            copy_bits = int_bits + bit_off % 8
        if copy_bits > 128:
            c.fail(f"nr_copy_bits exceeds 128 (member {i})")
        if struct_size < byte_off or struct_size - byte_off < (copy_bits + 7) // 8:
            c.fail(f"Member exceeds struct_size (member {i})")
        return
    if rkind == ENUM or rkind == ENUM64:
        size = c.size_type(rid)
        if kflag:
            nr_bits = bitfield
            if not nr_bits:
                if bit_off % 8:
                    c.fail(f"Member is not byte aligned (member {i})")
                nr_bits = size * 8
            elif nr_bits > size * 8:
                c.fail(f"Invalid member bitfield_size (member {i})")
            if struct_size < (bit_off + nr_bits + 7) // 8:
                c.fail(f"Member exceeds struct_size (member {i})")
        else:
            if bit_off % 8:
                c.fail(f"Member is not byte aligned (member {i})")
            if struct_size - byte_off < size:
                c.fail(f"Member exceeds struct_size (member {i})")
        return
    # struct, union, ptr, array, float: generic (bitfield size must be 0 with kind_flag)
    if bitfield:
        c.fail(f"Invalid member bitfield_size (member {i})")
    if rkind == FLOAT:
        size = c.size_type(rid)
        align = min(size, _PTR_SIZE) * 8
        if bit_off % align:
            c.fail(f"Member is not properly aligned (member {i})")
        if byte_off + size > struct_size:
            c.fail(f"Member exceeds struct_size (member {i})")
        return
    if bit_off % 8:
        c.fail(f"Member is not byte aligned (member {i})")
    size = c.id_size(rid)
    if size is None:
        c.fail(f"Invalid member (member {i})")
    if struct_size - byte_off < size:  # type: ignore[operator]
        c.fail(f"Member exceeds struct_size (member {i})")


def _kind_name(kind: int) -> str:
    return "void" if kind == 0 else Kind(kind).name


MAX_RESOLVE_DEPTH = 32  # the kernel's resolver stack
_NEEDS_RESOLVE = _MODIFIERS | {PTR, STRUCT, UNION, ARRAY, VAR, FUNC, DECL_TAG, DATASEC}  # btf_type_needs_resolve
_TBD, _PTR_MODE, _AGG_MODE = range(3)  # RESOLVE_TBD, RESOLVE_PTR, RESOLVE_STRUCT_OR_ARRAY
_NOT_VISITED, _VISITED, _RESOLVED = range(3)


def _is_sink(mode: int, kind: int) -> bool:
    """env_type_is_resolve_sink: a type the resolver does not descend into, in this mode."""
    if mode == _TBD:
        return kind not in _NEEDS_RESOLVE
    if mode == _PTR_MODE:
        return kind not in _MODIFIERS and kind != PTR
    return kind not in _MODIFIERS and kind not in (ARRAY, STRUCT, UNION)


def _resolve_refs(w, o: int, kind: int, vlen: int) -> "list[int] | memoryview":
    """The ids the kernel's resolve step of this kind visits, in its order."""
    if kind == STRUCT or kind == UNION:
        return w[o + 4:o + 4 + 3 * vlen:3]
    if kind == DATASEC:
        return w[o + 3:o + 3 + 3 * vlen:3]
    if kind == ARRAY:
        return [w[o + 4], w[o + 3]]  # index type first, then the element type
    if kind == FUNC:
        return []  # btf_func_resolve pushes nothing
    return [w[o + 2]]  # modifiers, PTR, VAR, DECL_TAG


def _check_resolve(c: _Checker, btf: "BTF") -> None:
    """btf_check_all_types' resolver walk: "Loop detected", "Exceeded max resolving depth:32".

    The kernel resolves the types in id order; a type that needs resolving
    starts a depth-first walk on a stack of at most MAX_RESOLVE_DEPTH entries,
    which descends into referenced types that are neither resolved nor, in
    the walk's mode (set by the first PTR, or STRUCT/UNION/ARRAY, pushed),
    sinks.  Pushing a type already on the walk is a loop; a 33rd entry is too
    deep.  Either is reported at the type the walk started from, as the
    kernel's log does.  Only the walk is modelled here: what the resolve steps
    check about members, elements and sizes is in :func:`_check_refs`.
    """
    start = btf.start_id
    kinds = c.kinds
    max_id = c.max_id
    words = btf._words
    offsets = btf._offsets
    infos = btf._infos
    state = bytearray(len(infos))
    for root_idx, info in enumerate(infos):
        if state[root_idx] == _RESOLVED:
            continue
        kind = (info >> 24) & 0x1F
        if kind == FUNC:  # a walk from a FUNC pushes nothing more: resolved at once
            state[root_idx] = _RESOLVED
        elif kind in _NEEDS_RESOLVE:
            _resolve_from(c, btf, start + root_idx, state, kinds, max_id, words, offsets, infos)


def _resolve_from(c: _Checker, btf: "BTF", root: int, state: bytearray, kinds: bytes, max_id: int,
                  words, offsets: list[int], infos: list[int]) -> None:
    """btf_resolve(): one walk from *root*."""
    start = btf.start_id
    mode = _TBD
    stack: list[int] = []  # own indexes of the types on the walk

    def push(type_id: int) -> None:  # env_stack_push
        nonlocal mode
        if len(stack) == MAX_RESOLVE_DEPTH:
            _fail_at(c, btf, root, f"Exceeded max resolving depth:{MAX_RESOLVE_DEPTH}")
        idx = type_id - start
        if idx < 0 or state[idx] != _NOT_VISITED:
            _fail_at(c, btf, root, "Loop detected")
        state[idx] = _VISITED
        stack.append(idx)
        if mode == _TBD:
            kind = kinds[type_id]
            if kind == PTR:
                mode = _PTR_MODE
            elif kind in (STRUCT, UNION, ARRAY):
                mode = _AGG_MODE

    push(root)
    while stack:
        idx = stack[-1]
        info = infos[idx]
        kind = (info >> 24) & 0x1F
        for ref in _resolve_refs(words, offsets[idx], kind, info & 0xFFFF):
            if (start <= ref <= max_id and state[ref - start] != _RESOLVED
                    and not _is_sink(mode, kinds[ref])):
                push(ref)
                break
        else:
            # btf_ptr_resolve / btf_var_resolve: a modifier resolved earlier (in
            # struct mode, where it stopped at a pointer) is followed to that pointer.
            nxt = words[offsets[idx] + 2]
            if kind in (PTR, VAR) and nxt <= max_id and kinds[nxt] in _MODIFIERS:
                rid = c.resolve(nxt)
                if (rid >= start and kinds[rid] == PTR and not _is_sink(mode, PTR)
                        and state[rid - start] != _RESOLVED):
                    push(rid)
                    continue
            state[idx] = _RESOLVED
            stack.pop()
