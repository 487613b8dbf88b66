"""The signed loader file (docs/FORMAT.md, "The signed loader file"): encode and decode.

A loader file holds one generated loader: its protocol, the loader program's
instructions, the data blob (the value of its exclusive map), what the ctx
looks like (the maps and programs whose fds the loader returns, by name) and
the generator's notes (labels, emitter comments) for a readable disassembly.
The encoding is canonical: one loader, one byte string.

A *signed* loader (format 1.1, header flag ``SIGNED``) also carries one PKCS#7
signature after the string table: over the loader's instructions (protocol
v1) or its instructions followed by the blob (v2); see :mod:`.sign`.  An
unsigned loader is still written as format 1.0, byte for byte as before.

A loader that loads a program of a type that attaches (anything but
``BPF_PROG_TYPE_SYSCALL``) is written as format 1.2 (header flag ``ATTACH``):
an ATTACH part after PROGS gives each program's section name, expected attach
type and attach target name, what ``sigbpf load LOADER --attach`` plans from.
These names are not covered by the signature (docs/FORMAT.md 8.1).

A loader of an artifact with ``.kconfig`` externs is written as format 1.3 (header flag
``KCONFIG``, the kconfig extern count in the header's word at 60): a KCONFIG part after
ATTACH (or PROGS) gives the KCONFIG map's index and value size and the externs (as the
artifact's KCONFIG section), from which the runner computes the values the loader copies
from the ctx.  Neither these names nor the values are covered by the signature.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import TYPE_CHECKING

from sigbpf.asm import Instruction
from sigbpf.errors import FormatError
from sigbpf.loadergen.assembler import Note, NoteKind
from sigbpf.loadergen.emit import ctx_size
from sigbpf.loadergen.magic import LOADER_MAGIC, is_loader

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.artifact.format import KconfigExtern
    from sigbpf.loadergen.own_btf import OwnBTF

VERSION = (1, 0)
#: A signed loader: the header's flag SIGNED, its signature size at offset 56.
VERSION_SIGNED = (1, 1)
#: A loader with attach names (header flag ATTACH), signed or not.
VERSION_ATTACH = (1, 2)
#: A loader with kconfig externs (header flag KCONFIG), attach names or not, signed or not.
VERSION_KCONFIG = (1, 3)
#: A loader with its own BTF (header flag OWN_BTF), with any of the parts of 1.1-1.3.
VERSION_OWN_BTF = (1, 4)
#: The largest signature a loader file holds (bpftool's limit for BPF_PROG_LOAD's signature).
MAX_SIGNATURE_SIZE = 4096
HEADER = struct.Struct("<8sHHIIIIIIIIIIIII")
HEADER_SIZE = HEADER.size  # 64
MAP_RECORD = struct.Struct("<III")
PROG_RECORD = struct.Struct("<II")
ATTACH_RECORD = struct.Struct("<III")
NOTE_RECORD = struct.Struct("<III")
KCONFIG_HEAD = struct.Struct("<II")  # map index, value size
KCONFIG_RECORD = struct.Struct("<5I")  # name_off, type, offset, size, flags (as the artifact's)
OWN_BTF_HEAD = struct.Struct("<II")  # btf_size, main_func_id
_KCONFIG_WEAK, _KCONFIG_SIGNED = 1, 2


class Protocol(IntEnum):
    """How the loader's data blob is bound to the loader (docs/FORMAT.md)."""

    #: 6.18: the loader checks its exclusive blob map's SHA-256 against a hash in its insns.
    V1 = 1
    #: The kernel checks ``insns || blob`` (``fd_array_cnt``); no check in the loader.
    V2 = 2


class LoaderFlags(IntFlag):
    """The header's flags (format 1.1)."""

    NONE = 0
    #: A signature follows the string table; its size is the header's u32 at 56.
    SIGNED = 1
    #: 1.2: an ATTACH part (one record per program) follows PROGS.
    ATTACH = 2
    #: 1.3: a KCONFIG part follows ATTACH (or PROGS); its record count is the header's u32 at 60.
    KCONFIG = 4
    #: 1.4: an OWN_BTF part (``u32 btf_size, u32 main_func_id``, the BTF) follows KCONFIG (or
    #: ATTACH, or PROGS).
    OWN_BTF = 8


class LoaderMapFlags(IntFlag):
    NONE = 0
    #: The loader takes ``max_entries`` from the ctx's map descriptor (number of possible CPUs).
    MAX_ENTRIES_FROM_CTX = 1


@dataclass(frozen=True, slots=True)
class LoaderMap:
    """A map descriptor of the ctx: the map's name, type and flags."""

    name: str
    map_type: int
    flags: LoaderMapFlags = LoaderMapFlags.NONE


@dataclass(frozen=True, slots=True)
class LoaderProg:
    """A program descriptor of the ctx: the program's name and type, and (format 1.2) what
    attaching it needs: its section name, expected attach type and attach target name."""

    name: str
    prog_type: int
    section: str = ""
    expected_attach_type: int = 0
    attach_to: str = ""


@dataclass(frozen=True, slots=True)
class LoaderKconfig:
    """The KCONFIG map (format 1.3): its index, value size and ``.kconfig`` externs; the
    caller computes the value and passes its address as the map descriptor's
    ``initial_value`` (not covered by the signature: docs/FORMAT.md 8.1)."""

    map_index: int
    value_size: int
    externs: tuple["KconfigExtern", ...] = ()


@dataclass(frozen=True, slots=True)
class Loader:
    """One generated loader."""

    protocol: Protocol
    name: str
    insns: tuple[Instruction, ...]
    blob: bytes
    maps: tuple[LoaderMap, ...] = ()
    progs: tuple[LoaderProg, ...] = ()
    notes: tuple[Note, ...] = ()
    #: PKCS#7 DER in the kernel's format (empty: not signed); docs/FORMAT.md 8.4.
    signature: bytes = b""
    #: Format 1.3: the KCONFIG map and its externs (None: the artifact has none).
    kconfig: LoaderKconfig | None = None
    #: Format 1.4: the loader's own BTF, when its instructions call kfuncs in PROG_BTF form
    #: (:mod:`sigbpf.loadergen.own_btf`; not covered by the kernel's signature).
    own_btf: "OwnBTF | None" = None

    @property
    def signed_payload(self) -> bytes:
        """The bytes the kernel checks the signature over: v1 the instructions (the blob is
        bound by the loader's built-in hash); v2 ``insns || blob`` (the frozen exclusive
        blob map's contents, fd_array order)."""
        if self.protocol is Protocol.V2:
            return self.insn_bytes + self.blob
        return self.insn_bytes

    @property
    def insn_bytes(self) -> bytes:
        return Instruction.encode(self.insns)

    @property
    def insns_sha256(self) -> bytes:
        """SHA-256 of the loader's instructions: its blob map's ``excl_prog_hash``."""
        return hashlib.sha256(self.insn_bytes).digest()

    @property
    def blob_sha256(self) -> bytes:
        """SHA-256 of the blob: what ``map->sha`` must be (protocol v1's built-in hash)."""
        return hashlib.sha256(self.blob).digest()

    @property
    def ctx_size(self) -> int:
        return ctx_size(len(self.maps), len(self.progs))

    def encode(self) -> bytes:
        return _encode(self)

    @classmethod
    def decode(cls, data: bytes, *, file: str | None = None) -> "Loader":
        return _decode(bytes(data), file)


def _pad8(data: bytes) -> bytes:
    return data + bytes(-len(data) % 8)


class _Strings:
    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self.index: dict[str, int] = {"": 0}

    def add(self, text: str) -> int:
        if text not in self.index:
            self.index[text] = len(self.data)
            self.data += text.encode() + b"\0"
        return self.index[text]


def _encode(ld: Loader) -> bytes:
    strings = _Strings()
    name_off = strings.add(ld.name)
    maps = b"".join(MAP_RECORD.pack(strings.add(m.name), m.map_type, int(m.flags)) for m in ld.maps)
    progs = b"".join(PROG_RECORD.pack(strings.add(p.name), p.prog_type) for p in ld.progs)
    with_attach = any(p.section or p.expected_attach_type or p.attach_to for p in ld.progs)
    attach = b"".join(ATTACH_RECORD.pack(strings.add(p.section), p.expected_attach_type,
                                         strings.add(p.attach_to))
                      for p in ld.progs) if with_attach else b""
    kc = ld.kconfig
    kconfig = b""
    if kc is not None:
        kconfig = KCONFIG_HEAD.pack(kc.map_index, kc.value_size) + b"".join(
            KCONFIG_RECORD.pack(strings.add(k.name), k.type, k.offset, k.size,
                                (_KCONFIG_WEAK if k.weak else 0) | (_KCONFIG_SIGNED if k.signed else 0))
            for k in kc.externs)
    own = b""
    if ld.own_btf is not None:
        own = OWN_BTF_HEAD.pack(len(ld.own_btf.raw), ld.own_btf.main_id) + ld.own_btf.raw
    notes = b"".join(NOTE_RECORD.pack(n.insn, int(n.kind), strings.add(n.text)) for n in ld.notes)
    sig = bytes(ld.signature)
    if len(sig) > MAX_SIGNATURE_SIZE:
        raise FormatError(f"loader file: signature of {len(sig)} bytes, over the "
                          f"{MAX_SIGNATURE_SIZE} bytes a loader file holds")
    version, flags = (VERSION_SIGNED, LoaderFlags.SIGNED) if sig else (VERSION, LoaderFlags.NONE)
    if with_attach:
        version, flags = VERSION_ATTACH, flags | LoaderFlags.ATTACH
    if kc is not None:
        version, flags = VERSION_KCONFIG, flags | LoaderFlags.KCONFIG
    if own:
        version, flags = VERSION_OWN_BTF, flags | LoaderFlags.OWN_BTF
    header = HEADER.pack(LOADER_MAGIC, *version, HEADER_SIZE, int(ld.protocol), int(flags),
                         len(ld.insns), len(ld.blob), len(ld.maps), len(ld.progs), ld.ctx_size,
                         len(ld.notes), len(strings.data), name_off, len(sig),
                         len(kc.externs) if kc is not None else 0)
    parts = ((ld.insn_bytes, ld.blob, maps, progs) + ((attach,) if with_attach else ())
             + ((kconfig,) if kc is not None else ()) + ((own,) if own else ())
             + (notes, bytes(strings.data)) + ((sig,) if sig else ()))
    return header + b"".join(_pad8(part) for part in parts)


def _decode(data: bytes, file: str | None) -> Loader:
    def fail(message: str, offset: int) -> FormatError:
        return FormatError(f"loader file: {message}", file=file, offset=offset)

    if len(data) < HEADER_SIZE:
        raise fail(f"{len(data)} bytes, shorter than the {HEADER_SIZE}-byte header", 0)
    (magic, major, minor, header_size, protocol, flags, insn_cnt, blob_size, map_cnt, prog_cnt,
     ctx_sz, note_cnt, str_size, name_off, r0, r1) = HEADER.unpack_from(data)
    if magic != LOADER_MAGIC:
        raise fail("bad magic (not a sigbpf loader file)", 0)
    if (major, minor) not in (VERSION, VERSION_SIGNED, VERSION_ATTACH, VERSION_KCONFIG,
                              VERSION_OWN_BTF):
        raise fail(f"unsupported loader format version {major}.{minor} (this reader knows "
                   f"1.0 to 1.4)", 8)
    if header_size != HEADER_SIZE:
        raise fail("bad header (header_size must be 64)", 12)
    if (major, minor) < VERSION_KCONFIG and r1:
        raise fail("bad header (the reserved word at 60 must be 0 before format 1.3)", 60)
    if (major, minor) == VERSION and (flags or r0):
        raise fail("bad header (format 1.0: flags and reserved must be 0)", 20)
    if (major, minor) == VERSION_SIGNED:
        if flags != LoaderFlags.SIGNED:
            raise fail(f"bad header (format 1.1: flags {flags:#x}, must be SIGNED)", 20)
    if (major, minor) == VERSION_ATTACH:
        if flags & ~(LoaderFlags.SIGNED | LoaderFlags.ATTACH) or not flags & LoaderFlags.ATTACH:
            raise fail(f"bad header (format 1.2: flags {flags:#x}, must be ATTACH [| SIGNED])", 20)
        if not flags & LoaderFlags.SIGNED and r0:
            raise fail("bad header (signature size without the SIGNED flag)", 56)
    if (major, minor) == VERSION_KCONFIG:
        known = LoaderFlags.SIGNED | LoaderFlags.ATTACH | LoaderFlags.KCONFIG
        if flags & ~known or not flags & LoaderFlags.KCONFIG:
            raise fail(f"bad header (format 1.3: flags {flags:#x}, must be KCONFIG "
                       f"[| ATTACH] [| SIGNED])", 20)
        if not flags & LoaderFlags.SIGNED and r0:
            raise fail("bad header (signature size without the SIGNED flag)", 56)
    if (major, minor) == VERSION_OWN_BTF:
        known = LoaderFlags.SIGNED | LoaderFlags.ATTACH | LoaderFlags.KCONFIG | LoaderFlags.OWN_BTF
        if flags & ~known or not flags & LoaderFlags.OWN_BTF:
            raise fail(f"bad header (format 1.4: flags {flags:#x}, must be OWN_BTF [| KCONFIG] "
                       f"[| ATTACH] [| SIGNED])", 20)
        if not flags & LoaderFlags.SIGNED and r0:
            raise fail("bad header (signature size without the SIGNED flag)", 56)
    if r1 and not flags & LoaderFlags.KCONFIG:
        raise fail("bad header (kconfig_cnt without the KCONFIG flag)", 60)
    if flags & LoaderFlags.SIGNED:
        if not 0 < r0 <= MAX_SIGNATURE_SIZE:
            raise fail(f"signature size {r0}: must be 1..{MAX_SIGNATURE_SIZE}", 56)
    try:
        proto = Protocol(protocol)
    except ValueError:
        raise fail(f"unknown protocol {protocol}", 16) from None
    if insn_cnt == 0:
        raise fail("no instructions", 24)
    pos = HEADER_SIZE
    parts: dict[str, tuple[int, bytes]] = {}
    attach_size = prog_cnt * ATTACH_RECORD.size if flags & LoaderFlags.ATTACH else 0
    kconfig_size = (KCONFIG_HEAD.size + r1 * KCONFIG_RECORD.size
                    if flags & LoaderFlags.KCONFIG else 0)
    for part, size in (("insns", insn_cnt * 8), ("blob", blob_size),
                       ("maps", map_cnt * MAP_RECORD.size), ("progs", prog_cnt * PROG_RECORD.size),
                       ("attach", attach_size), ("kconfig", kconfig_size), ("own_btf", None),
                       ("notes", note_cnt * NOTE_RECORD.size),
                       ("strtab", str_size), ("signature", r0)):
        if size is None:  # the OWN_BTF part says its own size
            size = 0
            if flags & LoaderFlags.OWN_BTF:
                if pos + OWN_BTF_HEAD.size > len(data):
                    raise fail(f"truncated (in its {part})", pos)
                size = OWN_BTF_HEAD.size + OWN_BTF_HEAD.unpack_from(data, pos)[0]
        if pos + size > len(data):
            raise fail(f"truncated (in its {part})", pos)
        parts[part] = (pos, data[pos:pos + size])
        pos += size + (-size % 8)
    if pos != len(data):
        raise fail(f"{len(data) - pos} bytes after the {'signature' if r0 else 'string table'}", pos)
    if any(byte for p, b in parts.values() for byte in data[p + len(b):p + len(b) + (-len(b) % 8)]):
        raise fail("padding bytes must be 0", HEADER_SIZE)
    str_pos, strtab = parts["strtab"]
    if not strtab or strtab[0] != 0 or strtab[-1] != 0:
        raise fail("the string table must start and end with NUL", str_pos)

    def string(off: int, at: int) -> str:
        if off >= len(strtab):
            raise fail(f"string offset {off} outside the string table", at)
        return strtab[off:strtab.index(b"\0", off)].decode("utf-8", "replace")

    map_pos, map_bytes = parts["maps"]
    maps = tuple(LoaderMap(string(n, map_pos + 12 * i), t, LoaderMapFlags(f))
                 for i, (n, t, f) in enumerate(MAP_RECORD.iter_unpack(map_bytes)))
    prog_pos, prog_bytes = parts["progs"]
    progs = tuple(LoaderProg(string(n, prog_pos + 8 * i), t)
                  for i, (n, t) in enumerate(PROG_RECORD.iter_unpack(prog_bytes)))
    attach_pos, attach_bytes = parts["attach"]
    if attach_bytes:
        progs = tuple(LoaderProg(p.name, p.prog_type, string(sec, attach_pos + 12 * i), eat,
                                 string(to, attach_pos + 12 * i + 8))
                      for i, (p, (sec, eat, to)) in
                      enumerate(zip(progs, ATTACH_RECORD.iter_unpack(attach_bytes))))
    kconfig = None
    kc_pos, kc_bytes = parts["kconfig"]
    if kc_bytes:
        from sigbpf.artifact.format import KconfigExtern

        kmap, ksize = KCONFIG_HEAD.unpack_from(kc_bytes)
        if kmap >= map_cnt:
            raise fail(f"kconfig map index {kmap}: the loader has {map_cnt} maps", kc_pos)
        externs = []
        for i, (n, t, off, size, kf) in enumerate(KCONFIG_RECORD.iter_unpack(kc_bytes[8:])):
            at = kc_pos + 8 + KCONFIG_RECORD.size * i
            if kf & ~(_KCONFIG_WEAK | _KCONFIG_SIGNED):
                raise fail(f"kconfig extern {i}: unknown flags {kf:#x}", at + 16)
            if off + size > ksize:
                raise fail(f"kconfig extern {i}: bytes {off}..{off + size} outside the "
                           f"{ksize}-byte value", at + 8)
            name = string(n, at)
            if not name:
                raise fail(f"kconfig extern {i} has no name", at)
            externs.append(KconfigExtern(name, t, off, size, bool(kf & _KCONFIG_WEAK),
                                         bool(kf & _KCONFIG_SIGNED)))
        kconfig = LoaderKconfig(kmap, ksize, tuple(externs))
    own = None
    own_pos, own_bytes = parts["own_btf"]
    if own_bytes:
        from sigbpf.loadergen.own_btf import parse_own_btf

        size, main_id = OWN_BTF_HEAD.unpack_from(own_bytes)
        try:
            own = parse_own_btf(own_bytes[OWN_BTF_HEAD.size:], main_id, file=file)
        except FormatError as err:
            raise err.at(offset=own_pos) from None
    note_pos, note_bytes = parts["notes"]
    notes = []
    for i, (insn, kind, text) in enumerate(NOTE_RECORD.iter_unpack(note_bytes)):
        if kind not in (1, 2) or insn > insn_cnt:
            raise fail(f"note {i}: bad kind {kind} or insn {insn}", note_pos + 12 * i)
        notes.append(Note(insn, NoteKind(kind), string(text, note_pos + 12 * i)))
    loader = Loader(proto, string(name_off, 52), tuple(Instruction.decode(parts["insns"][1])),
                    parts["blob"][1], maps, progs, tuple(notes), parts["signature"][1], kconfig,
                    own)
    if loader.ctx_size != ctx_sz:
        raise fail(f"ctx_size {ctx_sz} does not match {map_cnt} maps and {prog_cnt} programs "
                   f"({loader.ctx_size})", 40)
    return loader


__all__ = ["LOADER_MAGIC", "MAX_SIGNATURE_SIZE", "VERSION_ATTACH", "VERSION_KCONFIG",
           "VERSION_OWN_BTF", "Loader",
           "LoaderFlags", "LoaderKconfig", "LoaderMap", "LoaderMapFlags", "LoaderProg", "Protocol",
           "is_loader"]
