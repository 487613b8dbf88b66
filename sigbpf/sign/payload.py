"""The signed bytes: the two layouts, and the metadata blob that binds everything else.

A signature is only as good as what it covers.  The kernel (6.18) checks a
signature over a program's instructions; the names those instructions call
(the program BTF), the maps' definitions and initial data, func/line info,
CO-RE relocations, the license and the program attributes travel beside
them.  sigbpf therefore signs, besides the instructions, a *metadata blob*:
a canonical list of SHA-256 digests of every part of the artifact model
(per program, per map, the BTF, the kfunc table, other extension sections)
and of the whole unsigned artifact as encoded (FORMAT.md 5.3 lists them).

Layouts (docs/FORMAT.md, "Signatures"):

``insns`` (:attr:`SignatureLayout.INSNS`, what a 6.18 kernel checks itself)
    per program, a signature over exactly its instructions (``insn_cnt * 8``
    bytes); plus one signature over the metadata blob, checked in userspace.
``insns+metadata`` (:attr:`SignatureLayout.INSNS_METADATA`, the later upstream form)
    per program, a signature over ``insns || metadata_0`` where metadata_0 is
    the metadata blob (sigbpf has one metadata blob; no 6.18 kernel checks this).

The metadata blob (all integers little-endian)::

    magic      16 bytes  b"sigbpf-metadata\\0"
    version    u32       1
    layout     u32       SignatureLayout
    count      u32       number of items
    items      count x { kind u32 (ItemKind), index u32, name_len u16,
                         name (UTF-8, name_len bytes), sha256 (32 bytes) }

Items are sorted by (kind, index) and unique; a decoder rejects anything else,
and any byte after the last item.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Iterable, Sequence

from sigbpf.errors import FormatError, SignatureError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import Artifact

METADATA_MAGIC = b"sigbpf-metadata\0"
METADATA_VERSION = 1
DIGEST_SIZE = 32
_HEADER = struct.Struct("<16sIII")
_ITEM = struct.Struct("<IIH")


class SignatureLayout(IntEnum):
    """What each program's signature covers."""

    INSNS = 1            # "insns": the instructions only (6.18 BPF_PROG_LOAD signature)
    INSNS_METADATA = 2   # "insns+metadata": insns || metadata_0 (later upstream)

    @property
    def label(self) -> str:
        return "insns" if self is SignatureLayout.INSNS else "insns+metadata"

    @classmethod
    def from_label(cls, label: str) -> "SignatureLayout":
        for layout in cls:
            if layout.label == label:
                return layout
        raise FormatError(f"unknown signature layout {label!r} (insns or insns+metadata)")


class ItemKind(IntEnum):
    """What a metadata item's digest covers.  Compared in this order on verify, so the
    most specific difference is the one reported."""

    PROGRAM_INSNS = 1        # a program's instructions, exactly as signed (insn_cnt * 8 bytes)
    PROGRAM_ATTRS = 2        # name, ELF section, type, expected attach type, flags, kern_version, attach_to
    PROGRAM_LICENSE = 3      # the license string passed to BPF_PROG_LOAD
    PROGRAM_FUNC_INFO = 4    # struct bpf_func_info records
    PROGRAM_LINE_INFO = 5    # struct bpf_line_info records
    PROGRAM_CORE_RELOS = 6   # struct bpf_core_relo records
    PROGRAM_KFUNC_SITES = 7  # which instructions name which kfunc (name, prog-BTF id, weak)
    PROGRAM_ATTACH = 8       # 1.1: the attach target's name, BTF kind and module (by name)
    PROGRAM_KSYM_SITES = 9   # 1.1: which instructions load which ksym (name, prog-BTF id, flags)
    PROGRAM_BTF = 10         # the raw program BTF: the names kfunc calls resolve by
    KFUNC_TABLE = 11         # the kfunc table: names, prog-BTF FUNC ids, weak flags
    KCONFIG_TABLE = 12       # 1.1: kconfig externs: names, types, offsets, sizes, flags
    KSYM_TABLE = 13          # 1.1: ksyms: names, prog-BTF VAR ids, typed/weak
    MAP_DEFINITION = 20      # name, section, kind, type, sizes, flags, BTF ids, inner map, ...
    MAP_DATA = 21            # a map's initial data (.data/.rodata/.data.*)
    MAP_SLOTS = 22           # 1.1: a map-in-map's or prog array's initial slots
    ARTIFACT_NAME = 30       # the object name in META
    EXTENSION = 40           # a non-signature extension section (type, entry size, bytes)
    ARTIFACT = 50            # the whole artifact without its signature sections, as encoded


_PROGRAM_TEXT = {
    ItemKind.PROGRAM_INSNS: "instructions",
    ItemKind.PROGRAM_ATTRS: "attributes (type, attach type, flags, section)",
    ItemKind.PROGRAM_LICENSE: "license",
    ItemKind.PROGRAM_FUNC_INFO: "func_info",
    ItemKind.PROGRAM_LINE_INFO: "line_info",
    ItemKind.PROGRAM_CORE_RELOS: "CO-RE relocations",
    ItemKind.PROGRAM_KFUNC_SITES: "kfunc calls",
    ItemKind.PROGRAM_ATTACH: "attach target",
    ItemKind.PROGRAM_KSYM_SITES: "ksym loads",
}
_MAP_TEXT = {ItemKind.MAP_DEFINITION: "definition", ItemKind.MAP_DATA: "initial data",
             ItemKind.MAP_SLOTS: "initial slots"}
_OTHER_TEXT = {
    ItemKind.PROGRAM_BTF: "program BTF",
    ItemKind.KFUNC_TABLE: "kfunc table (names, prog-BTF ids, weak flags)",
    ItemKind.KCONFIG_TABLE: "kconfig externs (names, types, offsets, weak flags)",
    ItemKind.KSYM_TABLE: "ksyms (names, prog-BTF ids, typed/weak flags)",
    ItemKind.ARTIFACT_NAME: "artifact name",
    ItemKind.ARTIFACT: "artifact (as encoded, without signatures)",
}


@dataclass(frozen=True, slots=True)
class MetadataItem:
    """One digest in the metadata blob: what it covers (kind, index, name) and its SHA-256."""

    kind: ItemKind
    index: int
    name: str
    digest: bytes

    @property
    def key(self) -> tuple[int, int]:
        return (int(self.kind), self.index)

    def describe(self) -> str:
        """This item in words, e.g. ``program 0 'rcu_maps' instructions`` or
        ``map 1 'kfunc_rc.data' initial data``."""
        if self.kind in _PROGRAM_TEXT:
            return f"program {self.index} '{self.name}' {_PROGRAM_TEXT[self.kind]}"
        if self.kind in _MAP_TEXT:
            return f"map {self.index} '{self.name}' {_MAP_TEXT[self.kind]}"
        if self.kind is ItemKind.EXTENSION:
            return f"extension section {self.index} ({self.name})"
        return _OTHER_TEXT[self.kind]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def item(kind: ItemKind, index: int, name: str, data: bytes) -> MetadataItem:
    """A metadata item over *data*."""
    return MetadataItem(ItemKind(kind), index, name, sha256(data))


@dataclass(frozen=True, slots=True)
class Metadata:
    """A decoded metadata blob."""

    layout: SignatureLayout
    items: tuple[MetadataItem, ...]

    def encode(self) -> bytes:
        parts = [_HEADER.pack(METADATA_MAGIC, METADATA_VERSION, int(self.layout), len(self.items))]
        for it in sorted(self.items, key=lambda i: i.key):
            name = it.name.encode("utf-8")
            if len(name) > 0xFFFF:
                raise FormatError(f"metadata item name too long ({len(name)} bytes)")
            if len(it.digest) != DIGEST_SIZE:
                raise FormatError("metadata item digest is not SHA-256")
            parts.append(_ITEM.pack(int(it.kind), it.index, len(name)) + name + it.digest)
        return b"".join(parts)

    @classmethod
    def build(cls, layout: SignatureLayout, items: Iterable[MetadataItem]) -> "Metadata":
        ordered = tuple(sorted(items, key=lambda i: i.key))
        keys = [i.key for i in ordered]
        if len(set(keys)) != len(keys):
            raise FormatError("duplicate metadata items")
        return cls(SignatureLayout(layout), ordered)

    @classmethod
    def decode(cls, blob: bytes) -> "Metadata":
        """Strictly decode a metadata blob; anything malformed is a FormatError naming the offset."""
        if len(blob) < _HEADER.size:
            raise FormatError("metadata blob truncated (no header)", offset=0)
        magic, version, layout, count = _HEADER.unpack_from(blob, 0)
        if magic != METADATA_MAGIC:
            raise FormatError("metadata blob has a bad magic", offset=0)
        if version != METADATA_VERSION:
            raise FormatError(f"metadata blob version {version} is not {METADATA_VERSION}", offset=16)
        try:
            layout = SignatureLayout(layout)
        except ValueError:
            raise FormatError(f"metadata blob has unknown layout {layout}", offset=20) from None
        pos, items, last = _HEADER.size, [], None
        for _ in range(count):
            if pos + _ITEM.size > len(blob):
                raise FormatError("metadata blob truncated in an item", offset=pos)
            kind, index, name_len = _ITEM.unpack_from(blob, pos)
            start = pos
            pos += _ITEM.size
            if pos + name_len + DIGEST_SIZE > len(blob):
                raise FormatError("metadata blob truncated in an item", offset=start)
            try:
                kind = ItemKind(kind)
                name = blob[pos:pos + name_len].decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise FormatError("metadata item has an unknown kind or a bad name", offset=start) from None
            pos += name_len
            digest = blob[pos:pos + DIGEST_SIZE]
            pos += DIGEST_SIZE
            it = MetadataItem(kind, index, name, digest)
            if last is not None and it.key <= last:
                raise FormatError("metadata items are not sorted and unique", offset=start)
            last = it.key
            items.append(it)
        if pos != len(blob):
            raise FormatError(f"{len(blob) - pos} bytes after the metadata items", offset=pos)
        return cls(layout, tuple(items))

    def find(self, kind: ItemKind, index: int = 0) -> MetadataItem | None:
        for it in self.items:
            if it.kind == kind and it.index == index:
                return it
        return None


def compare_metadata(signed: Metadata, actual: Metadata) -> None:
    """Raise a SignatureError naming the first item of *actual* that differs from *signed*.

    Items are compared in (kind, index) order, so a changed map value is
    reported as "map N '...' initial data" before the whole-artifact digest
    that changes with it.
    """
    if signed.layout != actual.layout:
        raise SignatureError(f"signature layout {actual.layout.label} does not match the signed "
                             f"layout {signed.layout.label}")
    signed_by_key = {it.key: it for it in signed.items}
    actual_by_key = {it.key: it for it in actual.items}
    for key in sorted(set(signed_by_key) | set(actual_by_key)):
        want, have = signed_by_key.get(key), actual_by_key.get(key)
        if want is None:
            raise SignatureError(f"{have.describe()}: not covered by the signature "
                                 "(added after signing)")
        if have is None:
            raise SignatureError(f"{want.describe()}: signed, but missing from the artifact")
        if want.name != have.name:
            raise SignatureError(f"{want.describe()}: changed since signing "
                                 f"(now named '{have.name}')")
        if want.digest != have.digest:
            raise SignatureError(f"{have.describe()}: changed since signing (sha256 "
                                 f"{have.digest.hex()[:16]}..., signed {want.digest.hex()[:16]}...)")


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack("<I", len(raw)) + raw


def artifact_metadata(layout: SignatureLayout, artifact: "Artifact") -> Metadata:
    """The metadata of an artifact (``sigbpf.artifact.format.Artifact``) for *layout*.

    *artifact* must be the artifact without its signature sections (any other
    extension section is covered).  Every field of the artifact model is in
    some item, and the ARTIFACT item covers its canonical encoding as a whole.
    """
    items: list[MetadataItem] = []
    add = lambda kind, index, name, data: items.append(item(kind, index, name, data))  # noqa: E731
    for i, prog in enumerate(artifact.programs):
        add(ItemKind.PROGRAM_INSNS, i, prog.name, program_insn_bytes(prog.insn_bytes))
        add(ItemKind.PROGRAM_ATTRS, i, prog.name,
            _text(prog.name) + _text(prog.section) + _text(prog.attach_to)
            + struct.pack("<IIII", prog.prog_type, prog.expected_attach_type, prog.prog_flags,
                          prog.kern_version))
        add(ItemKind.PROGRAM_LICENSE, i, prog.name, _text(prog.license))
        add(ItemKind.PROGRAM_FUNC_INFO, i, prog.name, prog.func_info_bytes)
        add(ItemKind.PROGRAM_LINE_INFO, i, prog.name, prog.line_info_bytes)
        add(ItemKind.PROGRAM_CORE_RELOS, i, prog.name, prog.core_relo_bytes)
        sites = bytearray()
        for site in prog.kfunc_sites:
            kf = artifact.kfuncs[site.kfunc]
            sites += struct.pack("<IIIII", site.insn, int(site.kind), site.kfunc, kf.btf_id,
                                 int(kf.weak)) + _text(kf.name)
        add(ItemKind.PROGRAM_KFUNC_SITES, i, prog.name, bytes(sites))
        # 1.1 items are present only where the artifact uses them, so the metadata of a
        # 1.0 artifact (and every signature made over it) stays what it was.
        if prog.attach is not None:
            add(ItemKind.PROGRAM_ATTACH, i, prog.name, _text(prog.attach.name)
                + struct.pack("<I", prog.attach.kind) + _text(prog.attach.module)
                + _text(prog.attach.member))
        if prog.ksym_sites:
            add(ItemKind.PROGRAM_KSYM_SITES, i, prog.name, b"".join(
                struct.pack("<III", site.insn, site.ksym, artifact.ksyms[site.ksym].btf_id)
                + _text(artifact.ksyms[site.ksym].name) for site in prog.ksym_sites))
    add(ItemKind.PROGRAM_BTF, 0, "", bytes(artifact.btf))
    add(ItemKind.KFUNC_TABLE, 0, "",
        b"".join(struct.pack("<II", k.btf_id, int(k.weak)) + _text(k.name) for k in artifact.kfuncs))
    if artifact.kconfig:
        add(ItemKind.KCONFIG_TABLE, 0, "", b"".join(
            struct.pack("<IIIII", k.type, k.offset, k.size, int(k.weak), int(k.signed))
            + _text(k.name) for k in artifact.kconfig))
    if artifact.ksyms:
        add(ItemKind.KSYM_TABLE, 0, "", b"".join(
            struct.pack("<III", y.btf_id, y.type_id, int(y.weak)) + _text(y.name)
            for y in artifact.ksyms))
    for i, m in enumerate(artifact.maps):
        add(ItemKind.MAP_DEFINITION, i, m.name,
            _text(m.name) + _text(m.section)
            + struct.pack("<IIIIIIIIIIiIQ", int(m.kind), m.map_type, m.key_size, m.value_size,
                          m.max_entries, m.map_flags, m.btf_key_type_id, m.btf_value_type_id,
                          int(m.flags), m.pinning, m.inner_map, m.numa_node, m.map_extra))
        add(ItemKind.MAP_DATA, i, m.name,
            struct.pack("<I", len(m.initial_data)) + bytes(m.initial_data))
        if m.slots:
            add(ItemKind.MAP_SLOTS, i, m.name, b"".join(
                struct.pack("<III", slot.slot, int(slot.kind), slot.target) for slot in m.slots))
    add(ItemKind.ARTIFACT_NAME, 0, "", _text(artifact.name))
    for i, ext in enumerate(artifact.extensions):
        add(ItemKind.EXTENSION, i, f"type {ext.type:#x}",
            struct.pack("<II", ext.type, ext.entry_size) + bytes(ext.data))
    add(ItemKind.ARTIFACT, 0, "", artifact.encode())
    return Metadata.build(layout, items)


def signed_bytes(layout: SignatureLayout, insns: bytes, metadata_blob: bytes) -> bytes:
    """The bytes a program's signature covers in *layout*."""
    if layout is SignatureLayout.INSNS:
        return bytes(insns)
    return bytes(insns) + bytes(metadata_blob)


def program_insn_bytes(slots: Sequence[bytes] | bytes) -> bytes:
    """A program's instructions as the kernel hashes them: the 8-byte slots, concatenated."""
    data = bytes(slots) if isinstance(slots, (bytes, bytearray, memoryview)) else b"".join(slots)
    if len(data) % 8:
        raise FormatError(f"instructions are {len(data)} bytes, not a multiple of 8")
    return data
