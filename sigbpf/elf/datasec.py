"""Global data of a BPF object: ``.data``, ``.rodata``, ``.bss`` and their custom variants.

libbpf turns each non-empty data section into an "internal" ARRAY map with
one element (key 0, ``key_size`` 4) whose value is the whole section:

==================  ========  =====================================  ========
section             kind      initial value                          frozen
==================  ========  =====================================  ========
``.data``,          DATA      the section bytes                      no
``.data.*``
``.rodata``,        RODATA    the section bytes; ``BPF_F_RDONLY_PROG``  yes
``.rodata.*``
``.bss``, ``.bss.*``  BSS     zeros (NOBITS)                         no
``.kconfig``        KCONFIG   filled by the loader from kconfig externs  yes
==================  ========  =====================================  ========

(libbpf's ``bpf_object__elf_collect`` / ``bpf_object__init_internal_map``.)
The map's ``btf_value_type_id`` is the DATASEC named like the section (none
for sections clang gives no DATASEC, e.g. ``.rodata.cst16``); the map is
``BPF_F_MMAPABLE`` when that DATASEC holds at least one non-static VAR.

Map names follow libbpf's ``internal_map_name`` (see :func:`internal_map_name`).

Clang leaves every DATASEC's size and its global VARs' offsets at 0; libbpf
fills them in from the ELF section size and symbol values before it reads
maps (``btf_fixup_datasec``), marks VARs whose symbol is ``STV_HIDDEN`` /
``STV_INTERNAL`` static, and sorts each DATASEC's VARs by offset.
:func:`fixup_datasecs` computes the same, without changing the parsed BTF:
the object's map order and map offsets come from it, and a loader that
sends the object's BTF to the kernel must apply it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sigbpf.elf.maps import MapFlags, MapKind, MapSpec, MapType
from sigbpf.elf.sections import Section, SectionType, Symbol, SymbolBinding, SymbolType, Visibility
from sigbpf.errors import ELFError, NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf import BTF, Datasec

#: ``BPF_OBJ_NAME_LEN``: map and program names hold at most 15 characters.
OBJ_NAME_LEN = 16
KCONFIG_SECTION = ".kconfig"
KSYMS_SECTION = ".ksyms"


@dataclass(frozen=True, slots=True)
class DatasecFixup:
    """libbpf's DATASEC fix-ups: id -> the DATASEC as libbpf sees it, and VARs made static.

    ``.ksyms`` and ``.kconfig`` are only sorted here, as in libbpf's
    ``btf_fixup_datasec``; libbpf rewrites them earlier, in
    ``bpf_object__collect_externs`` (ksym VARs become 4-byte ``int`` VARs at
    ``4 * i``, extern FUNCs are replaced by a ``dummy_ksym`` VAR and made
    GLOBAL; kconfig VARs become allocated at their
    :attr:`~sigbpf.elf.externs.Extern.kconfig_offset`).  Whoever sends the
    object's BTF to a kernel must do that too.
    """

    datasecs: dict[int, "Datasec"]
    static_vars: frozenset[int]

    def datasec(self, btf: "BTF", type_id: int) -> "Datasec":
        """The fixed-up DATASEC *type_id* (the parsed one when nothing changed)."""
        return self.datasecs.get(type_id) or btf[type_id]  # type: ignore[return-value]


def fixup_datasecs(btf: "BTF | None", sections: tuple[Section, ...], symbols: tuple[Symbol, ...],
                   *, file: str | None = None) -> DatasecFixup:
    """libbpf's ``bpf_object_fixup_btf``: sizes, offsets, hidden VARs, VAR order."""
    from sigbpf.btf import Kind, VarLinkage

    if btf is None:
        return DatasecFixup({}, frozenset())
    by_name: dict[str, Section] = {}
    for sec in sections:
        by_name.setdefault(sec.name, sec)
    var_syms: dict[str, Symbol] = {}
    for sym in symbols:
        if sym.type == SymbolType.OBJECT and sym.bind in (SymbolBinding.GLOBAL, SymbolBinding.WEAK):
            var_syms.setdefault(sym.name, sym)
    fixed: dict[int, Datasec] = {}
    static: set[int] = set()
    for sec_id in btf.ids_of_kind(Kind.DATASEC):
        t = btf[sec_id]
        name = t.name
        entries = list(t.vars)  # type: ignore[union-attr]
        size = t.size  # type: ignore[union-attr]
        if name not in (KCONFIG_SECTION, KSYMS_SECTION):
            fix_offsets = size == 0
            if fix_offsets:
                sec = by_name.get(name)
                size = sec.size if sec is not None else 0
                if not size:
                    raise ELFError(f"sec '{name}': failed to determine size from ELF", file=file,
                                   type_id=sec_id)
            for i, vi in enumerate(entries):
                if btf.kind_of(vi.type) != Kind.VAR:
                    raise ELFError(f"sec '{name}': unexpected non-VAR type found", file=file,
                                   type_id=vi.type)
                var = btf[vi.type]
                if var.linkage in (VarLinkage.STATIC, VarLinkage.GLOBAL_EXTERN):  # type: ignore[union-attr]
                    continue
                sym = var_syms.get(var.name)
                if sym is None:
                    raise ELFError(f"sec '{name}': failed to find ELF symbol for VAR '{var.name}'",
                                   file=file, type_id=vi.type)
                if fix_offsets:
                    entries[i] = replace(vi, offset=sym.value)
                if sym.visibility in (Visibility.HIDDEN, Visibility.INTERNAL):
                    static.add(vi.type)
        entries.sort(key=lambda vi: vi.offset)  # libbpf: qsort by offset
        new = replace(t, size=size, vars=tuple(entries))
        if new != t:
            fixed[sec_id] = new  # type: ignore[assignment]
    return DatasecFixup(fixed, frozenset(static))


def data_kind(section: Section) -> MapKind | None:
    """The global data kind of *section*, or None if it is not global data (libbpf's rule)."""
    name = section.name
    if section.type == SectionType.PROGBITS and section.size > 0 and not section.is_exec:
        if name == ".data" or name.startswith(".data."):
            return MapKind.DATA
        if name == ".rodata" or name.startswith(".rodata."):
            return MapKind.RODATA
    if section.type == SectionType.NOBITS and (name == ".bss" or name.startswith(".bss.")):
        return MapKind.BSS
    return None


def object_name(path_or_name: str) -> str:
    """libbpf's ``bpf_object`` name: the file's base name, at most 15 characters, cut at the first dot."""
    base = path_or_name.rsplit("/", 1)[-1][: OBJ_NAME_LEN - 1]
    return base.split(".", 1)[0]


def internal_map_name(obj_name: str, real_name: str) -> str:
    """libbpf's ``internal_map_name``: the kernel-visible name of a global data map.

    The suffix is the section name with at least 7 characters reserved
    (``.rodata``), at most 15; the prefix is as much of the object name as
    fits in the remaining 15 - suffix characters -- except for custom
    sections with a second dot (``.data.custom``), which get no prefix.
    Characters other than ``[A-Za-z0-9_.]`` become ``_``.  E.g. object
    ``my_object_name``: ``.rodata`` -> ``my_objec.rodata``, ``.bss`` ->
    ``my_objec.bss``, ``.kconfig`` -> ``my_obje.kconfig``,
    ``.rodata.abracadabra`` -> ``.rodata.abracad``.
    """
    limit = OBJ_NAME_LEN - 1
    sfx_len = min(max(7, len(real_name)), limit)
    pfx_len = 0 if "." in real_name[1:] else min(limit - sfx_len, len(obj_name))
    name = (obj_name[:pfx_len] + real_name[:sfx_len])[:limit]
    return "".join(c if (c.isascii() and c.isalnum()) or c in "_." else "_" for c in name)


def _datasec_info(btf: "BTF | None", real_name: str, fixup: DatasecFixup) -> tuple[int, bool]:
    """(DATASEC id or 0, whether any of its VARs is non-static) for *real_name* (``map_is_mmapable``)."""
    from sigbpf.btf import Kind, VarLinkage

    if btf is None:
        return 0, False
    try:
        sec_id = btf.find_by_name_kind(real_name, Kind.DATASEC)
    except NotFoundError:
        return 0, False
    mmapable = False
    for vi in fixup.datasec(btf, sec_id).vars:
        if (btf.kind_of(vi.type) == Kind.VAR and vi.type not in fixup.static_vars
                and btf[vi.type].linkage != VarLinkage.STATIC):  # type: ignore[union-attr]
            mmapable = True
    return sec_id, mmapable


def global_data_maps(sections: tuple[Section, ...], btf: "BTF | None", obj_name: str,
                     fixup: DatasecFixup) -> list[MapSpec]:
    """One internal map per non-empty global data section, in section order."""
    out: list[MapSpec] = []
    for sec in sections:
        kind = data_kind(sec)
        if kind is None or sec.size == 0:
            continue
        value_id, mmapable = _datasec_info(btf, sec.name, fixup)
        flags = MapFlags.RDONLY_PROG if kind == MapKind.RODATA else MapFlags.NONE
        if mmapable:
            flags |= MapFlags.MMAPABLE
        out.append(MapSpec(
            name=internal_map_name(obj_name, sec.name), kind=kind, type=MapType.ARRAY,
            key_size=4, value_size=sec.size, max_entries=1, flags=int(flags),
            value_type_id=value_id, section=sec.name, section_index=sec.index,
            data=None if kind == MapKind.BSS else sec.data, frozen=kind == MapKind.RODATA))
    return out


def kconfig_map(size: int, btf: "BTF | None", obj_name: str, symtab_index: int) -> MapSpec:
    """The ``.kconfig`` map libbpf adds when there are kconfig externs (``size`` bytes)."""
    value_id, _ = _datasec_info(btf, KCONFIG_SECTION, DatasecFixup({}, frozenset()))
    # libbpf has already turned the kconfig VARs into allocated ones when it
    # decides mmapability, so a .kconfig map with a DATASEC is always mmapable.
    flags = MapFlags.RDONLY_PROG | (MapFlags.MMAPABLE if value_id else MapFlags.NONE)
    return MapSpec(name=internal_map_name(obj_name, KCONFIG_SECTION), kind=MapKind.KCONFIG,
                   type=MapType.ARRAY, key_size=4, value_size=size, max_entries=1,
                   flags=int(flags), value_type_id=value_id, section=KCONFIG_SECTION,
                   section_index=symtab_index, data=None, frozen=True)
