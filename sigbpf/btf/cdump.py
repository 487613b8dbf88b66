"""BTF -> C: the ``vmlinux.h`` header, and C declarations of single types.

This is the semantics of libbpf's ``btf_dump`` (libbpf 1.1, ``src/btf_dump.c``)
as ``bpftool btf dump file X format c`` (bpftool 7.1) uses it, so that the text
is the same, byte for byte, as bpftool's:

* **Order.**  Types are visited by id; each one is topologically sorted
  first (``btf_dump_order_type``): a type that is *embedded* (a member by
  value, an array element, an anonymous type defined inline) must be defined
  before its user ("strong" link), one only reached through a pointer to a
  named type can be forward-declared ("weak" link).  FUNC, VAR, DATASEC and
  DECL_TAG are not emitted.
* **Forward declarations** (``struct X;``) are written when a struct is
  referenced while it is being defined (pointer cycles) or from a typedef;
  a typedef that a pointer needs early is emitted early.
* **Anonymous** structs, unions and enums are defined inline where they are
  used; an anonymous enum nobody references is a top-level ``enum {...};``.
* **Names** that repeat (two different ``struct foo``) get ``___2``, ``___3``
  suffixes in the order they are first needed; typedef names and
  enumerators share one namespace, struct/union/enum tags another.
* **Layout.**  Bitfields (``: n``), explicit padding (``long: 64;``,
  ``int: 0;`` alignment marks), ``__attribute__((packed))`` when member
  offsets or the size show the struct was packed, ``ULL``/``LL`` suffixes
  for ENUM64.  libbpf >= 1.1 also writes ``__attribute__((mode(byte)))`` /
  ``mode(word)`` after 1- and 8-byte enums (libbpf commit e6e0e3fd); the
  bpftool 7.1 of Debian 12 (built from Linux 6.1.y) does not, so that is off
  by default (``CDumper(btf, enum_size_attrs=True)`` turns it on).  That
  bpftool *does* carry the later fix that writes ``(void)`` for a prototype
  without parameters (libbpf 205e86de), and so does this module.
* **Declarators**: pointers, arrays (``int (*x)[4]``, ``int x[2][3]``),
  function pointers (``void (*cb)(int, ...)``), const/volatile/restrict and
  type tags written ``__attribute__((btf_type_tag("...")))``;
  ``__builtin_va_list`` is never typedef'd.

:func:`dump_c` writes the whole header between bpftool's guards
(``__VMLINUX_H__``, the ``preserve_access_index`` pragma unless
``BPF_NO_PRESERVE_ACCESS_INDEX``).  :func:`c_declaration` renders one type
(with an optional name) the way ``btf_dump__emit_type_decl`` does; it is what
:mod:`sigbpf.btf.compat` uses to show prototypes.

libbpf tolerates malformed BTF by printing what it can; here a type loop that
C cannot express, or a chain deeper than Python allows, is a
:class:`~sigbpf.errors.BTFError` naming the type id.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable

from sigbpf.btf import layout
from sigbpf.btf.kinds import Kind
from sigbpf.errors import BTFError

__all__ = ["CDumper", "dump_c", "iter_c", "c_declaration", "HEADER", "FOOTER", "KFUNC_MACROS"]

HEADER = (
    "#ifndef __VMLINUX_H__\n"
    "#define __VMLINUX_H__\n"
    "\n"
    "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
    "#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)\n"
    "#endif\n\n"
)
FOOTER = (
    "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
    "#pragma clang attribute pop\n"
    "#endif\n"
    "\n"
    "#endif /* __VMLINUX_H__ */\n"
)

_MAX_INDENT = 13  # libbpf's PREFIXES: at most 13 tabs
_BLACKLISTED = "__builtin_va_list"
# GCC's Arm SIMD __PolyX_t typedef targets (libbpf's missing_base_types).
_MISSING_BASE_TYPES = {
    "__Poly8_t": "unsigned char",
    "__Poly16_t": "unsigned short",
    "__Poly64_t": "unsigned long long",
    "__Poly128_t": "unsigned __int128",
}

# order / emit states (btf_dump_type_order_state / btf_dump_type_emit_state)
_NOT, _DOING, _DONE = 0, 1, 2

_MODS = frozenset({Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG})
_CV = {Kind.VOLATILE: "volatile", Kind.CONST: "const", Kind.RESTRICT: "restrict"}
_TERMINAL = frozenset({Kind.INT, Kind.ENUM, Kind.ENUM64, Kind.FWD, Kind.STRUCT, Kind.UNION,
                       Kind.TYPEDEF, Kind.FLOAT})
_POINTING = frozenset({Kind.PTR, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.FUNC_PROTO,
                       Kind.TYPE_TAG})
_PAD_TYPES = (("int", 32), ("short", 16), ("char", 8))


def _pfx(lvl: int) -> str:
    return "\t" * min(lvl, _MAX_INDENT)


def _roundup(x: int, y: int) -> int:
    return -(-x // y) * y


class CDumper:
    """One libbpf ``struct btf_dump``: emitted state and name maps for one BTF.

    Text goes to :attr:`out` (a list of str pieces).  Use :meth:`dump_type`
    for each root type, or :meth:`declaration` for one C declaration.
    """

    def __init__(self, btf: Any, *, enum_size_attrs: bool = False) -> None:
        self.btf = btf
        self.enum_size_attrs = enum_size_attrs
        self.count = btf.type_count + 1  # ids 0 .. type_count
        self.ptr_sz = layout.pointer_size(btf)
        self.out: list[str] = []
        n = self.count
        self.order_state = bytearray(n)
        self.emit_state = bytearray(n)
        self.fwd_emitted = bytearray(n)
        self.name_resolved = bytearray(n)
        self.referenced: bytearray | None = None  # computed on first dump_type()
        self.cached_names: dict[int, str] = {}
        self.type_names: dict[str, int] = {}
        self.ident_names: dict[str, int] = {}
        self.strip_mods = False
        self.skip_anon_defs = False
        self.order_state[0] = _DONE
        self.emit_state[0] = _DONE
        self._types: dict[int, Any] = {}
        self._aligns: dict[int, int] = {}
        self._emit_queue: list[int] = []

    # ---- type access -------------------------------------------------------

    def _t(self, type_id: int) -> Any:
        t = self._types.get(type_id)
        if t is None:
            if not 0 <= type_id < self.count:
                raise BTFError(f"type id {type_id} out of range", type_id=type_id)
            t = self.btf[type_id]
            self._types[type_id] = t
        return t

    def _p(self, text: str) -> None:
        self.out.append(text)

    # ---- public entry points -----------------------------------------------

    def dump_type(self, type_id: int) -> None:
        """Emit *type_id* and every type it needs that was not emitted yet."""
        if not 0 <= type_id < self.count:
            raise BTFError(f"type id {type_id} out of range", type_id=type_id)
        if self.referenced is None:
            self._mark_referenced()
        self._emit_queue = []
        self._guard(self._order_type, type_id, False)
        for queued in self._emit_queue:
            self._guard(self._emit_type, queued, 0)

    def declaration(self, type_id: int, name: str = "", lvl: int = 0, *,
                    strip_mods: bool = False, skip_anon_defs: bool = False) -> str:
        """C declaration of *type_id* named *name* (``btf_dump__emit_type_decl``)."""
        start = len(self.out)
        self.strip_mods, self.skip_anon_defs = strip_mods, skip_anon_defs
        try:
            self._guard(self._emit_type_decl, type_id, name, lvl)
        finally:
            self.strip_mods = self.skip_anon_defs = False
        text = "".join(self.out[start:])
        del self.out[start:]
        return text

    def text(self) -> str:
        """Everything emitted so far."""
        return "".join(self.out)

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except RecursionError:
            raise BTFError("type chain too deep to write as C (a loop?)", type_id=args[0]) from None

    # ---- referenced marks (btf_dump_mark_referenced) -------------------------

    def _mark_referenced(self) -> None:
        ref = bytearray(self.count)
        btf = self.btf
        try:
            for type_id in range(1, self.count):
                t = btf[type_id]
                kind = t.kind
                if kind in (Kind.INT, Kind.ENUM, Kind.ENUM64, Kind.FWD, Kind.FLOAT):
                    continue
                if kind in (Kind.STRUCT, Kind.UNION):
                    for m in t.members:
                        ref[m.type] = 1
                elif kind is Kind.FUNC_PROTO:
                    # (like libbpf, the return type is not marked)
                    for p in t.params:
                        ref[p.type] = 1
                elif kind is Kind.ARRAY:
                    ref[t.index_type] = 1
                    ref[t.type] = 1
                elif kind is Kind.DATASEC:
                    for v in t.vars:
                        ref[v.type] = 1
                else:  # PTR, TYPEDEF, modifiers, FUNC, VAR, DECL_TAG, TYPE_TAG
                    ref[t.type] = 1
        except IndexError:
            raise BTFError(f"refers to a type id beyond the last id {self.count - 1}",
                           type_id=type_id) from None
        self.referenced = ref

    # ---- topological order (btf_dump_order_type) ----------------------------

    def _order_type(self, type_id: int, through_ptr: bool) -> int:
        """1: strong link (must be defined before), 0: weak (a forward decl will do)."""
        if type_id >= self.count:
            self._t(type_id)  # raises: out of range
        state = self.order_state
        if state[type_id] == _DONE:
            return 1
        t = self._t(type_id)
        kind = t.kind
        if state[type_id] == _DOING:
            if kind in (Kind.STRUCT, Kind.UNION) and through_ptr and t.name:
                return 0
            raise BTFError("unsatisfiable type cycle", type_id=type_id)

        if kind in (Kind.INT, Kind.FLOAT):
            state[type_id] = _DONE
            return 0
        if kind is Kind.PTR:
            strong = self._order_type(t.type, True)
            state[type_id] = _DONE
            return strong
        if kind is Kind.ARRAY:
            return self._order_type(t.type, False)
        if kind in (Kind.STRUCT, Kind.UNION):
            # part of a strong link only when embedded or anonymous (defined inline)
            if through_ptr and t.name:
                return 0
            state[type_id] = _DOING
            for m in t.members:
                self._order_type(m.type, False)
            if t.name:
                self._emit_queue.append(type_id)
            state[type_id] = _DONE
            return 1
        if kind in (Kind.ENUM, Kind.ENUM64, Kind.FWD):
            # named or unreferenced (top-level anonymous) enums are definitions
            if t.name or not self.referenced[type_id]:
                self._emit_queue.append(type_id)
            state[type_id] = _DONE
            return 1
        if kind is Kind.TYPEDEF:
            strong = self._order_type(t.type, through_ptr)
            if through_ptr and not strong:
                return 0
            self._emit_queue.append(type_id)
            state[type_id] = _DONE
            return 1
        if kind in _MODS:
            return self._order_type(t.type, through_ptr)
        if kind is Kind.FUNC_PROTO:
            strong = self._order_type(t.return_type, through_ptr) > 0
            for p in t.params:
                if self._order_type(p.type, through_ptr) > 0:
                    strong = True
            return int(strong)
        # FUNC, VAR, DATASEC, DECL_TAG: not emitted
        state[type_id] = _DONE
        return 0

    # ---- emitting definitions (btf_dump_emit_type) ---------------------------

    def _is_blacklisted(self, t: Any) -> bool:
        return t.name == _BLACKLISTED

    def _emit_type(self, type_id: int, cont_id: int) -> None:
        if type_id >= self.count:
            self._t(type_id)  # raises: out of range
        emit = self.emit_state
        if emit[type_id] == _DONE:
            return
        t = self._t(type_id)
        kind = t.kind
        top_level = cont_id == 0

        if emit[type_id] == _DOING:
            if self.fwd_emitted[type_id]:
                return
            if kind in (Kind.STRUCT, Kind.UNION):
                # referencing the struct we are part of: no forward decl needed
                if type_id == cont_id or not t.name:
                    return
                self._emit_struct_fwd(type_id, t)
                self._p(";\n\n")
                self.fwd_emitted[type_id] = 1
            elif kind is Kind.TYPEDEF:
                # the typedef is needed (through a pointer) before its target is done
                if not self._is_blacklisted(t):
                    self._emit_typedef_def(type_id, t, 0)
                    self._p(";\n\n")
                self.fwd_emitted[type_id] = 1
            return

        if kind is Kind.INT:
            alias = _MISSING_BASE_TYPES.get(self._type_name(type_id))
            if alias is not None:
                self._p(f"typedef {alias} {self._type_name(type_id)};\n\n")
            emit[type_id] = _DONE
        elif kind in (Kind.ENUM, Kind.ENUM64):
            if top_level:
                self._emit_enum_def(type_id, t, 0)
                self._p(";\n\n")
            emit[type_id] = _DONE
        elif kind in (Kind.PTR, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG,
                      Kind.ARRAY):
            self._emit_type(t.type, cont_id)
        elif kind is Kind.FWD:
            self._emit_fwd_def(type_id, t)
            self._p(";\n\n")
            emit[type_id] = _DONE
        elif kind is Kind.TYPEDEF:
            emit[type_id] = _DOING
            self._emit_type(t.type, type_id)
            if not self.fwd_emitted[type_id] and not self._is_blacklisted(t):
                self._emit_typedef_def(type_id, t, 0)
                self._p(";\n\n")
            emit[type_id] = _DONE
        elif kind in (Kind.STRUCT, Kind.UNION):
            emit[type_id] = _DOING
            # a definition writes every member's type: make sure each one is
            # defined or forward-declared first
            if top_level or not t.name:
                new_cont = cont_id if not t.name else type_id
                for m in t.members:
                    self._emit_type(m.type, new_cont)
            elif not self.fwd_emitted[type_id] and type_id != cont_id:
                self._emit_struct_fwd(type_id, t)
                self._p(";\n\n")
                self.fwd_emitted[type_id] = 1
            if top_level:
                self._emit_struct_def(type_id, t, 0)
                self._p(";\n\n")
                emit[type_id] = _DONE
            else:
                emit[type_id] = _NOT
        elif kind is Kind.FUNC_PROTO:
            self._emit_type(t.return_type, cont_id)
            for p in t.params:
                self._emit_type(p.type, cont_id)

    # ---- struct / union -----------------------------------------------------

    def _is_struct_packed(self, t: Any) -> bool:
        max_align = 1
        for m in t.members:
            align = layout.align_of(self.btf, m.type, self.ptr_sz, self._aligns)
            if align and m.bitfield_size == 0 and m.offset % (8 * align):
                return True
            max_align = max(align, max_align)
        return t.size % max_align != 0

    def _emit_bit_padding(self, cur_off: int, next_off: int, next_align: int,
                          in_bitfield: bool, lvl: int) -> None:
        if cur_off >= next_off:
            return
        pads = (("long", self.ptr_sz * 8),) + _PAD_TYPES
        # the largest type whose natural alignment lands inside the gap
        for pad_type, pad_bits in pads:
            new_off = _roundup(cur_off, pad_bits)
            if new_off <= next_off:
                break
        if cur_off < new_off <= next_off:
            # an explicit `<type>: 0` alignment mark is needed when the next
            # member would not be aligned there by itself, or when a
            # `<type>: X` would fit entirely in the hole and be ignored
            align_bits = next_align * 8
            natural = _roundup(cur_off, align_bits) if align_bits else cur_off
            if (in_bitfield
                    or (new_off == next_off and natural != new_off)
                    or (new_off != next_off and next_off - new_off <= new_off - cur_off)):
                self._p(f"\n{_pfx(lvl)}{pad_type}: {new_off - cur_off if in_bitfield else 0};")
            cur_off = new_off
        # fill the rest with whole `<type>: bits;`, the last one the smallest that fits
        while cur_off != next_off:
            bits = min(next_off - cur_off, pad_bits)
            if bits == pad_bits:
                self._p(f"\n{_pfx(lvl)}{pad_type}: {pad_bits};")
                cur_off += bits
                continue
            for small_type, small_bits in reversed(pads):
                if small_bits < bits:
                    continue
                pad_type, pad_bits = small_type, small_bits
                self._p(f"\n{_pfx(lvl)}{small_type}: {bits};")
                cur_off += bits
                break

    def _emit_struct_fwd(self, type_id: int, t: Any) -> None:
        keyword = "struct" if t.kind is Kind.STRUCT else "union"
        sep = " " if t.name else ""
        self._p(f"{keyword}{sep}{self._type_name(type_id)}")

    def _emit_struct_def(self, type_id: int, t: Any, lvl: int) -> None:
        is_struct = t.kind is Kind.STRUCT
        align = layout.align_of(self.btf, type_id, self.ptr_sz, self._aligns)
        packed = self._is_struct_packed(t) if is_struct else False
        keyword = "struct" if is_struct else "union"
        sep = " " if t.name else ""
        self._p(f"{keyword}{sep}{self._type_name(type_id)} {{")
        off = 0
        prev_bitfield = False
        for m in t.members:
            m_sz = m.bitfield_size
            m_off = m.offset
            m_align = 1 if packed else layout.align_of(self.btf, m.type, self.ptr_sz, self._aligns)
            in_bitfield = prev_bitfield and m_sz != 0
            self._emit_bit_padding(off, m_off, m_align, in_bitfield, lvl + 1)
            self._p(f"\n{_pfx(lvl + 1)}")
            self._emit_type_decl(m.type, m.name, lvl + 1)
            if m_sz:
                self._p(f": {m_sz}")
                off = m_off + m_sz
                prev_bitfield = True
            else:
                size = layout.resolve_size(self.btf, m.type, self.ptr_sz) or 0
                off = m_off + max(0, size) * 8
                prev_bitfield = False
            self._p(";")
        if is_struct:
            self._emit_bit_padding(off, t.size * 8, align, False, lvl + 1)
        # keep `struct empty {}` on one line
        if t.members or t.size:
            self._p(f"\n{_pfx(lvl)}}}")
        else:
            self._p("}")
        if packed:
            self._p(" __attribute__((packed))")

    # ---- enum / fwd / typedef -----------------------------------------------

    def _emit_enum_fwd(self, type_id: int) -> None:
        self._p(f"enum {self._type_name(type_id)}")

    def _emit_enum_def(self, type_id: int, t: Any, lvl: int) -> None:
        sep = " " if t.name else ""
        self._p(f"enum{sep}{self._type_name(type_id)}")
        if not t.values:
            return
        self._p(" {")
        is64 = t.kind is Kind.ENUM64
        suffix = ("LL" if t.signed else "ULL") if is64 else ""
        indent = _pfx(lvl + 1)
        for v in t.values:
            # enumerators share the namespace of typedef names
            dups = self._name_dups(self.ident_names, v.name)
            name = f"{v.name}___{dups}" if dups > 1 else v.name
            self._p(f"\n{indent}{name} = {v.value}{suffix},")
        self._p(f"\n{_pfx(lvl)}}}")
        if not self.enum_size_attrs:
            return
        if t.size == 1:
            self._p(" __attribute__((mode(byte)))")
        elif t.size == 8 and self.ptr_sz == 8:
            # an ENUM cannot hold 64-bit values; an ENUM64 whose values all fit
            # in 32 bits would not be widened by the compiler either
            if not is64 or not any((v.value & 0xFFFFFFFFFFFFFFFF) >> 32 for v in t.values):
                self._p(" __attribute__((mode(word)))")

    def _emit_fwd_def(self, type_id: int, t: Any) -> None:
        keyword = "union" if t.union else "struct"
        self._p(f"{keyword} {self._type_name(type_id)}")

    def _emit_typedef_def(self, type_id: int, t: Any, lvl: int) -> None:
        name = self._ident_name(type_id)
        # old GCC: typedef void __gnuc_va_list
        if t.type == 0 and name == "__gnuc_va_list":
            self._p("typedef __builtin_va_list __gnuc_va_list")
            return
        self._p("typedef ")
        self._emit_type_decl(t.type, name, lvl)

    # ---- declarations (btf_dump_emit_type_decl / _emit_type_chain) ------------

    def _emit_type_decl(self, type_id: int, fname: str, lvl: int) -> None:
        decls: list[int] = []
        steps = 0
        while True:
            t = self._t(type_id)
            if not (self.strip_mods and t.kind in _MODS):
                decls.append(type_id)
            if type_id == 0:
                break
            kind = t.kind
            if kind in _POINTING:
                type_id = t.return_type if kind is Kind.FUNC_PROTO else t.type
            elif kind is Kind.ARRAY:
                type_id = t.type
            else:
                break  # terminal kinds (and unexpected ones, which libbpf warns about)
            steps += 1
            if steps > 100_000:
                raise BTFError("loop in a type declaration chain", type_id=type_id)
        self._emit_type_chain(decls, fname, lvl)

    def _emit_mods(self, decls: list[int]) -> None:
        while decls:
            word = _CV.get(self._t(decls[-1]).kind) if decls[-1] else None
            if word is None:
                return
            self._p(word + " ")
            decls.pop()

    def _drop_mods(self, decls: list[int]) -> None:
        while decls and decls[-1] and self._t(decls[-1]).kind in _MODS:
            decls.pop()

    def _emit_name(self, name: str, last_was_ptr: bool) -> None:
        self._p(" " + name if name and not last_was_ptr else name)

    def _emit_type_chain(self, decls: list[int], fname: str, lvl: int) -> None:
        # last_was_ptr: `int ***`, not `int * * *`; true by default so that a
        # lone pointer before a func proto prints as `(*name)`
        last_was_ptr = True
        while decls:
            type_id = decls.pop()
            if type_id == 0:
                self._emit_mods(decls)
                self._p("void")
                last_was_ptr = False
                continue
            t = self._t(type_id)
            kind = t.kind
            if kind in (Kind.INT, Kind.FLOAT):
                self._emit_mods(decls)
                self._p(t.name)
            elif kind in (Kind.STRUCT, Kind.UNION):
                self._emit_mods(decls)
                if not t.name and not self.skip_anon_defs:
                    self._emit_struct_def(type_id, t, lvl)
                else:
                    self._emit_struct_fwd(type_id, t)
            elif kind in (Kind.ENUM, Kind.ENUM64):
                self._emit_mods(decls)
                if not t.name and not self.skip_anon_defs:
                    self._emit_enum_def(type_id, t, lvl)
                else:
                    self._emit_enum_fwd(type_id)
            elif kind is Kind.FWD:
                self._emit_mods(decls)
                self._emit_fwd_def(type_id, t)
            elif kind is Kind.TYPEDEF:
                self._emit_mods(decls)
                self._p(self._ident_name(type_id))
            elif kind is Kind.PTR:
                self._p("*" if last_was_ptr else " *")
            elif kind in _CV:
                self._p(" " + _CV[kind])
            elif kind is Kind.TYPE_TAG:
                self._emit_mods(decls)
                self._p(f' __attribute__((btf_type_tag("{t.name}")))')
            elif kind is Kind.ARRAY:
                # qualifiers on an array itself (a GCC quirk) mean nothing: drop them
                self._drop_mods(decls)
                if not decls:
                    self._emit_name(fname, last_was_ptr)
                    self._p(f"[{t.nelems}]")
                    return
                multidim = decls[-1] != 0 and self._t(decls[-1]).kind is Kind.ARRAY
                if fname and not last_was_ptr:
                    self._p(" ")
                if not multidim:
                    self._p("(")
                self._emit_type_chain(decls, fname, lvl)
                if not multidim:
                    self._p(")")
                self._p(f"[{t.nelems}]")
                return
            elif kind is Kind.FUNC_PROTO:
                # GCC's volatile on noreturn function pointers: dropped too
                self._drop_mods(decls)
                if decls:
                    self._p(" (")
                    self._emit_type_chain(decls, fname, lvl)
                    self._p(")")
                else:
                    self._emit_name(fname, last_was_ptr)
                self._p("(")
                params = t.params
                # no parameters, or clang's single void parameter: `f(void)`
                # (libbpf commit 205e86de, which Debian's bpftool 7.1 carries)
                if not params or (len(params) == 1 and params[0].type == 0):
                    self._p("void)")
                    return
                last = len(params) - 1
                for i, p in enumerate(params):
                    if i:
                        self._p(", ")
                    if i == last and p.type == 0:
                        self._p("...")
                        break
                    self._emit_type_decl(p.type, p.name, lvl)
                self._p(")")
                return
            else:
                return  # libbpf: "unexpected type in decl chain"
            last_was_ptr = kind is Kind.PTR
        self._emit_name(fname, last_was_ptr)

    # ---- names (btf_dump_resolve_name) ---------------------------------------

    @staticmethod
    def _name_dups(names: dict[str, int], name: str) -> int:
        count = names.get(name, 0) + 1
        names[name] = count
        return count

    def _resolve_name(self, type_id: int, names: dict[str, int]) -> str:
        t = self._t(type_id)
        if not t.name:
            return ""
        if self.name_resolved[type_id]:
            return self.cached_names.get(type_id, t.name)
        self.name_resolved[type_id] = 1
        if t.kind is Kind.FWD or (t.kind is Kind.ENUM and not t.values):
            return t.name
        dups = self._name_dups(names, t.name)
        if dups > 1:
            unique = f"{t.name}___{dups}"
            self.cached_names[type_id] = unique
            return unique
        return t.name

    def _type_name(self, type_id: int) -> str:
        return self._resolve_name(type_id, self.type_names)

    def _ident_name(self, type_id: int) -> str:
        return self._resolve_name(type_id, self.ident_names)


KFUNC_MACROS = (
    "#ifndef __ksym\n"
    "#define __ksym __attribute__((section(\".ksyms\")))\n"
    "#endif\n\n"
    "#ifndef __weak\n"
    "#define __weak __attribute__((weak))\n"
    "#endif\n\n"
    "#ifndef __bpf_fastcall\n"
    "#if __has_attribute(bpf_fastcall)\n"
    "#define __bpf_fastcall __attribute__((bpf_fastcall))\n"
    "#else\n"
    "#define __bpf_fastcall\n"
    "#endif\n"
    "#endif\n\n"
)
_KFUNC_TAG = "bpf_kfunc"
_FASTCALL_TAG = "bpf_fastcall"


def _kfunc_prototypes(dumper: CDumper) -> str:
    """bpftool >= 7.5's "BPF kfuncs" section: every FUNC tagged ``bpf_kfunc``.

    Sorted by name; ``__bpf_fastcall`` for FUNCs also tagged ``bpf_fastcall``;
    each declared ``extern <prototype> __weak __ksym;``.
    """
    btf = dumper.btf
    kfuncs: dict[int, str] = {}
    fastcalls: set[int] = set()
    for tag_id in btf.ids_of_kind(Kind.DECL_TAG):
        tag = btf[tag_id]
        if tag.component_idx != -1 or btf.kind_of(tag.type) is not Kind.FUNC:
            continue
        if tag.name == _KFUNC_TAG:
            kfuncs[tag.type] = btf[tag.type].name
        elif tag.name == _FASTCALL_TAG:
            fastcalls.add(tag.type)
    lines = ["\n/* BPF kfuncs */\n#ifndef BPF_NO_KFUNC_PROTOTYPES\n"]
    for func_id in sorted(kfuncs, key=lambda i: kfuncs[i].encode("utf-8", "surrogateescape")):
        fast = "__bpf_fastcall " if func_id in fastcalls else ""
        decl = dumper.declaration(btf[func_id].type, kfuncs[func_id])
        lines.append(f"extern {fast}{decl} __weak __ksym;\n")
    lines.append("#endif\n\n")
    return "".join(lines)


def iter_c(btf: Any, root_ids: Iterable[int] | None = None, *,
           enum_size_attrs: bool = False, kfunc_prototypes: bool = False) -> Iterable[str]:
    """Yield the header in pieces (what bpftool prints for ``format c``).

    ``kfunc_prototypes=True`` adds what bpftool >= 7.5 adds: the ``__ksym``,
    ``__weak`` and ``__bpf_fastcall`` macros after the pragma, and an
    ``extern ... __weak __ksym;`` declaration of every kfunc (FUNCs with the
    ``bpf_kfunc`` DECL_TAG; older kernels have none) guarded by
    ``BPF_NO_KFUNC_PROTOTYPES``.  bpftool 7.1 writes neither.
    """
    dumper = CDumper(btf, enum_size_attrs=enum_size_attrs)
    yield HEADER
    if kfunc_prototypes:
        yield KFUNC_MACROS
    ids = range(1, dumper.count) if root_ids is None else root_ids
    out = dumper.out
    for type_id in ids:
        dumper.dump_type(type_id)
        if len(out) > 4096:
            yield "".join(out)
            out.clear()
    yield "".join(out)
    out.clear()
    if kfunc_prototypes and root_ids is None:
        yield _kfunc_prototypes(dumper)
    yield FOOTER


def dump_c(btf: Any, root_ids: Iterable[int] | None = None, *,
           enum_size_attrs: bool = False, kfunc_prototypes: bool = False) -> str:
    """The whole C header for *btf* (all types, or *root_ids* and what they need).

    For split BTF the base types are written too, as bpftool does.  The two
    options are off by default (bpftool 7.1's text); see :func:`iter_c`.
    """
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        return "".join(iter_c(btf, root_ids, enum_size_attrs=enum_size_attrs,
                              kfunc_prototypes=kfunc_prototypes))
    finally:
        sys.setrecursionlimit(limit)


def c_declaration(btf: Any, type_id: int, name: str = "", *, dumper: CDumper | None = None) -> str:
    """C text declaring *name* with type *type_id*, e.g. ``int (*cb)(void *)``.

    Anonymous structs/unions/enums are written as ``struct `` etc. rather than
    defined inline.  Pass one *dumper* to render many declarations cheaply
    (names with ``___N`` suffixes are then numbered across calls).
    """
    d = dumper if dumper is not None else CDumper(btf)
    return d.declaration(type_id, name, 0, skip_anon_defs=True)
