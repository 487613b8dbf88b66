"""Map specifications of a BPF object: BTF-defined maps in ``.maps``.

A map declared in C as::

    struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 128);
             __type(key, struct k); __type(value, u64); } m SEC(".maps");

is a global VAR in the BTF DATASEC ``.maps`` whose type is a struct; each
member's *name* is a map attribute and its *type* encodes the value:
``__uint(x, N)`` is ``int (*x)[N]`` (a pointer to an array of N elements),
``__type(key, T)`` is ``T *key``, ``__ulong(x, N)`` is an enum with one value
N, ``__array(values, struct inner)`` is a zero-length array of pointers to
the inner map's definition.  :func:`parse_btf_maps` reads them exactly like
libbpf's ``bpf_object__init_user_btf_maps`` / ``parse_btf_map_def`` (strict
mode: unknown attributes are an error) and :func:`collect_init_slots` reads
``.rel.maps`` (the initial contents of map-in-map and prog-array maps) like
``bpf_object__collect_map_relos``.  Messages repeat libbpf's.

Global data maps (``.data``, ``.rodata``, ``.bss``...) are made in
:mod:`sigbpf.elf.datasec`; both kinds are :class:`MapSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import TYPE_CHECKING, Callable

from sigbpf.errors import BTFError, ELFError, NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf import BTF, Datasec
    from sigbpf.elf.sections import RelEntry, Section, Symbol

MAPS_SECTION = ".maps"


class MapType(IntEnum):
    """``enum bpf_map_type``."""

    UNSPEC = 0
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    STACK_TRACE = 7
    CGROUP_ARRAY = 8
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    ARRAY_OF_MAPS = 12
    HASH_OF_MAPS = 13
    DEVMAP = 14
    SOCKMAP = 15
    CPUMAP = 16
    XSKMAP = 17
    SOCKHASH = 18
    CGROUP_STORAGE = 19
    REUSEPORT_SOCKARRAY = 20
    PERCPU_CGROUP_STORAGE = 21
    QUEUE = 22
    STACK = 23
    SK_STORAGE = 24
    DEVMAP_HASH = 25
    STRUCT_OPS = 26
    RINGBUF = 27
    INODE_STORAGE = 28
    TASK_STORAGE = 29
    BLOOM_FILTER = 30
    USER_RINGBUF = 31
    CGRP_STORAGE = 32
    ARENA = 33


class MapFlags(IntFlag):
    """``map_flags`` bits of BPF_MAP_CREATE (``BPF_F_*``)."""

    NONE = 0
    NO_PREALLOC = 1
    NO_COMMON_LRU = 2
    NUMA_NODE = 4
    RDONLY = 8
    WRONLY = 16
    STACK_BUILD_ID = 32
    ZERO_SEED = 64
    RDONLY_PROG = 128
    WRONLY_PROG = 256
    CLONE = 512
    MMAPABLE = 1024
    PRESERVE_ELEMS = 2048
    INNER_MAP = 4096


class MapKind(IntEnum):
    """libbpf's ``enum libbpf_map_type``: where a map comes from."""

    USER = 0  # BTF-defined, in .maps (LIBBPF_MAP_UNSPEC)
    DATA = 1
    BSS = 2
    RODATA = 3
    KCONFIG = 4


class Pinning(IntEnum):
    """``pinning`` attribute (libbpf's ``enum libbpf_pin_type``)."""

    NONE = 0
    BY_NAME = 1


@dataclass(frozen=True, slots=True)
class InitSlot:
    """One initial element of a map-in-map or prog-array map (from ``.rel.maps``)."""

    index: int
    target: str  # a map name (map-in-map) or an entry program name (prog array)


@dataclass(frozen=True, slots=True)
class MapSpec:
    """Everything needed to create one map, as the object describes it.

    ``key_type_id``/``value_type_id`` are ids in the object's BTF (0 = none);
    for global data maps ``value_type_id`` is the section's DATASEC, as the
    kernel wants.  ``data`` is the initial value of a global data map
    (``None``: zero-initialised, ``.bss`` and ``.kconfig``).  ``frozen`` maps
    (``.rodata``, ``.kconfig``) are frozen by the loader after the update.
    ``max_entries`` is as declared: libbpf rounds ring buffers up to a
    power-of-2 multiple of the page size at load time.
    """

    name: str
    kind: MapKind
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    numa_node: int = 0
    map_extra: int = 0
    pinning: int = 0
    key_type_id: int = 0
    value_type_id: int = 0
    section: str = MAPS_SECTION
    section_index: int = 0
    section_offset: int = 0
    btf_var_id: int = 0
    data: bytes | None = None
    frozen: bool = False
    inner: "MapSpec | None" = None
    init_slots: tuple[InitSlot, ...] = ()

    @property
    def type_name(self) -> str:
        try:
            return MapType(self.type).name
        except ValueError:
            return str(self.type)

    @property
    def is_map_in_map(self) -> bool:
        return self.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)


@dataclass(slots=True)
class _Def:
    """libbpf's ``struct btf_map_def`` while it is being filled."""

    type: int = 0
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0
    flags: int = 0
    numa_node: int = 0
    map_extra: int = 0
    pinning: int = 0
    key_type_id: int = 0
    value_type_id: int = 0
    inner: "_Def | None" = None


def parse_btf_maps(btf: "BTF", maps_section: "Section", datasec: "Datasec | None" = None, *,
                   file: str | None = None) -> list[MapSpec]:
    """The BTF-defined maps of ``.maps``, in DATASEC order (libbpf's map order).

    *datasec* is the ``.maps`` DATASEC after libbpf's fix-up (offsets from
    the ELF symbols, sorted by offset; see :func:`sigbpf.elf.datasec.fixup_datasecs`);
    by default the parsed one.
    """
    from sigbpf.btf import Kind, VarLinkage

    try:
        sec_id = btf.find_by_name_kind(MAPS_SECTION, Kind.DATASEC)
    except NotFoundError:
        raise ELFError(f"DATASEC '{MAPS_SECTION}' not found", file=file) from None
    if datasec is None:
        datasec = btf[sec_id]  # type: ignore[assignment]
    out: list[MapSpec] = []
    for var_idx, vi in enumerate(datasec.vars):  # type: ignore[union-attr]
        where = {"file": file, "type_id": vi.type}
        try:
            var = btf[vi.type]
        except (BTFError, NotFoundError):
            raise ELFError(f"map #{var_idx}: type [{vi.type}] not found", **where) from None
        name = var.name
        if not name:
            raise ELFError(f"map #{var_idx}: empty name.", **where)
        if vi.offset + vi.size > maps_section.size:
            raise ELFError(f"map '{name}' BTF data is corrupted.", **where)
        if var.kind != Kind.VAR:
            raise ELFError(f"map '{name}': unexpected var kind {var.kind.name.lower()}.", **where)
        if var.linkage != VarLinkage.GLOBAL_ALLOCATED:  # type: ignore[union-attr]
            linkage = {0: "static", 2: "extern"}.get(int(var.linkage), "unknown")  # type: ignore[union-attr]
            raise ELFError(f"map '{name}': unsupported map linkage {linkage}.", **where)
        def_id = btf.resolve_modifiers(var.type)  # type: ignore[union-attr]
        def_t = btf[def_id]
        if def_t.kind != Kind.STRUCT:
            raise ELFError(f"map '{name}': unexpected def kind {def_t.kind.name.lower()}.", **where)
        if def_t.size > vi.size:  # type: ignore[union-attr]
            raise ELFError(f"map '{name}': invalid def size.", **where)
        d = _Def()
        _parse_map_def(name, btf, def_id, d, inner_allowed=True, file=file)
        inner = None
        if d.inner is not None:
            inner = _spec(f"{name}.inner", d.inner, maps_section.index, vi.offset, 0)
        out.append(_spec(name, d, maps_section.index, vi.offset, vi.type, inner=inner))
    return out


def _spec(name: str, d: _Def, sec_index: int, offset: int, var_id: int,
          inner: MapSpec | None = None) -> MapSpec:
    return MapSpec(name=name, kind=MapKind.USER, type=d.type, key_size=d.key_size,
                   value_size=d.value_size, max_entries=d.max_entries, flags=d.flags,
                   numa_node=d.numa_node, map_extra=d.map_extra, pinning=d.pinning,
                   key_type_id=d.key_type_id, value_type_id=d.value_type_id,
                   section=MAPS_SECTION, section_index=sec_index, section_offset=offset,
                   btf_var_id=var_id, inner=inner)


def _parse_map_def(map_name: str, btf: "BTF", def_id: int, d: _Def, *, inner_allowed: bool,
                   file: str | None) -> None:
    """libbpf's ``parse_btf_map_def`` (strict)."""
    from sigbpf.btf import Kind

    def fail(msg: str, type_id: int = def_id) -> ELFError:
        return ELFError(f"map '{map_name}': {msg}", file=file, type_id=type_id)

    def pointee(member, what: str) -> int:
        t = btf[member.type]
        if t.kind != Kind.PTR:
            raise fail(f"{what} spec is not PTR: {t.kind.name.lower()}.", member.type)
        return t.type  # type: ignore[union-attr]

    def resolved_size(type_id: int, what: str) -> int:
        try:
            return btf.resolved_size(type_id)
        except BTFError as err:
            raise fail(f"can't determine {what} size for type [{type_id}]: {err.message}.",
                       type_id) from None

    members = btf[def_id].members  # type: ignore[union-attr]
    for i, m in enumerate(members):
        name = m.name
        if name == "type":
            d.type = _field_int(map_name, btf, m, fail)
        elif name == "max_entries":
            d.max_entries = _field_int(map_name, btf, m, fail)
        elif name == "map_flags":
            d.flags = _field_int(map_name, btf, m, fail)
        elif name == "numa_node":
            d.numa_node = _field_int(map_name, btf, m, fail)
        elif name in ("key_size", "value_size"):
            size = _field_int(map_name, btf, m, fail)
            _set_size(d, name[:-5], size, fail)
        elif name in ("key", "value"):
            target = pointee(m, name)
            _set_size(d, name, resolved_size(target, name), fail)
            setattr(d, f"{name}_type_id", target)
        elif name == "values":
            is_mim = d.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)
            is_prog_array = d.type == MapType.PROG_ARRAY
            desc = "map-in-map inner" if is_mim else "prog-array value"
            if not inner_allowed:
                raise fail("multi-level inner maps not supported.")
            if i != len(members) - 1:
                raise fail(f"'{name}' member should be last.")
            if not is_mim and not is_prog_array:
                raise fail("should be map-in-map or prog-array.")
            if d.value_size and d.value_size != 4:
                raise fail(f"conflicting value size {d.value_size} != 4.")
            d.value_size = 4
            arr = btf[m.type]
            if arr.kind != Kind.ARRAY or arr.nelems:  # type: ignore[union-attr]
                raise fail(f"{desc} spec is not a zero-sized array.", m.type)
            ptr_id = btf.resolve_modifiers(arr.type)  # type: ignore[union-attr]
            if btf.kind_of(ptr_id) != Kind.PTR:
                raise fail(f"{desc} def is of unexpected kind {btf.kind_of(ptr_id).name.lower()}.",
                           ptr_id)
            target_id = btf.resolve_modifiers(btf[ptr_id].type)  # type: ignore[union-attr]
            kind = btf.kind_of(target_id)
            if is_prog_array:
                if kind != Kind.FUNC_PROTO:
                    raise fail(f"prog-array value def is of unexpected kind {kind.name.lower()}.",
                               target_id)
                continue
            if kind != Kind.STRUCT:
                raise fail(f"map-in-map inner def is of unexpected kind {kind.name.lower()}.",
                           target_id)
            d.inner = _Def()
            _parse_map_def(f"{map_name}.inner", btf, target_id, d.inner, inner_allowed=False,
                           file=file)
        elif name == "pinning":
            if not inner_allowed:
                raise fail("inner def can't be pinned.")
            val = _field_int(map_name, btf, m, fail)
            if val not in (Pinning.NONE, Pinning.BY_NAME):
                raise fail(f"invalid pinning value {val}.")
            d.pinning = val
        elif name == "map_extra":
            d.map_extra = _field_long(map_name, btf, m, fail)
        else:
            raise fail(f"unknown field '{name}'.")
    if d.type == MapType.UNSPEC:
        raise fail("map type isn't specified.")


def _set_size(d: _Def, what: str, size: int, fail: Callable[..., ELFError]) -> None:
    old = getattr(d, f"{what}_size")
    if old and old != size:
        raise fail(f"conflicting {what} size {old} != {size}.")
    setattr(d, f"{what}_size", size)


def _field_int(map_name: str, btf: "BTF", m, fail: Callable[..., ELFError]) -> int:
    """libbpf's ``get_map_field_int``: ``int (*name)[N]`` encodes N."""
    from sigbpf.btf import Kind

    t_id = btf.resolve_modifiers(m.type)
    t = btf[t_id]
    if t.kind != Kind.PTR:
        raise fail(f"attr '{m.name}': expected PTR, got {t.kind.name.lower()}.", t_id)
    arr = btf[t.type]  # type: ignore[union-attr]
    if arr.kind != Kind.ARRAY:
        raise fail(f"attr '{m.name}': expected ARRAY, got {arr.kind.name.lower()}.", t.type)  # type: ignore[union-attr]
    return arr.nelems  # type: ignore[union-attr]


def _field_long(map_name: str, btf: "BTF", m, fail: Callable[..., ELFError]) -> int:
    """libbpf's ``get_map_field_long``: a pointer-to-array or a one-value enum."""
    from sigbpf.btf import Kind

    t_id = btf.resolve_modifiers(m.type)
    t = btf[t_id]
    if t.kind == Kind.PTR:
        return _field_int(map_name, btf, m, fail)
    if t.kind not in (Kind.ENUM, Kind.ENUM64):
        raise fail(f"attr '{m.name}': expected ENUM or ENUM64, got {t.kind.name.lower()}.", t_id)
    if len(t.values) != 1:  # type: ignore[union-attr]
        raise fail(f"attr '{m.name}': invalid __ulong", t_id)
    return t.values[0].value & 0xFFFFFFFFFFFFFFFF  # type: ignore[union-attr]


def collect_init_slots(btf: "BTF", maps: list[MapSpec], rels: "tuple[RelEntry, ...]",
                       symbols: "tuple[Symbol, ...]", entry_programs: dict[str, tuple[int, int]],
                       datasec: "Datasec", *, file: str | None = None) -> list[MapSpec]:
    """Apply ``.rel.maps``: the initial slots of map-in-map and prog-array maps.

    *entry_programs* maps an entry program's name to (section index, byte
    offset), to check, as libbpf does, that a prog-array slot names an entry
    program.  Returns *maps* with ``init_slots`` filled in.
    """
    from dataclasses import replace

    user = [m for m in maps if m.kind == MapKind.USER]
    sizes = {vi.type: vi.size for vi in datasec.vars}
    by_name = {m.name: m for m in maps}
    slots: dict[str, dict[int, str]] = {}
    for n, rel in enumerate(rels):
        sym = symbols[rel.symbol]
        name = sym.name or "<?>"
        where = {"file": file, "offset": rel.offset}
        owner = None
        for m in user:
            if m.section_offset <= rel.offset and rel.offset + 8 <= m.section_offset + sizes[m.btf_var_id]:
                owner = m
                break
        if owner is None:
            raise ELFError(f".maps relo #{n}: cannot find map '{name}' at rel->r_offset {rel.offset}",
                           **where)
        if owner.is_map_in_map:
            if sym.shndx != owner.section_index:
                raise ELFError(f".maps relo #{n}: '{name}' isn't a BTF-defined map", **where)
            if owner.type == MapType.HASH_OF_MAPS and owner.key_size != 4:
                raise ELFError(f".maps relo #{n}: hash-of-maps '{owner.name}' should have key size 4.",
                               **where)
            if name not in by_name:
                raise ELFError(f".maps relo #{n}: '{name}' isn't a valid map reference", **where)
        elif owner.type == MapType.PROG_ARRAY:
            if entry_programs.get(name) != (sym.shndx, sym.value):
                raise ELFError(f".maps relo #{n}: '{name}' isn't an entry-point program", **where)
        else:
            raise ELFError(f".maps relo #{n}: map '{owner.name}' is neither map-in-map nor prog array",
                           **where)
        def_t = btf[btf.resolve_modifiers(btf[owner.btf_var_id].type)]  # type: ignore[union-attr]
        members = def_t.members  # type: ignore[union-attr]
        if not members or members[-1].name != "values":
            raise ELFError(f".maps relo #{n}: map '{owner.name}' has no 'values' member", **where)
        moff = members[-1].offset // 8
        rel_off = rel.offset - owner.section_offset
        if rel_off < moff or (rel_off - moff) % 8:
            raise ELFError(f".maps relo #{n}: bad slot offset {rel_off} in map '{owner.name}'", **where)
        slots.setdefault(owner.name, {})[(rel_off - moff) // 8] = name
    out = []
    for m in maps:
        if m.name in slots:
            m = replace(m, init_slots=tuple(InitSlot(i, t) for i, t in sorted(slots[m.name].items())))
        out.append(m)
    return out

