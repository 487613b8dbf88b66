"""The portable artifact: its model (frozen dataclasses) and its byte container.

An :class:`Artifact` is everything a loader needs to load an object's programs
into *any* kernel, in the form ``BPF_PROG_LOAD`` takes, with nothing that
depends on a machine or a kernel (no kernel BTF ids, no fds, no paths, no
timestamps).  docs/FORMAT.md is the specification; this module is its
reference implementation and follows it to the byte::

    from sigbpf.artifact.format import Artifact
    art = Artifact.decode(data, file="x.sbpf")    # ArtifactError names section + offset
    data = art.encode()                           # canonical bytes, deterministic

The container is a header, a table of typed sections and the sections.  Core
sections (types 1-12) are always present, once, in type order; extension
sections (types >= 0x100, e.g. signatures, see the "Signatures" chapter of
FORMAT.md) follow in the order they were appended and are kept as raw bytes
(:class:`ExtensionSection`).  Decoding is strict: a byte string is accepted
only if re-encoding its model gives the very same bytes (one model, one
encoding), so nothing can hide in padding or in unused table space.

What the decoder checks is the *format* (layout, ranges, counts, references
between sections).  What the instructions mean (e.g. whether a src_reg 3
call's imm names a FUNC in the program BTF) is the resolver's business.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from enum import IntEnum, IntFlag

from sigbpf.asm import Instruction
from sigbpf.elf.btf_ext import LineColumn
from sigbpf.errors import ArtifactError, InstructionError, NotFoundError

__all__ = [
    "MAGIC", "VERSION_MAJOR", "VERSION_MINOR", "HEADER_SIZE", "SECTION_ENTRY_SIZE",
    "EXTENSION_BASE", "SIGNATURE_FIRST", "SIGNATURE_LAST", "SectionType", "MapKind",
    "ArtifactMapFlags", "KfuncFlags", "KfuncSiteKind", "FuncInfo", "LineInfo", "CoreRelo",
    "KfuncSite", "Kfunc", "Program", "Map", "ExtensionSection", "Artifact", "is_artifact",
    "ExternFlags", "KconfigExtern", "Ksym", "KsymSite", "AttachTarget", "SlotKind", "MapSlot",
]

#: First 8 bytes of every artifact.
MAGIC = b"SIGBPFA\x00"
VERSION_MAJOR = 1
#: The newest minor version this reader knows.  A writer uses the *lowest* minor version
#: that can express the artifact (1.0 unless it needs a 1.1 section or flag), so artifacts
#: without kconfig, ksyms, attach targets or map fix-ups stay readable by 1.0 readers.
VERSION_MINOR = 1
HEADER_SIZE = 32
SECTION_ENTRY_SIZE = 16
ALIGN = 8
#: Section types from here on are extensions, kept as raw bytes by readers.
EXTENSION_BASE = 0x100
#: Range of section types reserved for signatures (FORMAT.md, "Signatures").
SIGNATURE_FIRST = 0x100
SIGNATURE_LAST = 0x1FF

_HEADER = struct.Struct("<8sHHIIIII")  # magic, major, minor, header_size, nsec, table_off, flags, reserved
_ENTRY = struct.Struct("<IIII")  # type, entry_size, offset, size
assert _HEADER.size == HEADER_SIZE and _ENTRY.size == SECTION_ENTRY_SIZE


class SectionType(IntEnum):
    """Type of a section in the section table (FORMAT.md, "Sections")."""

    META = 1
    STRTAB = 2
    BTF = 3
    PROGRAMS = 4
    INSNS = 5
    FUNC_INFO = 6
    LINE_INFO = 7
    CORE_RELOS = 8
    KFUNC_SITES = 9
    MAPS = 10
    MAP_DATA = 11
    KFUNCS = 12
    # 1.1: names bound at load time (FORMAT.md 2.5-2.8)
    KCONFIG = 13
    KSYMS = 14
    KSYM_SITES = 15
    ATTACH = 16
    MAP_SLOTS = 17

    @property
    def label(self) -> str:
        return self.name.lower()


class MapKind(IntEnum):
    """Where a map comes from in the object (numbered like libbpf's ``enum libbpf_map_type``
    and :class:`sigbpf.elf.maps.MapKind`)."""

    BTF_DEFINED = 0  # SEC(".maps")
    DATA = 1  # .data and .data.*
    BSS = 2  # .bss and .bss.* (all zero)
    RODATA = 3  # .rodata and .rodata.* (frozen after the initial contents are written)
    KCONFIG = 4  # .kconfig externs: contents are the running kernel's (not built yet)


class ArtifactMapFlags(IntFlag):
    """Artifact-level map flags, for the loader.  Not the kernel's ``map_flags``: those are
    :class:`sigbpf.elf.maps.MapFlags` (``BPF_F_*``), stored in :attr:`Map.map_flags`."""

    NONE = 0
    FROZEN = 1  # loader calls BPF_MAP_FREEZE after writing the initial contents
    # 1.1: values a loader computes for the running kernel (libbpf's load-time fix-ups)
    MAX_ENTRIES_CPUS = 2  # max_entries := number of possible CPUs (PERF_EVENT_ARRAY, none declared)
    RINGBUF_SIZE = 4  # max_entries := rounded up to a power-of-2 multiple of the page size
    INNER_TEMPLATE = 8  # the inner-map prototype of a map-in-map: created only as inner_map_fd


class KfuncFlags(IntFlag):
    """Flags of a kfunc table entry."""

    NONE = 0
    WEAK = 1  # declared __weak: may be absent from the kernel


class ExternFlags(IntFlag):
    """Flags of a kconfig extern or ksym table entry (1.1)."""

    NONE = 0
    WEAK = 1  # declared __weak: a kernel may lack it (its value is then 0)
    SIGNED = 2  # kconfig: a signed integer type


class SlotKind(IntEnum):
    """What a map's initial slot holds (1.1 MAP_SLOTS: ``.values = { [i] = &x }``)."""

    MAP = 1  # a map-in-map slot: the fd of another map of the artifact
    PROG = 2  # a prog-array slot: the fd of a program of the artifact


class KfuncSiteKind(IntEnum):
    """What kind of instruction refers to a kfunc."""

    CALL = 1  # call, src_reg 3 (BPF_PSEUDO_KFUNC_CALL_PROG_BTF), imm = prog-BTF FUNC id
    KSYM_ADDR = 2  # ld_imm64, src_reg 3 (BPF_PSEUDO_BTF_ID), imm = prog-BTF FUNC id: &kfunc


# ----------------------------------------------------------------- records
# FuncInfo / LineInfo / CoreRelo are the kernel's bpf_func_info / bpf_line_info /
# bpf_core_relo exactly as BPF_PROG_LOAD takes them (program-relative, kernel units).
# The object-side records of the same names (sigbpf.elf.btf_ext) are section-relative
# instruction slots with their BTF strings decoded; artifact.link converts one to the other.

_FUNC_INFO = struct.Struct("<II")
_LINE_INFO = struct.Struct("<IIII")
_CORE_RELO = struct.Struct("<IIII")
_KFUNC_SITE = struct.Struct("<III")
_KFUNC = struct.Struct("<III")
_META = struct.Struct("<II")
_PROGRAM = struct.Struct("<18I")
_MAP = struct.Struct("<12IiIIIQ")
_KCONFIG = struct.Struct("<5I")  # name_off, type, offset, size, flags
_KSYM = struct.Struct("<IIII")  # name_off, btf_id, type_id, flags
_KSYM_SITE = struct.Struct("<III")  # program, insn, ksym
_ATTACH = struct.Struct("<IIIII")  # program, btf kind, name_off, module_off, member_off
_MAP_SLOT = struct.Struct("<IIII")  # map, slot, kind, target
_U32_MAX = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class FuncInfo:
    """``struct bpf_func_info``: ``insn_off`` in instructions, ``type_id`` a prog-BTF FUNC."""

    insn_off: int
    type_id: int

    def pack(self) -> bytes:
        """The kernel's 8-byte record (little-endian)."""
        return _FUNC_INFO.pack(self.insn_off, self.type_id)


@dataclass(frozen=True, slots=True)
class LineInfo(LineColumn):
    """``struct bpf_line_info``: ``insn_off`` in instructions, string offsets into prog BTF."""

    insn_off: int
    file_name_off: int
    line_off: int
    line_col: int

    def pack(self) -> bytes:
        """The kernel's 16-byte record (little-endian)."""
        return _LINE_INFO.pack(self.insn_off, self.file_name_off, self.line_off, self.line_col)


@dataclass(frozen=True, slots=True)
class CoreRelo:
    """``struct bpf_core_relo``: ``insn_off`` in BYTES (as the kernel takes it), ``type_id``
    a prog-BTF type, ``access_str_off`` a prog-BTF string, ``kind`` a bpf_core_relo_kind."""

    insn_off: int
    type_id: int
    access_str_off: int
    kind: int

    def pack(self) -> bytes:
        """The kernel's 16-byte record (little-endian)."""
        return _CORE_RELO.pack(self.insn_off, self.type_id, self.access_str_off, self.kind)


@dataclass(frozen=True, slots=True)
class KfuncSite:
    """An instruction of a program that names a kfunc: ``insn`` is its slot index."""

    insn: int
    kfunc: int  # index into Artifact.kfuncs
    kind: KfuncSiteKind = KfuncSiteKind.CALL


@dataclass(frozen=True, slots=True)
class Kfunc:
    """One kfunc the artifact calls: its name and the prog-BTF FUNC carrying its prototype."""

    name: str
    btf_id: int
    weak: bool = False


@dataclass(frozen=True, slots=True)
class KconfigExtern:
    """A ``.kconfig`` extern: its value is the running kernel's, written by the loader into
    the KCONFIG map at ``offset`` (libbpf's ``kcfg`` rules; ``type`` is libbpf's
    ``enum kcfg_type``, :class:`sigbpf.elf.externs.KconfigType`)."""

    name: str
    type: int
    offset: int
    size: int
    weak: bool = False
    signed: bool = False


@dataclass(frozen=True, slots=True)
class Ksym:
    """A kernel variable a program addresses (``extern ... __ksym``): ``btf_id`` is its VAR in
    the program BTF.  Typed: bound to the kernel's VAR of that name (``BPF_PSEUDO_BTF_ID``);
    typeless (``extern const void x __ksym``): to its /proc/kallsyms address."""

    name: str
    btf_id: int
    #: The type the variable was declared with, in the program BTF (0: typeless).  The
    #: VAR's own type is ``int`` there: libbpf's fix-up, which the kernel needs.
    type_id: int = 0
    weak: bool = False

    @property
    def typed(self) -> bool:
        return self.type_id != 0


@dataclass(frozen=True, slots=True)
class KsymSite:
    """An ``ld_imm64`` of a program that loads a ksym (the loader always rewrites it)."""

    insn: int
    ksym: int  # index into Artifact.ksyms


@dataclass(frozen=True, slots=True)
class AttachTarget:
    """What a program attaches to, by name: the kernel BTF type a loader looks up for
    ``attach_btf_id`` (libbpf's ``find_kernel_btf_id``).  ``name`` has libbpf's prefix
    (``bpf_lsm_``, ``bpf_iter_``, ``btf_trace_``); ``kind`` is the BTF kind (FUNC 12 or
    TYPEDEF 8); ``module`` limits the search ("vmlinux" or a module name, from the
    section's ``module:function`` form; "" = vmlinux, then every module)."""

    name: str
    kind: int
    module: str = ""
    #: struct_ops (kind STRUCT 4): the member of the struct the program implements; the
    #: loader passes its index in the kernel's struct as ``expected_attach_type``.
    member: str = ""


@dataclass(frozen=True, slots=True)
class MapSlot:
    """An initial slot of a map-in-map or prog array: ``key`` gets the fd of map or program
    ``target`` (an index into the artifact's maps or programs)."""

    slot: int
    kind: SlotKind
    target: int


@dataclass(frozen=True, slots=True)
class Program:
    """One loadable program: linked instructions (subprograms appended) and its metadata."""

    name: str
    section: str
    prog_type: int
    insns: tuple[Instruction, ...]
    expected_attach_type: int = 0
    prog_flags: int = 0
    license: str = ""
    kern_version: int = 0
    attach_to: str = ""  # attach target name from the section (fentry/NAME ...), "" if none
    func_info: tuple[FuncInfo, ...] = ()
    line_info: tuple[LineInfo, ...] = ()
    core_relos: tuple[CoreRelo, ...] = ()
    kfunc_sites: tuple[KfuncSite, ...] = ()
    #: 1.1: the kernel BTF type to attach to (fentry/fexit/fmod_ret/lsm/tp_btf/iter), by name.
    attach: AttachTarget | None = None
    #: 1.1: instructions that load a ksym, ordered by ``insn``.
    ksym_sites: tuple[KsymSite, ...] = ()

    @property
    def autoload(self) -> bool:
        """libbpf's default: a section named ``?…`` is not loaded unless asked for."""
        return not self.section.startswith("?")

    @property
    def insn_bytes(self) -> bytes:
        """The instructions as the kernel takes them (8 bytes a slot, little-endian)."""
        return Instruction.encode(self.insns)

    @property
    def func_info_bytes(self) -> bytes:
        """``func_info`` as ``BPF_PROG_LOAD`` takes it (and the artifact stores it)."""
        return b"".join(r.pack() for r in self.func_info)

    @property
    def line_info_bytes(self) -> bytes:
        """``line_info`` as ``BPF_PROG_LOAD`` takes it (and the artifact stores it)."""
        return b"".join(r.pack() for r in self.line_info)

    @property
    def core_relo_bytes(self) -> bytes:
        """``core_relos`` as ``BPF_PROG_LOAD`` takes them (and the artifact stores them)."""
        return b"".join(r.pack() for r in self.core_relos)


@dataclass(frozen=True, slots=True)
class Map:
    """One map to create before loading: definition, prog-BTF key/value ids, initial contents.

    For global data maps ``btf_value_type_id`` is the DATASEC's id and ``btf_key_type_id``
    is 0 (the kernel's rule for DATASEC values).  ``initial_data`` is at most
    ``value_size`` bytes; the rest of the value is zero.
    """

    name: str
    kind: MapKind
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0
    section: str = ""
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    flags: ArtifactMapFlags = ArtifactMapFlags.NONE
    inner_map: int = -1  # index of the inner map's prototype, -1 if none
    pinning: int = 0
    numa_node: int = 0
    map_extra: int = 0
    initial_data: bytes = b""
    #: 1.1: initial slots (map-in-map: other maps; prog array: programs), ordered by slot.
    slots: tuple[MapSlot, ...] = ()

    @property
    def frozen(self) -> bool:
        return bool(self.flags & ArtifactMapFlags.FROZEN)

    @property
    def inner_template(self) -> bool:
        """The inner-map prototype of a map-in-map (not a map of the programs' own)."""
        return bool(self.flags & ArtifactMapFlags.INNER_TEMPLATE)


@dataclass(frozen=True, slots=True)
class ExtensionSection:
    """A section of type >= 0x100 (e.g. a signature), kept verbatim."""

    type: int
    data: bytes
    entry_size: int = 0


@dataclass(frozen=True, slots=True)
class Artifact:
    """A portable artifact (docs/FORMAT.md).  ``btf`` is the raw program BTF."""

    name: str
    btf: bytes
    programs: tuple[Program, ...] = ()
    maps: tuple[Map, ...] = ()
    kfuncs: tuple[Kfunc, ...] = ()
    extensions: tuple[ExtensionSection, ...] = field(default=())
    #: 1.1: ``.kconfig`` externs (values written into the KCONFIG map at load time).
    kconfig: tuple[KconfigExtern, ...] = ()
    #: 1.1: ksyms (kernel variables) the programs address.
    ksyms: tuple[Ksym, ...] = ()

    @property
    def version(self) -> tuple[int, int]:
        """The format version the artifact is written in: the lowest that can express it."""
        return (VERSION_MAJOR, 1 if _needs_1_1(self) else 0)

    # -------------------------------------------------------------- helpers
    def program(self, name: str) -> Program:
        """The program called *name* (:class:`NotFoundError` if there is none)."""
        for prog in self.programs:
            if prog.name == name:
                return prog
        raise NotFoundError(f"no program named {name!r} in the artifact")

    def without_extensions(self) -> "Artifact":
        """The same artifact with no extension sections (what signatures cover is defined
        by the Signatures chapter of FORMAT.md, not here)."""
        return replace(self, extensions=())

    def with_extension(self, section: ExtensionSection) -> "Artifact":
        """The same artifact with one more extension section appended."""
        if section.type < EXTENSION_BASE:
            raise ArtifactError(f"extension section type {section.type:#x} is below "
                                f"{EXTENSION_BASE:#x}")
        return replace(self, extensions=(*self.extensions, section))

    # ------------------------------------------------------------- encoding
    def encode(self) -> bytes:
        """The canonical bytes of this artifact (FORMAT.md, "Canonical form")."""
        return _encode(self)

    @classmethod
    def decode(cls, data: bytes, *, file: str | None = None) -> "Artifact":
        """Parse artifact bytes; any deviation from FORMAT.md raises :class:`ArtifactError`
        with the section and byte offset (and ``file``, when given)."""
        data = bytes(data)
        try:
            art = _decode(data)
        except ArtifactError as err:
            raise err.at(file=file)
        canonical = art.encode()
        if canonical != data:
            at = next((i for i, (a, b) in enumerate(zip(canonical, data)) if a != b),
                      min(len(canonical), len(data)))
            raise ArtifactError(
                f"not in canonical form (differs from its re-encoding at byte {at}; "
                f"{len(data)} bytes, canonical {len(canonical)})", file=file, offset=at)
        return art


def is_artifact(data: bytes) -> bool:
    """True when ``data`` starts with the artifact magic (for dispatch, e.g. ``inspect``)."""
    return bytes(data[:len(MAGIC)]) == MAGIC


# --------------------------------------------------------------- encoding


class _Strings:
    """Canonical string table: offset 0 is "", strings in first-use order, no duplicates."""

    def __init__(self) -> None:
        self._offsets: dict[str, int] = {"": 0}
        self._blob = bytearray(b"\0")

    def add(self, text: str) -> int:
        off = self._offsets.get(text)
        if off is None:
            raw = text.encode("utf-8")
            if b"\0" in raw:
                raise ArtifactError(f"string {text!r} contains a NUL byte")
            off = len(self._blob)
            self._blob += raw + b"\0"
            self._offsets[text] = off
        return off

    def bytes(self) -> bytes:
        return bytes(self._blob)


def _pad(n: int) -> int:
    return (-n) % ALIGN


def _check_u32(value: int, what: str) -> int:
    if not 0 <= value <= _U32_MAX:
        raise ArtifactError(f"{what} {value} does not fit in u32")
    return value


def _encode(art: Artifact) -> bytes:
    try:
        return _encode_unchecked(art)
    except struct.error as err:
        raise ArtifactError(f"cannot encode artifact: a field is out of range ({err})") from None


_FLAGS_1_0 = ArtifactMapFlags.FROZEN
_ALL_MAP_FLAGS = (ArtifactMapFlags.FROZEN | ArtifactMapFlags.MAX_ENTRIES_CPUS
                  | ArtifactMapFlags.RINGBUF_SIZE | ArtifactMapFlags.INNER_TEMPLATE)


def _needs_1_1(art: Artifact) -> bool:
    """Whether *art* uses anything format 1.0 cannot express."""
    return bool(art.kconfig or art.ksyms
                or any(p.attach is not None or p.ksym_sites for p in art.programs)
                or any(m.slots or m.flags & ~_FLAGS_1_0 for m in art.maps))


def _encode_unchecked(art: Artifact) -> bytes:
    minor = art.version[1]
    strings = _Strings()
    meta = _META.pack(strings.add(art.name), 0)

    programs = bytearray()
    insns = bytearray()
    func_info = bytearray()
    line_info = bytearray()
    core_relos = bytearray()
    sites = bytearray()
    n_insn = n_fi = n_li = n_cr = n_site = 0
    for prog in art.programs:
        try:
            raw = Instruction.encode(prog.insns)
        except (struct.error, AttributeError) as err:
            raise ArtifactError(f"program {prog.name!r}: cannot encode instructions: {err}")
        if not prog.insns:
            raise ArtifactError(f"program {prog.name!r} has no instructions")
        for site in prog.kfunc_sites:
            if not 0 <= site.insn < len(prog.insns) or not 0 <= site.kfunc < len(art.kfuncs):
                raise ArtifactError(f"program {prog.name!r}: kfunc site (insn {site.insn}, kfunc "
                                    f"{site.kfunc}) out of range", insn=site.insn)
        programs += _PROGRAM.pack(
            strings.add(prog.name), strings.add(prog.section), strings.add(prog.license),
            strings.add(prog.attach_to),
            _check_u32(prog.prog_type, "prog_type"),
            _check_u32(prog.expected_attach_type, "expected_attach_type"),
            _check_u32(prog.prog_flags, "prog_flags"),
            _check_u32(prog.kern_version, "kern_version"),
            n_insn, len(prog.insns), n_fi, len(prog.func_info), n_li, len(prog.line_info),
            n_cr, len(prog.core_relos), n_site, len(prog.kfunc_sites))
        insns += raw
        func_info += prog.func_info_bytes
        line_info += prog.line_info_bytes
        core_relos += prog.core_relo_bytes
        for site in prog.kfunc_sites:
            sites += _KFUNC_SITE.pack(site.kfunc, site.insn, int(site.kind))
        n_insn += len(prog.insns)
        n_fi += len(prog.func_info)
        n_li += len(prog.line_info)
        n_cr += len(prog.core_relos)
        n_site += len(prog.kfunc_sites)

    maps = bytearray()
    map_data = bytearray()
    for m in art.maps:
        if len(m.initial_data) > m.value_size:
            raise ArtifactError(f"map {m.name!r}: initial data ({len(m.initial_data)} bytes) "
                                f"larger than the value ({m.value_size} bytes)")
        if not -1 <= m.inner_map < len(art.maps):
            raise ArtifactError(f"map {m.name!r}: inner map index {m.inner_map} out of range")
        data_off = len(map_data) if m.initial_data else 0
        maps += _MAP.pack(
            strings.add(m.name), strings.add(m.section), int(m.kind),
            _check_u32(m.map_type, "map_type"), _check_u32(m.key_size, "key_size"),
            _check_u32(m.value_size, "value_size"), _check_u32(m.max_entries, "max_entries"),
            _check_u32(m.map_flags, "map_flags"), m.btf_key_type_id, m.btf_value_type_id,
            int(m.flags), _check_u32(m.pinning, "pinning"), m.inner_map,
            _check_u32(m.numa_node, "numa_node"), data_off, len(m.initial_data), m.map_extra)
        map_data += m.initial_data + bytes(_pad(len(m.initial_data)))

    kfuncs = bytearray()
    for k in art.kfuncs:
        if not k.name:
            raise ArtifactError("kfunc table entry without a name")
        kfuncs += _KFUNC.pack(strings.add(k.name), k.btf_id,
                              int(KfuncFlags.WEAK if k.weak else KfuncFlags.NONE))
    if minor:
        sections_1_1 = _encode_1_1(art, strings)

    sections: list[tuple[int, int, bytes]] = [
        (SectionType.META, _META.size, meta),
        (SectionType.STRTAB, 0, strings.bytes()),
        (SectionType.BTF, 0, bytes(art.btf)),
        (SectionType.PROGRAMS, _PROGRAM.size, bytes(programs)),
        (SectionType.INSNS, 8, bytes(insns)),
        (SectionType.FUNC_INFO, _FUNC_INFO.size, bytes(func_info)),
        (SectionType.LINE_INFO, _LINE_INFO.size, bytes(line_info)),
        (SectionType.CORE_RELOS, _CORE_RELO.size, bytes(core_relos)),
        (SectionType.KFUNC_SITES, _KFUNC_SITE.size, bytes(sites)),
        (SectionType.MAPS, _MAP.size, bytes(maps)),
        (SectionType.MAP_DATA, 0, bytes(map_data)),
        (SectionType.KFUNCS, _KFUNC.size, bytes(kfuncs)),
    ]
    if minor:
        sections += sections_1_1
    for ext in art.extensions:
        if ext.type < EXTENSION_BASE or ext.type > _U32_MAX:
            raise ArtifactError(f"extension section type {ext.type:#x} out of range")
        if ext.entry_size and len(ext.data) % ext.entry_size:
            raise ArtifactError(f"extension section {ext.type:#x}: size {len(ext.data)} is not "
                                f"a multiple of its entry size {ext.entry_size}")
        sections.append((ext.type, ext.entry_size, bytes(ext.data)))

    table_off = HEADER_SIZE
    offset = table_off + SECTION_ENTRY_SIZE * len(sections)
    offset += _pad(offset)
    table = bytearray()
    body = bytearray()
    for stype, entry_size, payload in sections:
        table += _ENTRY.pack(int(stype), entry_size, offset, len(payload))
        body += payload + bytes(_pad(len(payload)))
        offset += len(payload) + _pad(len(payload))
    head = _HEADER.pack(MAGIC, VERSION_MAJOR, minor, HEADER_SIZE, len(sections),
                        table_off, 0, 0)
    pre = head + table
    out = pre + bytes(_pad(len(pre))) + body
    if len(out) > _U32_MAX:
        raise ArtifactError("artifact larger than 4 GiB")
    return bytes(out)


def _encode_1_1(art: Artifact, strings: _Strings) -> list[tuple[int, int, bytes]]:
    """The 1.1 sections (FORMAT.md 2.5-2.8); their strings follow the 1.0 ones in STRTAB."""
    kconfig = bytearray()
    for k in art.kconfig:
        if not k.name:
            raise ArtifactError("kconfig extern without a name")
        flags = (ExternFlags.WEAK if k.weak else 0) | (ExternFlags.SIGNED if k.signed else 0)
        kconfig += _KCONFIG.pack(strings.add(k.name), _check_u32(k.type, "kconfig type"),
                                 _check_u32(k.offset, "kconfig offset"),
                                 _check_u32(k.size, "kconfig size"), int(flags))
    ksyms = bytearray()
    for y in art.ksyms:
        if not y.name:
            raise ArtifactError("ksym without a name")
        ksyms += _KSYM.pack(strings.add(y.name), _check_u32(y.btf_id, "ksym btf_id"),
                            _check_u32(y.type_id, "ksym type_id"),
                            int(ExternFlags.WEAK if y.weak else ExternFlags.NONE))
    sites = bytearray()
    attach = bytearray()
    for i, prog in enumerate(art.programs):
        for site in prog.ksym_sites:
            if not 0 <= site.insn < len(prog.insns) - 1 or not 0 <= site.ksym < len(art.ksyms):
                raise ArtifactError(f"program {prog.name!r}: ksym site (insn {site.insn}, ksym "
                                    f"{site.ksym}) out of range", insn=site.insn)
            sites += _KSYM_SITE.pack(i, site.insn, site.ksym)
        if prog.attach is not None:
            if not prog.attach.name:
                raise ArtifactError(f"program {prog.name!r}: attach target without a name")
            attach += _ATTACH.pack(i, _check_u32(prog.attach.kind, "attach kind"),
                                   strings.add(prog.attach.name), strings.add(prog.attach.module),
                                   strings.add(prog.attach.member))
    slots = bytearray()
    for i, m in enumerate(art.maps):
        for slot in m.slots:
            limit = len(art.maps) if slot.kind == SlotKind.MAP else len(art.programs)
            if not 0 <= slot.target < limit:
                raise ArtifactError(f"map {m.name!r}: slot {slot.slot} names {slot.kind.name.lower()} "
                                    f"{slot.target}, out of range")
            slots += _MAP_SLOT.pack(i, _check_u32(slot.slot, "slot"), int(slot.kind), slot.target)
    return [
        (SectionType.KCONFIG, _KCONFIG.size, bytes(kconfig)),
        (SectionType.KSYMS, _KSYM.size, bytes(ksyms)),
        (SectionType.KSYM_SITES, _KSYM_SITE.size, bytes(sites)),
        (SectionType.ATTACH, _ATTACH.size, bytes(attach)),
        (SectionType.MAP_SLOTS, _MAP_SLOT.size, bytes(slots)),
    ]


# --------------------------------------------------------------- decoding


@dataclass(frozen=True, slots=True)
class _Section:
    type: int
    entry_size: int
    offset: int
    data: bytes

    @property
    def label(self) -> str:
        try:
            return SectionType(self.type).label
        except ValueError:
            return f"section {self.type:#x}"

    def records(self, layout: struct.Struct) -> list[tuple]:
        return list(layout.iter_unpack(self.data))

    def error(self, message: str, index: int | None = None, field_at: int = 0) -> ArtifactError:
        offset = self.offset + (index * self.entry_size if index is not None else 0) + field_at
        where = f"{self.label} section" + (f" record {index}" if index is not None else "")
        return ArtifactError(f"{where}: {message}", offset=offset)


_ENTRY_SIZES: dict[SectionType, int] = {
    SectionType.META: _META.size, SectionType.STRTAB: 0, SectionType.BTF: 0,
    SectionType.PROGRAMS: _PROGRAM.size, SectionType.INSNS: 8,
    SectionType.FUNC_INFO: _FUNC_INFO.size, SectionType.LINE_INFO: _LINE_INFO.size,
    SectionType.CORE_RELOS: _CORE_RELO.size, SectionType.KFUNC_SITES: _KFUNC_SITE.size,
    SectionType.MAPS: _MAP.size, SectionType.MAP_DATA: 0, SectionType.KFUNCS: _KFUNC.size,
    SectionType.KCONFIG: _KCONFIG.size, SectionType.KSYMS: _KSYM.size,
    SectionType.KSYM_SITES: _KSYM_SITE.size, SectionType.ATTACH: _ATTACH.size,
    SectionType.MAP_SLOTS: _MAP_SLOT.size,
}

#: The core sections of each minor version, in the order they must appear.
_CORE_SECTIONS = {0: tuple(t for t in SectionType if t <= SectionType.KFUNCS),
                  1: tuple(SectionType)}


def _bad_magic(data: bytes) -> ArtifactError:
    hint = "; a BPF object (ELF): build it first with `sigbpf build`" if data[:4] == b"\x7fELF" else ""
    return ArtifactError(f"bad magic (not a sigbpf artifact{hint})", offset=0)


def _read_sections(data: bytes) -> tuple[int, list[_Section]]:
    """The minor version and the sections of *data*, each checked against the table."""
    if data[:len(MAGIC)] != MAGIC[:min(len(data), len(MAGIC))] or not data:
        raise _bad_magic(data)
    if len(data) < HEADER_SIZE:
        raise ArtifactError(f"truncated header ({len(data)} bytes, need {HEADER_SIZE})",
                            offset=len(data))
    magic, major, minor, header_size, nsec, table_off, flags, reserved = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise _bad_magic(data)
    if major != VERSION_MAJOR:
        raise ArtifactError(f"unsupported format version {major}.{minor} "
                            f"(this reader knows {VERSION_MAJOR}.x)", offset=8)
    if minor > VERSION_MINOR:
        raise ArtifactError(f"unsupported format version {major}.{minor} "
                            f"(this reader knows up to {VERSION_MAJOR}.{VERSION_MINOR})",
                            offset=10)
    if header_size != HEADER_SIZE:
        raise ArtifactError(f"header size {header_size}, expected {HEADER_SIZE}", offset=12)
    if flags or reserved:
        raise ArtifactError("header flags/reserved fields must be zero", offset=24)
    if table_off != HEADER_SIZE:
        raise ArtifactError(f"section table at {table_off}, expected {HEADER_SIZE}", offset=20)
    table_end = table_off + nsec * SECTION_ENTRY_SIZE
    if table_end > len(data):
        raise ArtifactError(f"section table ({nsec} entries) runs past the end of the file "
                            f"({len(data)} bytes)", offset=16)
    out: list[_Section] = []
    for i in range(nsec):
        at = table_off + i * SECTION_ENTRY_SIZE
        stype, entry_size, offset, size = _ENTRY.unpack_from(data, at)
        label = _label(stype)
        if offset < table_end or offset > len(data) or size > len(data) - offset:
            raise ArtifactError(f"{label} section (table entry {i}): bytes {offset}..{offset + size}"
                                f" out of range (file {len(data)} bytes)", offset=at + 8)
        if offset % ALIGN:
            raise ArtifactError(f"{label} section: offset {offset} not {ALIGN}-byte aligned",
                                offset=at + 8)
        if stype < EXTENSION_BASE:
            try:
                known = SectionType(stype)
                if known not in _CORE_SECTIONS[minor]:
                    raise ValueError(stype)
            except ValueError:
                raise ArtifactError(f"unknown section type {stype:#x} (table entry {i})",
                                    offset=at) from None
            if entry_size != _ENTRY_SIZES[known]:
                raise ArtifactError(f"{label} section: entry size {entry_size}, expected "
                                    f"{_ENTRY_SIZES[known]}", offset=at + 4)
        if entry_size and size % entry_size:
            raise ArtifactError(f"{label} section: size {size} is not a multiple of its record "
                                f"size {entry_size} (bad record count)", offset=at + 12)
        out.append(_Section(stype, entry_size, offset, data[offset:offset + size]))
    return minor, out


def _label(stype: int) -> str:
    try:
        return SectionType(stype).label
    except ValueError:
        return f"section {stype:#x}"


def _decode(data: bytes) -> Artifact:
    minor, sections = _read_sections(data)
    core: dict[SectionType, _Section] = {}
    extensions: list[ExtensionSection] = []
    for i, sec in enumerate(sections):
        if sec.type >= EXTENSION_BASE:
            extensions.append(ExtensionSection(sec.type, sec.data, sec.entry_size))
            continue
        stype = SectionType(sec.type)
        if stype in core:
            raise sec.error("appears twice in the section table")
        if extensions:
            raise sec.error("core section after an extension section")
        core[stype] = sec
    for stype in _CORE_SECTIONS[minor]:
        if stype not in core:
            raise ArtifactError(f"{stype.label} section missing", offset=16)

    strtab = core[SectionType.STRTAB]

    def string(off: int, sec: _Section, index: int, field_at: int) -> str:
        blob = strtab.data
        if off >= len(blob):
            raise sec.error(f"string offset {off} outside the string table "
                            f"({len(blob)} bytes)", index, field_at)
        end = blob.find(b"\0", off)
        if end < 0:
            raise strtab.error(f"string at {off} is not NUL-terminated")
        try:
            return blob[off:end].decode("utf-8")
        except UnicodeDecodeError:
            raise strtab.error(f"string at {off} is not valid UTF-8") from None

    if strtab.data[:1] != b"\0" or strtab.data[-1:] != b"\0":
        raise strtab.error("must start and end with a NUL byte")

    meta = core[SectionType.META]
    if len(meta.data) != _META.size:
        raise meta.error(f"must hold exactly one record, holds {len(meta.data) // _META.size}")
    name_off, meta_flags = _META.unpack(meta.data)
    if meta_flags:
        raise meta.error(f"unknown flags {meta_flags:#x}", 0, 4)
    name = string(name_off, meta, 0, 0)

    insn_sec = core[SectionType.INSNS]
    try:
        all_insns = Instruction.decode(insn_sec.data)
    except InstructionError as err:  # pragma: no cover - size already checked
        raise insn_sec.error(err.message) from None

    fi_sec = core[SectionType.FUNC_INFO]
    li_sec = core[SectionType.LINE_INFO]
    cr_sec = core[SectionType.CORE_RELOS]
    site_sec = core[SectionType.KFUNC_SITES]
    kf_sec = core[SectionType.KFUNCS]
    all_fi = [FuncInfo(*r) for r in fi_sec.records(_FUNC_INFO)]
    all_li = [LineInfo(*r) for r in li_sec.records(_LINE_INFO)]
    all_cr = [CoreRelo(*r) for r in cr_sec.records(_CORE_RELO)]
    raw_sites = site_sec.records(_KFUNC_SITE)

    kfuncs: list[Kfunc] = []
    for i, (k_name, btf_id, k_flags) in enumerate(kf_sec.records(_KFUNC)):
        if k_flags & ~int(KfuncFlags.WEAK):
            raise kf_sec.error(f"unknown kfunc flags {k_flags:#x}", i, 8)
        kname = string(k_name, kf_sec, i, 0)
        if not kname:
            raise kf_sec.error("kfunc has no name", i, 0)
        kfuncs.append(Kfunc(kname, btf_id, bool(k_flags & KfuncFlags.WEAK)))

    prog_sec = core[SectionType.PROGRAMS]
    programs: list[Program] = []
    for i, rec in enumerate(prog_sec.records(_PROGRAM)):
        (p_name, p_sec, p_lic, p_att, prog_type, eat, pflags, kver,
         insn_start, insn_cnt, fi_start, fi_cnt, li_start, li_cnt, cr_start, cr_cnt,
         site_start, site_cnt) = rec

        def span(start: int, cnt: int, total: int, what: str, field_index: int) -> range:
            if start > total or cnt > total - start:
                raise prog_sec.error(f"{what} {start}..{start + cnt} out of range "
                                     f"({total} in the section)", i, field_index * 4)
            return range(start, start + cnt)

        r_insn = span(insn_start, insn_cnt, len(all_insns), "instructions", 8)
        r_fi = span(fi_start, fi_cnt, len(all_fi), "func_info records", 10)
        r_li = span(li_start, li_cnt, len(all_li), "line_info records", 12)
        r_cr = span(cr_start, cr_cnt, len(all_cr), "core_relo records", 14)
        r_site = span(site_start, site_cnt, len(raw_sites), "kfunc site records", 16)
        if insn_cnt == 0:
            raise prog_sec.error("program has no instructions", i, 36)
        sites: list[KfuncSite] = []
        for j in r_site:
            kidx, insn, kind = raw_sites[j]
            if kidx >= len(kfuncs):
                raise site_sec.error(f"kfunc index {kidx} out of range ({len(kfuncs)} kfuncs)",
                                     j, 0)
            if insn >= insn_cnt:
                raise site_sec.error(f"instruction {insn} outside program {i} "
                                     f"({insn_cnt} instructions)", j, 4)
            try:
                skind = KfuncSiteKind(kind)
            except ValueError:
                raise site_sec.error(f"unknown site kind {kind}", j, 8) from None
            sites.append(KfuncSite(insn, kidx, skind))
        programs.append(Program(
            name=string(p_name, prog_sec, i, 0), section=string(p_sec, prog_sec, i, 4),
            license=string(p_lic, prog_sec, i, 8), attach_to=string(p_att, prog_sec, i, 12),
            prog_type=prog_type, expected_attach_type=eat, prog_flags=pflags,
            kern_version=kver, insns=tuple(all_insns[r_insn.start:r_insn.stop]),
            func_info=tuple(all_fi[r_fi.start:r_fi.stop]),
            line_info=tuple(all_li[r_li.start:r_li.stop]),
            core_relos=tuple(all_cr[r_cr.start:r_cr.stop]),
            kfunc_sites=tuple(sites)))

    map_sec = core[SectionType.MAPS]
    data_sec = core[SectionType.MAP_DATA]
    map_records = map_sec.records(_MAP)
    maps: list[Map] = []
    for i, rec in enumerate(map_records):
        (m_name, m_sec, kind, mtype, ksize, vsize, maxe, mflags, kid, vid, aflags, pinning,
         inner, numa, d_off, d_size, extra) = rec
        try:
            mkind = MapKind(kind)
        except ValueError:
            raise map_sec.error(f"unknown map kind {kind}", i, 8) from None
        if aflags & ~int(ArtifactMapFlags.FROZEN if not minor else _ALL_MAP_FLAGS):
            raise map_sec.error(f"unknown map flags {aflags:#x}", i, 40)
        if inner != -1 and not 0 <= inner < len(map_records):
            raise map_sec.error(f"inner map index {inner} out of range", i, 48)
        if d_off > len(data_sec.data) or d_size > len(data_sec.data) - d_off:
            raise map_sec.error(f"initial data {d_off}..{d_off + d_size} outside the map_data "
                                f"section ({len(data_sec.data)} bytes)", i, 56)
        if d_size > vsize:
            raise map_sec.error(f"initial data ({d_size} bytes) larger than the value "
                                f"({vsize} bytes)", i, 60)
        maps.append(Map(
            name=string(m_name, map_sec, i, 0), section=string(m_sec, map_sec, i, 4),
            kind=mkind, map_type=mtype, key_size=ksize, value_size=vsize, max_entries=maxe,
            map_flags=mflags, btf_key_type_id=kid, btf_value_type_id=vid,
            flags=ArtifactMapFlags(aflags), pinning=pinning, inner_map=inner, numa_node=numa,
            map_extra=extra, initial_data=data_sec.data[d_off:d_off + d_size]))

    art = Artifact(name=name, btf=core[SectionType.BTF].data, programs=tuple(programs),
                   maps=tuple(maps), kfuncs=tuple(kfuncs), extensions=tuple(extensions))
    if minor:
        art = _decode_1_1(art, core, string)
    return art


def _decode_1_1(art: Artifact, core: dict[SectionType, _Section], string) -> Artifact:
    """Add the 1.1 sections' content to the 1.0 model *art*."""
    kc_sec = core[SectionType.KCONFIG]
    kconfig = []
    for i, (k_name, ktype, offset, size, flags) in enumerate(kc_sec.records(_KCONFIG)):
        if flags & ~int(ExternFlags.WEAK | ExternFlags.SIGNED):
            raise kc_sec.error(f"unknown kconfig flags {flags:#x}", i, 16)
        kname = string(k_name, kc_sec, i, 0)
        if not kname:
            raise kc_sec.error("kconfig extern has no name", i, 0)
        kconfig.append(KconfigExtern(kname, ktype, offset, size, bool(flags & ExternFlags.WEAK),
                                     bool(flags & ExternFlags.SIGNED)))
    ks_sec = core[SectionType.KSYMS]
    ksyms = []
    for i, (y_name, btf_id, type_id, flags) in enumerate(ks_sec.records(_KSYM)):
        if flags & ~int(ExternFlags.WEAK):
            raise ks_sec.error(f"unknown ksym flags {flags:#x}", i, 12)
        yname = string(y_name, ks_sec, i, 0)
        if not yname:
            raise ks_sec.error("ksym has no name", i, 0)
        ksyms.append(Ksym(yname, btf_id, type_id, bool(flags & ExternFlags.WEAK)))

    nprog, nmap = len(art.programs), len(art.maps)
    site_sec = core[SectionType.KSYM_SITES]
    sites: dict[int, list[KsymSite]] = {}
    for j, (prog, insn, ksym) in enumerate(site_sec.records(_KSYM_SITE)):
        if prog >= nprog:
            raise site_sec.error(f"program {prog} out of range ({nprog} programs)", j, 0)
        if insn + 1 >= len(art.programs[prog].insns):
            raise site_sec.error(f"instruction {insn} is not an ld_imm64 inside program {prog}",
                                 j, 4)
        if ksym >= len(ksyms):
            raise site_sec.error(f"ksym index {ksym} out of range ({len(ksyms)} ksyms)", j, 8)
        sites.setdefault(prog, []).append(KsymSite(insn, ksym))
    at_sec = core[SectionType.ATTACH]
    attach: dict[int, AttachTarget] = {}
    for j, (prog, kind, a_name, a_mod, a_member) in enumerate(at_sec.records(_ATTACH)):
        if prog >= nprog:
            raise at_sec.error(f"program {prog} out of range ({nprog} programs)", j, 0)
        if prog in attach:
            raise at_sec.error(f"second attach target for program {prog}", j, 0)
        target = AttachTarget(string(a_name, at_sec, j, 8), kind, string(a_mod, at_sec, j, 12),
                              string(a_member, at_sec, j, 16))
        if not target.name:
            raise at_sec.error("attach target has no name", j, 8)
        attach[prog] = target
    slot_sec = core[SectionType.MAP_SLOTS]
    slots: dict[int, list[MapSlot]] = {}
    for j, (m, slot, kind, target) in enumerate(slot_sec.records(_MAP_SLOT)):
        if m >= nmap:
            raise slot_sec.error(f"map {m} out of range ({nmap} maps)", j, 0)
        try:
            skind = SlotKind(kind)
        except ValueError:
            raise slot_sec.error(f"unknown slot kind {kind}", j, 8) from None
        if target >= (nmap if skind == SlotKind.MAP else nprog):
            raise slot_sec.error(f"{skind.name.lower()} {target} out of range", j, 12)
        slots.setdefault(m, []).append(MapSlot(slot, skind, target))
    programs = tuple(replace(p, attach=attach.get(i), ksym_sites=tuple(sites.get(i, ())))
                     for i, p in enumerate(art.programs))
    maps = tuple(replace(m, slots=tuple(slots.get(i, ()))) for i, m in enumerate(art.maps))
    return replace(art, programs=programs, maps=maps, kconfig=tuple(kconfig), ksyms=tuple(ksyms))
