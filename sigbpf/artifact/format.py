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
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

from sigbpf.asm import Instruction
from sigbpf.elf.btf_ext import LineColumn
from sigbpf.errors import ArtifactError, InstructionError, NotFoundError

__all__ = [
    "MAGIC", "VERSION_MAJOR", "VERSION_MINOR", "HEADER_SIZE", "SECTION_ENTRY_SIZE",
    "EXTENSION_BASE", "SIGNATURE_FIRST", "SIGNATURE_LAST", "SectionType", "MapKind",
    "ArtifactMapFlags", "KfuncFlags", "KfuncSiteKind", "FuncInfo", "LineInfo", "CoreRelo",
    "KfuncSite", "Kfunc", "Program", "Map", "ExtensionSection", "Artifact", "is_artifact",
]

#: First 8 bytes of every artifact.
MAGIC = b"SIGBPFA\x00"
VERSION_MAJOR = 1
VERSION_MINOR = 0
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


class KfuncFlags(IntFlag):
    """Flags of a kfunc table entry."""

    NONE = 0
    WEAK = 1  # declared __weak: may be absent from the kernel


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

    @property
    def frozen(self) -> bool:
        return bool(self.flags & ArtifactMapFlags.FROZEN)


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
    version: tuple[int, int] = (VERSION_MAJOR, VERSION_MINOR)

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
        return Artifact(self.name, self.btf, self.programs, self.maps, self.kfuncs, (),
                        self.version)

    def with_extension(self, section: ExtensionSection) -> "Artifact":
        """The same artifact with one more extension section appended."""
        if section.type < EXTENSION_BASE:
            raise ArtifactError(f"extension section type {section.type:#x} is below "
                                f"{EXTENSION_BASE:#x}")
        return Artifact(self.name, self.btf, self.programs, self.maps, self.kfuncs,
                        (*self.extensions, section), self.version)

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


def _encode_unchecked(art: Artifact) -> bytes:
    if tuple(art.version) != (VERSION_MAJOR, VERSION_MINOR):
        raise ArtifactError(f"cannot write format version {art.version[0]}.{art.version[1]}")
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
    head = _HEADER.pack(MAGIC, VERSION_MAJOR, VERSION_MINOR, HEADER_SIZE, len(sections),
                        table_off, 0, 0)
    pre = head + table
    out = pre + bytes(_pad(len(pre))) + body
    if len(out) > _U32_MAX:
        raise ArtifactError("artifact larger than 4 GiB")
    return bytes(out)


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
}


def _bad_magic(data: bytes) -> ArtifactError:
    hint = "; a BPF object (ELF): build it first with `sigbpf build`" if data[:4] == b"\x7fELF" else ""
    return ArtifactError(f"bad magic (not a sigbpf artifact{hint})", offset=0)


def _read_sections(data: bytes) -> list[_Section]:
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
    return out


def _label(stype: int) -> str:
    try:
        return SectionType(stype).label
    except ValueError:
        return f"section {stype:#x}"


def _decode(data: bytes) -> Artifact:
    sections = _read_sections(data)
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
    for stype in SectionType:
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
        if aflags & ~int(ArtifactMapFlags.FROZEN):
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

    return Artifact(name=name, btf=core[SectionType.BTF].data, programs=tuple(programs),
                    maps=tuple(maps), kfuncs=tuple(kfuncs), extensions=tuple(extensions))
