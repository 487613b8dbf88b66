"""Reading raw BTF bytes: header, section layout, string section, record framing.

The checks and their messages follow the kernel's ``btf_parse_hdr``,
``btf_check_sec_info``, ``btf_parse_str_sec`` and ``btf_check_all_metas``
(kernel/bpf/btf.c) so that an error here reads like the verifier log.  What
is checked per record beyond framing lives in :mod:`sigbpf.btf.validate`.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import sys
from array import array
from itertools import accumulate
from typing import TYPE_CHECKING

from sigbpf.btf import kinds as K
from sigbpf.btf.strings import StringTable
from sigbpf.errors import BTFError, ELFError

if TYPE_CHECKING:
    from sigbpf.btf.spec import BTF

_MAGIC_LE = b"\x9f\xeb"
_BAD = 1 << 40  # record length that makes framing overshoot (see record_length)
_MAGIC_BE = b"\xeb\x9f"


def read_file(path: "str | os.PathLike[str]") -> bytes:
    """All bytes of a regular file; BTFError (one line, naming the file) otherwise.

    Refuses directories and non-regular files (a FIFO or /dev/zero would never end).
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise BTFError("is a directory" if stat.S_ISDIR(mode) else "not a regular file", file=name)
            return f.read()
    except IsADirectoryError:
        raise BTFError("is a directory", file=name) from None
    except OSError as err:
        raise BTFError(err.strerror or str(err), file=name) from None


def byte_order_of(data: bytes) -> str:
    """'little' or 'big' from the BTF magic; BTFError if it is not BTF."""
    if len(data) < 2:
        raise BTFError("too short for a BTF header (magic not found)", offset=0)
    if data[:2] == _MAGIC_LE:
        return "little"
    if data[:2] == _MAGIC_BE:
        return "big"
    raise BTFError(f"Invalid magic {data[:2].hex()} (want 0x{K.BTF_MAGIC:x})", offset=0)


def parse(cls: "type[BTF]", data: bytes, base: "BTF | None", *, file: str | None) -> "BTF":
    """Check header, sections and framing of *data*; return a lazily decoded BTF."""
    try:
        return _parse(cls, bytes(data), base, file)
    except BTFError as err:
        raise err.at(file=file) from None


def _parse(cls: "type[BTF]", data: bytes, base: "BTF | None", file: str | None) -> "BTF":
    order = byte_order_of(data)
    e = "<" if order == "little" else ">"
    size = len(data)
    if size < 8:
        raise BTFError("hdr_len not found", offset=0)
    _magic, version, flags, hdr_len = struct.unpack_from(e + "HBBI", data, 0)
    if hdr_len < K.HEADER_SIZE:
        # The kernel copies min(hdr_len, 24) bytes; a shorter header leaves the
        # section fields zero, which can only describe an empty blob.
        raise BTFError(f"btf_header too short: hdr_len {hdr_len} < {K.HEADER_SIZE}", offset=4)
    if size < hdr_len:
        raise BTFError(f"btf_header not found: hdr_len {hdr_len} > {size} bytes", offset=4)
    if hdr_len > K.HEADER_SIZE and any(data[K.HEADER_SIZE:hdr_len]):
        bad = K.HEADER_SIZE + next(i for i, b in enumerate(data[K.HEADER_SIZE:hdr_len]) if b)
        raise BTFError("Unsupported btf_header: non-zero bytes after the known fields", offset=bad)
    if version != K.BTF_VERSION:
        raise BTFError(f"Unsupported version {version}", offset=2)
    if flags:
        raise BTFError(f"Unsupported flags {flags:#x}", offset=3)
    type_off, type_len, str_off, str_len = struct.unpack_from(e + "IIII", data, 8)
    if base is None and size == hdr_len:
        raise BTFError("No data", offset=hdr_len)
    _check_sections(size - hdr_len, hdr_len, (("type", type_off, type_len, 8), ("string", str_off, str_len, 16)))

    # String section (btf_parse_str_sec).
    s0 = hdr_len + str_off
    sdata = data[s0:s0 + str_len]
    if s0 + str_len != size:
        raise BTFError("String section is not at the end", offset=s0)
    if not (base is not None and str_len == 0):
        if str_len == 0 or str_len - 1 > K.MAX_NAME_OFFSET:
            raise BTFError(f"Invalid string section: length {str_len}", offset=s0)
        if sdata[-1] != 0:
            raise BTFError("Invalid string section: not NUL-terminated", offset=s0 + str_len - 1)
        if base is None and sdata[0] != 0:
            raise BTFError("Invalid string section: does not start with NUL", offset=s0)
    strings = StringTable(sdata, base.strings if base is not None else None, file=file)

    # Type section (btf_parse_type_sec + framing of btf_check_all_metas).
    t0 = hdr_len + type_off
    if type_off & 3:
        raise BTFError(f"Unaligned type_off {type_off}", offset=8)
    if base is None and type_len == 0:
        raise BTFError("No type found", offset=12)
    whole = type_len - type_len % 4
    if order == sys.byteorder:
        # No copy: a view of the input as host-order u32 words (keeps *data* alive).
        words: "array | memoryview" = memoryview(data)[t0:t0 + whole].cast("I")
    else:
        words = array("I")
        words.frombytes(memoryview(data)[t0:t0 + whole])
        words.byteswap()
    start_id = (base.type_count + 1) if base is not None else 1
    infos, name_offs, step = frame(words, start_id, t0, has_tail=type_len != whole)
    if start_id - 1 + len(infos) > K.MAX_TYPE:
        raise BTFError(f"too many types: {start_id - 1 + len(infos)} > {K.MAX_TYPE}",
                       offset=t0, type_id=K.MAX_TYPE + 1)
    return cls(words=words, infos=infos, name_offs=name_offs, step=step, strings=strings, base=base,
               byte_order=order, header=data[:hdr_len], type_off=type_off, str_off=str_off, file=file)


def _check_sections(expected_total: int, hdr_len: int, secs: tuple[tuple[str, int, int, int], ...]) -> None:
    """btf_check_sec_info: sections must tile the data after the header exactly."""
    total = 0
    for name, off, length, field in sorted(secs, key=lambda s: s[1]):
        if expected_total < off:
            raise BTFError(f"Invalid section offset: {name} section at {off} beyond data end {expected_total}",
                           offset=field)
        if total < off:
            raise BTFError(f"Unsupported section found: gap before the {name} section at {off}", offset=field)
        if total > off:
            raise BTFError(f"Section overlap found: {name} section at {off} overlaps the previous one",
                           offset=field)
        if expected_total - total < length:
            raise BTFError(f"Total section length too long: {name} section {off}+{length} > {expected_total}",
                           offset=field + 4)
        total += length
    if total != expected_total:
        raise BTFError(f"Unsupported section found: {expected_total - total} trailing bytes",
                       offset=hdr_len + total)


def record_length(info: int) -> int:
    """Length in words of a record whose info word is *info*.

    Unknown kinds and reserved bits give a huge length, so that framing
    overshoots and :func:`_report_framing` explains what is wrong.
    """
    kind = (info >> 24) & 0x1F
    if info & ~K.INFO_MASK & 0xFFFFFFFF or kind == 0 or kind > K.KIND_MAX:
        return _BAD
    return K.record_words(kind, info & 0xFFFF)


def frame(words: "array | memoryview", start_id: int, byte_base: int, *,
          has_tail: bool = False) -> tuple[list[int], list[int], dict[int, int]]:
    """(info word, name offset) of every record in *words*, and the info -> length table used.

    This is the hot loop of parsing: per record two appends and one plain dict
    look-up (an unseen info value raises KeyError once and is added).  Record
    offsets follow from the infos (``accumulate(map(step.__getitem__, infos))``)
    and are computed only when a record is decoded.  BTFError for a truncated
    record, a bad kind or reserved info bits.
    """
    step: dict[int, int] = {}
    infos: list[int] = []
    name_offs: list[int] = []
    append_info = infos.append
    append_name = name_offs.append
    shifted = words[1:]  # shifted[pos] is the info word of the record at pos
    pos = 0
    info = 0
    while True:
        try:
            while True:
                info = shifted[pos]
                append_info(info)
                append_name(words[pos])
                pos += step[info]
        except KeyError:
            step[info] = length = record_length(info)
            pos += length
        except IndexError:
            break
    if pos != len(words) or has_tail:
        offsets = list(accumulate(map(step.__getitem__, infos), initial=0))[:len(infos)]
        _report_framing(words, offsets, start_id, byte_base, min(pos, len(words)))
    return infos, name_offs, step


def _report_framing(words: "array | memoryview", offsets: list[int], start_id: int, byte_base: int,
                    end: int) -> None:
    """Slow path: say which record is bad and why."""
    n = len(words)
    for i, pos in enumerate(offsets):
        type_id = start_id + i
        where = byte_base + 4 * pos
        if n - pos < 3:
            raise BTFError(f"truncated type record: meta_left:{4 * (n - pos)} meta_needed:12",
                           type_id=type_id, offset=where)
        info = words[pos + 1]
        if info & ~K.INFO_MASK & 0xFFFFFFFF:
            raise BTFError(f"Invalid btf_info:{info:x}", type_id=type_id, offset=where + 4)
        kind = (info >> 24) & 0x1F
        if kind == 0 or kind > K.KIND_MAX:
            raise BTFError(f"Invalid kind:{kind}", type_id=type_id, offset=where + 4)
        need = K.record_words(kind, info & 0xFFFF)
        if n - pos < need:
            raise BTFError(f"truncated {K.Kind(kind).name} record: meta_left:{4 * (n - pos) - 12} "
                           f"meta_needed:{4 * need - 12}", type_id=type_id, offset=where)
    raise BTFError("truncated type section: trailing bytes after the last record",
                   type_id=start_id + len(offsets), offset=byte_base + 4 * end)



def elf_btf_section(data: bytes, file: str | None = None) -> bytes:
    """The ``.BTF`` section of an ELF file (pyelftools, imported here on use)."""
    from elftools.common.exceptions import ELFError as _PyELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(data))
        sec = elf.get_section_by_name(".BTF")
        if sec is None:
            raise ELFError("no .BTF section (compile with -g)", file=file)
        return sec.data()
    except (_PyELFError, struct.error, ValueError, IndexError) as err:
        raise ELFError(f"not a readable ELF file: {err}", file=file) from None
