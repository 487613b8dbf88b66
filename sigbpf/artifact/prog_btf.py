"""The program BTF of an artifact: the object's ``.BTF`` as the kernel will accept it.

clang's ``.BTF`` cannot be given to ``BPF_BTF_LOAD`` as it is.  libbpf fixes
it up while loading (``add_dummy_ksym_var``, the ``.ksyms`` part of
``bpf_object__collect_externs`` and ``btf_fixup_datasec``); this module does
the same fixups, in the same order, so that the program BTF in an artifact is
the very BTF libbpf would load for the same object (a test compares the two
with bpftool):

1. If the ``.ksyms`` DATASEC lists a FUNC (an extern kfunc), append
   ``VAR dummy_ksym`` (linkage global-allocated, type: the first 32-bit INT).
   The kernel rejects DATASEC entries that are not VARs ("Not a VAR kind
   member").
2. ``.ksyms``: entry *i* gets offset ``4*i`` and size 4, the DATASEC size
   ``4*n``.  A FUNC entry is replaced by ``dummy_ksym``; the FUNC itself gets
   linkage GLOBAL (the kernel rejects ``BTF_FUNC_EXTERN``: "Invalid func
   linkage") and every unnamed parameter of its prototype the name
   ``dummy_ksym`` (the kernel's ``btf_func_check`` wants named arguments).
   A VAR entry (typed ksym) becomes a global-allocated ``int``.
3. Every other DATASEC: a size of 0 becomes the ELF section's size and the
   VAR offsets become the ELF symbols' values; a VAR whose symbol is hidden
   becomes static; the entries are sorted by offset.  The ELF layer computed
   this when it read the object (:mod:`sigbpf.elf.datasec`); it is applied here.
4. A hidden (``__hidden``) global subprogram's FUNC gets linkage STATIC
   (libbpf's ``mark_btf_static`` in ``bpf_object__sanitize_and_load_btf``).

Type ids never change (types are patched in place, one VAR is appended) and
the string section keeps every original offset (new strings are appended),
so func_info, line_info, CO-RE relocations and map ids of the object stay
valid in the program BTF.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Iterable, Mapping

from sigbpf.btf import BTF
from sigbpf.btf import types as T
from sigbpf.btf.kinds import FuncLinkage, VarLinkage
from sigbpf.btf.marshal import assemble, type_words
from sigbpf.elf.datasec import KCONFIG_SECTION, KSYMS_SECTION, DatasecFixup
from sigbpf.errors import BTFError

__all__ = ["DUMMY_KSYM", "ProgramBTF", "program_btf"]

DUMMY_KSYM = "dummy_ksym"


@dataclass(frozen=True)
class ProgramBTF:
    """The fixed-up program BTF: raw bytes, and (parsed and validated on first use) the BTF."""

    data: bytes
    dummy_ksym_id: int  # 0 when none was needed
    file: str | None = None

    @cached_property
    def btf(self) -> BTF:
        return BTF.parse(self.data, file=self.file)


def _first_int32(types: list[T.Type]) -> int:
    """libbpf's find_int_btf_id: the first INT with 32 bits, 0 if none."""
    for index, t in enumerate(types):
        if isinstance(t, T.Int) and t.bits == 32:
            return index + 1
    return 0


def program_btf(btf: BTF, fixup: DatasecFixup, static_funcs: Iterable[str] = (), *,
                kconfig: Mapping[str, int] | None = None, kconfig_size: int = 0,
                file: str | None = None) -> ProgramBTF:
    """Apply libbpf's load-time fixups to an object's BTF (see the module docstring).

    *fixup* is the object's DATASEC fix-up (:attr:`sigbpf.elf.BPFObject.datasec_fixup`,
    step 3: the ELF layer already checked that every DATASEC's section and every
    VAR's symbol exists, with libbpf's messages); *static_funcs* names the hidden
    global subprograms; *kconfig* maps each kconfig extern to its offset in the
    ``.kconfig`` map of *kconfig_size* bytes (libbpf's ``bpf_object__collect_externs``:
    the VARs become global-allocated at those offsets).  Raises :class:`BTFError` for
    a malformed ``.ksyms``.
    """
    if btf.base is not None:
        raise BTFError("program BTF cannot be split BTF", file=file)
    types: list[T.Type] = [t for _, t in btf.types()]
    extra_strings: list[str] = []

    def set_type(type_id: int, t: T.Type) -> None:
        types[type_id - 1] = t

    # 1. dummy_ksym
    ksyms_id = _find(types, KSYMS_SECTION, T.Datasec)
    dummy_id = 0
    int_id = _first_int32(types)
    if ksyms_id:
        sec = types[ksyms_id - 1]
        assert isinstance(sec, T.Datasec)
        if any(isinstance(types[v.type - 1], T.Func) for v in sec.vars if 0 < v.type <= len(types)):
            types.append(T.Var(DUMMY_KSYM, int_id, VarLinkage.GLOBAL_ALLOCATED))
            dummy_id = len(types)
            extra_strings.append(DUMMY_KSYM)

    # 2. .ksyms entries
    if ksyms_id:
        sec = types[ksyms_id - 1]
        assert isinstance(sec, T.Datasec)
        new_vars = []
        for i, vs in enumerate(sec.vars):
            if not 0 < vs.type <= len(types):
                raise BTFError(f"{KSYMS_SECTION} entry {i} refers to type {vs.type}, out of range",
                               file=file, type_id=ksyms_id)
            target = types[vs.type - 1]
            if isinstance(target, T.Func):
                proto = types[target.type - 1] if 0 < target.type <= len(types) else None
                if isinstance(proto, T.FuncProto):
                    params = tuple(replace(p, name=DUMMY_KSYM) if p.type and not p.name else p
                                   for p in proto.params)
                    set_type(target.type, replace(proto, params=params))
                set_type(vs.type, replace(target, linkage=FuncLinkage.GLOBAL))
                new_vars.append(T.VarSecinfo(dummy_id, 4 * i, 4))
            elif isinstance(target, T.Var):
                set_type(vs.type, replace(target, linkage=VarLinkage.GLOBAL_ALLOCATED, type=int_id))
                new_vars.append(T.VarSecinfo(vs.type, 4 * i, 4))
            else:
                raise BTFError(f"{KSYMS_SECTION} entry {i} is a {target.kind.name}, not a FUNC or VAR",
                               file=file, type_id=vs.type)
        set_type(ksyms_id, replace(sec, size=4 * len(new_vars), vars=tuple(new_vars)))

    # 3. other DATASECs: the object's own fix-up (sigbpf.elf.datasec), computed when it was read
    for sec_id, fixed in fixup.datasecs.items():
        if fixed.name != KSYMS_SECTION:
            set_type(sec_id, fixed)
    for var_id in fixup.static_vars:
        set_type(var_id, replace(types[var_id - 1], linkage=VarLinkage.STATIC))

    # 3b. .kconfig: VARs global-allocated at the extern's offset, the DATASEC sized
    kconfig_id = _find(types, KCONFIG_SECTION, T.Datasec) if kconfig else 0
    if kconfig_id:
        sec = types[kconfig_id - 1]
        assert isinstance(sec, T.Datasec)
        placed = []
        for vs in sec.vars:
            var = types[vs.type - 1] if 0 < vs.type <= len(types) else None
            if not isinstance(var, T.Var) or var.name not in kconfig:
                raise BTFError(f"{KCONFIG_SECTION} entry refers to type {vs.type}, which is not "
                               "a kconfig extern", file=file, type_id=kconfig_id)
            set_type(vs.type, replace(var, linkage=VarLinkage.GLOBAL_ALLOCATED))
            placed.append(replace(vs, offset=kconfig[var.name]))
        placed.sort(key=lambda vs: vs.offset)  # the kernel wants increasing offsets
        set_type(kconfig_id, replace(sec, size=kconfig_size, vars=tuple(placed)))

    # 4. hidden subprograms
    for name in static_funcs:
        for index, t in enumerate(types):
            if isinstance(t, T.Func) and t.linkage == FuncLinkage.GLOBAL and t.name == name:
                types[index] = replace(t, linkage=FuncLinkage.STATIC)
                break

    data = _encode(btf, types, extra_strings, file)
    return ProgramBTF(data, dummy_id, file)


def _find(types: list[T.Type], name: str, cls: type) -> int:
    for index, t in enumerate(types):
        if isinstance(t, cls) and t.name == name:
            return index + 1
    return 0


def _encode(btf: BTF, types: list[T.Type], extra_strings: list[str], file: str | None) -> bytes:
    """Encode *types* keeping every string offset of *btf*; new strings go at the end."""
    strings = bytearray(btf.strings.data)
    added: dict[str, int] = {}
    for name in extra_strings:
        if btf.strings.offset_of(name) is None and name not in added:
            added[name] = len(strings)
            strings += name.encode() + b"\0"

    def name_off(name: str) -> int:
        if not name:
            return 0
        off = btf.strings.offset_of(name)
        if off is None:
            off = added.get(name)
        if off is None:
            raise BTFError(f"name {name!r} is not in the string section", file=file)
        return off

    words = array("I")
    for type_id, t in enumerate(types, start=1):
        try:
            words.extend(type_words(t, name_off))
        except BTFError as err:
            raise err.at(type_id=type_id, file=file) from None
    return assemble(words, bytes(strings), btf.byte_order)
