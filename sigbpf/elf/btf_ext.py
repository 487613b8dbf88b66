"""``.BTF.ext``: func_info, line_info and CO-RE relocations of a BPF object.

Layout (``struct btf_ext_header``, then three "info" blocks)::

    u16 magic 0xeB9F, u8 version 1, u8 flags 0, u32 hdr_len,
    u32 func_info_off, func_info_len, line_info_off, line_info_len,
    [u32 core_relo_off, core_relo_len]          (when hdr_len >= 32)

Each block (offsets are relative to the end of the header) is ``u32
rec_size`` followed by per-ELF-section groups ``{u32 sec_name_off, u32
num_info, num_info * rec_size bytes}``.  ``sec_name_off`` and the record's
string offsets point into the ``.BTF`` string section.  The records are the
kernel's ``bpf_func_info`` (insn_off, type_id), ``bpf_line_info`` (insn_off,
file_name_off, line_off, line_col) and ``bpf_core_relo`` (insn_off, type_id,
access_str_off, kind); in the object ``insn_off`` is a *byte* offset in the
ELF section (libbpf divides by 8 before loading).

The checks are libbpf's ``btf_ext_parse``: magic (either byte order),
version 1, flags 0, header inside the data, blocks 4-byte aligned and inside
the data, record sizes at least the kernel struct and a multiple of 4 (exact
for the non-native byte order), no empty block, no group with zero records,
no group running past its block.  sigbpf also checks that string offsets are
inside ``.BTF``'s strings and ``insn_off`` is a multiple of 8.  Errors are
:class:`~sigbpf.errors.FormatError` with the file and the file offset of the
bad field.

These records are the *object's* view: ``insn`` counts instruction slots from
the start of the ELF section (every kind, CO-RE relocations included) and the
BTF strings they name are decoded.  The kernel's wire records, program-relative
and in the kernel's units (``bpf_core_relo.insn_off`` in bytes), are
:class:`sigbpf.artifact.format.FuncInfo` / ``LineInfo`` / ``CoreRelo``;
:func:`sigbpf.artifact.link.link_program` is the one place that turns the first
into the second.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Callable, Literal

from sigbpf.errors import BTFError, FormatError

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.btf import BTF

BTF_EXT_MAGIC = 0xEB9F
HEADER_MIN = 24  # up to line_info_len
HEADER_CORE = 32  # up to core_relo_len
FUNC_INFO_MIN = 8
LINE_INFO_MIN = 16
CORE_RELO_MIN = 16


class CoreReloKind(IntEnum):
    """``enum bpf_core_relo_kind``."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


@dataclass(frozen=True, slots=True)
class FuncInfo:
    """``bpf_func_info``: the FUNC type of the function starting at slot ``insn`` of the section."""

    insn: int
    type_id: int


class LineColumn:
    """``line``/``col`` of a ``bpf_line_info``'s ``line_col``, as the kernel's
    ``BPF_LINE_INFO_LINE_NUM`` (``>> 10``) and ``BPF_LINE_INFO_LINE_COL`` (``& 0x3ff``);
    shared by this module's :class:`LineInfo` and the artifact's."""

    __slots__ = ()
    line_col: int

    @property
    def line(self) -> int:
        return self.line_col >> 10

    @property
    def col(self) -> int:
        return self.line_col & 0x3FF


@dataclass(frozen=True, slots=True)
class LineInfo(LineColumn):
    """``bpf_line_info``; ``line``/``col`` are ``line_col >> 10`` and ``line_col & 0x3ff``."""

    insn: int
    file_name_off: int
    line_off: int
    line_col: int
    file_name: str
    source_line: str


@dataclass(frozen=True, slots=True)
class CoreRelo:
    """``bpf_core_relo``: a CO-RE relocation of the instruction at slot ``insn``."""

    insn: int
    type_id: int
    access_str_off: int
    kind: CoreReloKind | int
    access: str  # the access string, e.g. "0:1:2"


@dataclass(frozen=True, slots=True)
class BTFExt:
    """A parsed ``.BTF.ext``; each mapping is ELF section name -> records in file order."""

    func_info: dict[str, tuple[FuncInfo, ...]]
    line_info: dict[str, tuple[LineInfo, ...]]
    core_relos: dict[str, tuple[CoreRelo, ...]]
    func_info_rec_size: int
    line_info_rec_size: int
    core_relo_rec_size: int
    byteorder: Literal["little", "big"]

    @classmethod
    def parse(cls, data: bytes, btf: "BTF", *, file: str | None = None,
              base_offset: int = 0) -> "BTFExt":
        """Parse ``.BTF.ext`` bytes; strings are looked up in *btf* (the object's ``.BTF``).

        *base_offset* is the file offset of the section, so that errors name
        file offsets.
        """
        return _Parser(bytes(data), btf, file, base_offset).parse()

    def counts(self) -> dict[str, int]:
        """Total records of each kind (what ``bpftool prog show`` style tools count)."""
        return {
            "func_info": sum(map(len, self.func_info.values())),
            "line_info": sum(map(len, self.line_info.values())),
            "core_relos": sum(map(len, self.core_relos.values())),
        }


class _Parser:
    def __init__(self, data: bytes, btf: "BTF", file: str | None, base: int) -> None:
        self.data = data
        self.btf = btf
        self.file = file
        self.base = base
        self.order: Literal["little", "big"] = "little"

    def error(self, message: str, at: int) -> FormatError:
        return FormatError(f".BTF.ext: {message}", file=self.file, offset=self.base + at)

    def u32s(self, at: int, count: int) -> tuple[int, ...]:
        fmt = ("<" if self.order == "little" else ">") + "I" * count
        return struct.unpack_from(fmt, self.data, at)

    def string(self, off: int, at: int, what: str) -> str:
        try:
            return self.btf.string_at(off)
        except (BTFError, IndexError, ValueError):
            raise self.error(f"{what} string offset {off} is outside .BTF strings", at) from None

    def parse(self) -> BTFExt:
        d = self.data
        if len(d) < 8:
            raise self.error(f"header too short ({len(d)} bytes)", 0)
        if d[:2] == b"\x9f\xeb":
            self.order = "little"
        elif d[:2] == b"\xeb\x9f":
            self.order = "big"
        else:
            raise self.error(f"invalid magic {d[0]:02x}{d[1]:02x} (expected eb9f)", 0)
        if d[2] != 1:
            raise self.error(f"unsupported version {d[2]}", 2)
        if d[3] != 0:
            raise self.error(f"unsupported flags {d[3]:#x}", 3)
        (hdr_len,) = self.u32s(4, 1)
        if hdr_len > len(d):
            raise self.error(f"header length {hdr_len} beyond the section ({len(d)} bytes)", 4)
        if hdr_len == len(d):
            raise self.error("no data after the header", 4)
        if hdr_len < HEADER_MIN:
            raise self.error(f"header length {hdr_len} misses func_info/line_info", 4)
        fi_off, fi_len, li_off, li_len = self.u32s(8, 4)
        co_off = co_len = 0
        if hdr_len >= HEADER_CORE:
            co_off, co_len = self.u32s(24, 2)
        native = self.order == sys.byteorder  # libbpf: "native" = the host's byte order
        fi_size, fi = self.block("func_info", hdr_len, fi_off, fi_len, FUNC_INFO_MIN, 8, native,
                                 self.func_info)
        li_size, li = self.block("line_info", hdr_len, li_off, li_len, LINE_INFO_MIN, 16, native,
                                 self.line_info)
        co_size, co = self.block("core_relo", hdr_len, co_off, co_len, CORE_RELO_MIN, 24, native,
                                 self.core_relo)
        return BTFExt(func_info=fi, line_info=li, core_relos=co, func_info_rec_size=fi_size,
                      line_info_rec_size=li_size, core_relo_rec_size=co_size, byteorder=self.order)

    def block(self, desc: str, hdr_len: int, off: int, length: int, min_size: int, field_at: int,
              native: bool, record: Callable[[int, int], object]) -> tuple[int, dict]:
        out: dict[str, tuple] = {}
        if length == 0:
            return 0, out
        if off & 3:
            raise self.error(f"{desc} block offset {off} is not 4-byte aligned", field_at)
        start = hdr_len + off
        if start + length > len(self.data):
            raise self.error(f"{desc} block (off {off}, len {length}) runs past the section end", field_at)
        if length < 4:
            raise self.error(f"{desc} record size not found", start)
        (rec_size,) = self.u32s(start, 1)
        if rec_size < min_size or rec_size & 3 or (not native and rec_size != min_size):
            raise self.error(f"{desc} has invalid record size {rec_size}", start)
        pos, end = start + 4, start + length
        if pos == end:
            raise self.error(f"{desc} has no records", start)
        while pos < end:
            if end - pos < 8:
                raise self.error(f"{desc} section header is not found", pos)
            name_off, num = self.u32s(pos, 2)
            if num == 0:
                raise self.error(f"{desc} group has incorrect num_records 0", pos + 4)
            if end - pos - 8 < num * rec_size:
                raise self.error(f"{desc} group has incorrect num_records {num}", pos + 4)
            sec_name = self.string(name_off, pos, f"{desc} section name")
            recs = []
            rpos = pos + 8
            for _ in range(num):
                recs.append(record(rpos, rec_size))
                rpos += rec_size
            # Several groups for one section would be unusual; keep them all, in order.
            out[sec_name] = out.get(sec_name, ()) + tuple(recs)
            pos = rpos
        return rec_size, out

    def insn(self, insn_off: int, at: int) -> int:
        if insn_off % 8:
            raise self.error(f"insn_off {insn_off} is not a multiple of 8", at)
        return insn_off // 8

    def func_info(self, at: int, _size: int) -> FuncInfo:
        insn_off, type_id = self.u32s(at, 2)
        return FuncInfo(self.insn(insn_off, at), type_id)

    def line_info(self, at: int, _size: int) -> LineInfo:
        insn_off, file_off, line_off, line_col = self.u32s(at, 4)
        return LineInfo(self.insn(insn_off, at), file_off, line_off, line_col,
                        self.string(file_off, at + 4, "line_info file name"),
                        self.string(line_off, at + 8, "line_info line"))

    def core_relo(self, at: int, _size: int) -> CoreRelo:
        insn_off, type_id, access_off, kind = self.u32s(at, 4)
        try:
            kind_value: CoreReloKind | int = CoreReloKind(kind)
        except ValueError:
            raise self.error(f"core_relo kind {kind} is unknown", at + 12) from None
        return CoreRelo(self.insn(insn_off, at), type_id, access_off, kind_value,
                        self.string(access_off, at + 8, "core_relo access"))
