"""Extern symbols of a BPF object: kfuncs, ksym variables and kconfig values.

An extern is an undefined ``NOTYPE`` symbol with GLOBAL or WEAK binding
(libbpf's ``sym_is_extern``).  Its BTF tells what it is (libbpf's
``bpf_object__collect_externs``): the first VAR or FUNC of that name, which
must have extern linkage, and the DATASEC that lists it:

* DATASEC ``.ksyms`` + FUNC   -> a **kfunc** (``extern ... __ksym``); clang
  emits ``FUNC name linkage=extern`` with its real FUNC_PROTO -- that FUNC id
  is what a ``BPF_PSEUDO_KFUNC_CALL_PROG_BTF`` call names;
* DATASEC ``.ksyms`` + VAR    -> a **ksym variable** (typed when its type is
  not ``void``; a typeless one is resolved through kallsyms by libbpf);
* DATASEC ``.kconfig`` + VAR  -> a **kconfig** value the loader provides in the
  ``.kconfig`` map (a FUNC there is an error).

A WEAK binding makes the extern optional.  Externs are returned in libbpf's
order (kconfig before ksyms; kconfig by alignment descending, then size, then
name; otherwise by name) and kconfig externs get libbpf's offsets in the
``.kconfig`` map.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from typing import TYPE_CHECKING

from sigbpf.errors import ELFError, NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf import BTF
    from sigbpf.elf.sections import Symbol

KSYMS_SECTION = ".ksyms"
KCONFIG_SECTION = ".kconfig"


class ExternKind(IntEnum):
    """What an extern is; KCONFIG sorts before the ksyms as libbpf's ``enum extern_type``."""

    KCONFIG = 1
    KSYM = 2  # a kernel variable (``extern const int x __ksym``)
    KFUNC = 3  # a kernel function (``extern void f(void) __ksym``)


class KconfigType(IntEnum):
    """libbpf's ``enum kcfg_type``: how a kconfig value is encoded."""

    UNKNOWN = 0
    BOOL = 1
    CHAR = 2
    TRISTATE = 3
    INT = 4
    CHAR_ARR = 5


@dataclass(frozen=True, slots=True)
class Extern:
    """One extern of the object.

    ``btf_id`` is the VAR or FUNC in the object's BTF (for a kfunc: the FUNC
    with linkage extern); ``type_id`` is its type with modifiers and typedefs
    skipped (for a kfunc: its FUNC_PROTO; 0 for a typeless ksym).  The
    ``kconfig_*`` fields are set for kconfig externs only.
    """

    name: str
    kind: ExternKind
    weak: bool
    btf_id: int
    type_id: int
    symbol_index: int
    section_btf_id: int
    kconfig_type: KconfigType = KconfigType.UNKNOWN
    kconfig_size: int = 0
    kconfig_align: int = 0
    kconfig_signed: bool = False
    kconfig_offset: int = 0

    @property
    def kind_name(self) -> str:
        return {ExternKind.KFUNC: "kfunc", ExternKind.KSYM: "ksym",
                ExternKind.KCONFIG: "kconfig"}[self.kind]


def _find_extern_btf_id(btf: "BTF", name: str, file: str | None) -> int:
    """libbpf's ``find_extern_btf_id``: the first VAR/FUNC named *name*; it must be extern."""
    from sigbpf.btf import FuncLinkage, Kind, VarLinkage

    found = []
    for kind in (Kind.VAR, Kind.FUNC):
        try:
            found.append(btf.find_by_name_kind(name, kind))
        except NotFoundError:
            pass
    if not found:
        raise ELFError(f"failed to find BTF for extern '{name}'", file=file)
    type_id = min(found)
    t = btf[type_id]
    if t.kind == Kind.VAR and t.linkage != VarLinkage.GLOBAL_EXTERN:  # type: ignore[union-attr]
        raise ELFError(f"BTF VAR of extern '{name}' is not extern", file=file, type_id=type_id)
    if t.kind == Kind.FUNC and t.linkage != FuncLinkage.EXTERN:  # type: ignore[union-attr]
        raise ELFError(f"BTF FUNC of extern '{name}' is not extern", file=file, type_id=type_id)
    return type_id


def _kconfig_type(btf: "BTF", type_id: int) -> tuple[KconfigType, bool]:
    """libbpf's ``find_kcfg_type``: (type, signed)."""
    from sigbpf.btf import IntEncoding, Kind

    t = btf[btf.resolve_modifiers(type_id)]
    if t.kind == Kind.INT:
        enc = t.encoding  # type: ignore[union-attr]
        if enc & IntEncoding.BOOL:
            return (KconfigType.BOOL if t.size == 1 else KconfigType.UNKNOWN), False  # type: ignore[union-attr]
        signed = bool(enc & IntEncoding.SIGNED)
        size = t.size  # type: ignore[union-attr]
        if size == 1:
            return KconfigType.CHAR, signed
        if size < 1 or size > 8 or size & (size - 1):
            return KconfigType.UNKNOWN, signed
        return KconfigType.INT, signed
    if t.kind == Kind.ENUM:
        ok = t.size == 4 and t.name == "libbpf_tristate"  # type: ignore[union-attr]
        return (KconfigType.TRISTATE if ok else KconfigType.UNKNOWN), False
    if t.kind == Kind.ENUM64:
        return (KconfigType.TRISTATE if t.name == "libbpf_tristate" else KconfigType.UNKNOWN), False
    if t.kind == Kind.ARRAY:
        if t.nelems == 0:  # type: ignore[union-attr]
            return KconfigType.UNKNOWN, False
        elem, _ = _kconfig_type(btf, t.type)  # type: ignore[union-attr]
        return (KconfigType.CHAR_ARR if elem == KconfigType.CHAR else KconfigType.UNKNOWN), False
    return KconfigType.UNKNOWN, False


def collect_externs(btf: "BTF | None", symbols: "tuple[Symbol, ...]", *,
                    file: str | None = None) -> list[Extern]:
    """Every extern of the object, in libbpf's order, with kconfig offsets assigned."""
    from sigbpf.btf import Kind
    from sigbpf.btf.layout import align_of, resolve_size

    candidates = [s for s in symbols if s.is_extern and s.name]
    if not candidates:
        return []
    if btf is None:
        raise ELFError(f"failed to find BTF for extern '{candidates[0].name}' (the object has no .BTF)",
                       file=file)
    datasec_of: dict[int, int] = {}
    for sec_id in btf.ids_of_kind(Kind.DATASEC):
        for vi in btf[sec_id].vars:  # type: ignore[union-attr]
            datasec_of.setdefault(vi.type, sec_id)
    out: list[Extern] = []
    for sym in candidates:
        btf_id = _find_extern_btf_id(btf, sym.name, file)
        t = btf[btf_id]
        sec_id = datasec_of.get(btf_id)
        if sec_id is None:
            raise ELFError(f"failed to find BTF for extern '{sym.name}' [{btf_id}] section",
                           file=file, type_id=btf_id)
        sec_name = btf.name_of(sec_id)
        common = dict(name=sym.name, weak=sym.is_weak, btf_id=btf_id, symbol_index=sym.index,
                      section_btf_id=sec_id)
        if sec_name == KCONFIG_SECTION:
            if t.kind == Kind.FUNC:
                raise ELFError(f"extern function {sym.name} is unsupported under {KCONFIG_SECTION} "
                               "section", file=file, type_id=btf_id)
            size = resolve_size(btf, t.type)  # type: ignore[union-attr]
            if not size:
                raise ELFError(f"failed to resolve size of extern (kcfg) '{sym.name}'",
                               file=file, type_id=btf_id)
            align = align_of(btf, t.type)  # type: ignore[union-attr]
            if align <= 0:
                raise ELFError(f"failed to determine alignment of extern (kcfg) '{sym.name}'",
                               file=file, type_id=btf_id)
            ktype, signed = _kconfig_type(btf, t.type)  # type: ignore[union-attr]
            if ktype == KconfigType.UNKNOWN:
                raise ELFError(f"extern (kcfg) '{sym.name}': type is unsupported",
                               file=file, type_id=btf_id)
            out.append(Extern(kind=ExternKind.KCONFIG, type_id=btf.resolve_modifiers(t.type),  # type: ignore[union-attr]
                              kconfig_type=ktype, kconfig_size=size, kconfig_align=align,
                              kconfig_signed=signed, **common))  # type: ignore[arg-type]
        elif sec_name == KSYMS_SECTION:
            kind = ExternKind.KFUNC if t.kind == Kind.FUNC else ExternKind.KSYM
            out.append(Extern(kind=kind, type_id=btf.resolve_modifiers(t.type),  # type: ignore[union-attr]
                              **common))  # type: ignore[arg-type]
        else:
            raise ELFError(f"unrecognized extern section '{sec_name}'", file=file, type_id=sec_id)
    # libbpf's cmp_externs: by type; kconfig by alignment (descending) then size; then name.
    # (libbpf's KSYM covers both our KSYM and KFUNC, so they sort together by name.)
    out.sort(key=lambda e: (0 if e.kind == ExternKind.KCONFIG else 1,
                            -e.kconfig_align, e.kconfig_size, e.name))
    offset = 0
    placed: list[Extern] = []
    for ext in out:
        if ext.kind == ExternKind.KCONFIG:
            start = -(-offset // ext.kconfig_align) * ext.kconfig_align
            ext = replace(ext, kconfig_offset=start)
            offset = start + ext.kconfig_size
        placed.append(ext)
    return placed


def kconfig_size(externs: list[Extern]) -> int:
    """Size of the ``.kconfig`` map: end of the last kconfig extern (0 when there are none)."""
    ends = [e.kconfig_offset + e.kconfig_size for e in externs if e.kind == ExternKind.KCONFIG]
    return ends[-1] if ends else 0
