"""Reading raw BTF bytes: header, section layout, string section, record framing.

The checks and their messages follow the kernel's ``btf_parse_hdr``,
``btf_check_sec_info``, ``btf_parse_str_sec`` and ``btf_check_all_metas``
(kernel/bpf/btf.c) so that an error here reads like the verifier log.  What
is checked per record beyond framing lives in :mod:`sigbpf.btf.validate`.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
import sys
from array import array
from itertools import accumulate, repeat
from operator import getitem
from typing import TYPE_CHECKING, Union

from sigbpf.btf import kinds as K
from sigbpf.btf.strings import StringTable
from sigbpf.errors import BTFError, ELFError

if TYPE_CHECKING:
    from sigbpf.btf.spec import BTF

_MAGIC_LE = b"\x9f\xeb"
_BAD = 1 << 40  # record length that makes framing overshoot (see record_length)
_MAGIC_BE = b"\xeb\x9f"


# What :func:`parse` keeps without copying: bytes, or a read-only mapping from :func:`load_file`.
Buffer = Union[bytes, mmap.mmap]


def load_file(path: "str | os.PathLike[str]") -> Buffer:
    """The contents of a BTF (or ELF) file: mapped if it is the kernel's sysfs BTF, else read.

    ``/sys/kernel/btf/vmlinux`` is mapped read-only and private
    (``MAP_PRIVATE``/``PROT_READ``: measured on 6.18, a shared mapping is
    refused with EACCES): sysfs hands out read() at most a page at a time
    (~1,350 system calls and a 5.5 MB copy for vmlinux, ~2-6 ms in a fresh
    process), while the mapping shares the kernel's pages for free.  A sysfs
    file cannot be truncated under us, so the mapping is safe to keep; a
    regular file is read (a mapping of a file truncated by someone else would
    kill us with SIGBUS), and so is a sysfs file the kernel does not let us
    map (module BTF, kernels without mmap support for it).
    """
    name = os.fspath(path)
    try:
        with open(os.open(name, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            st = os.fstat(f.fileno())
            if stat.S_ISREG(st.st_mode) and st.st_size and _on_sysfs(st.st_dev):
                try:
                    return mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
                except (OSError, ValueError):
                    pass
    except OSError:
        pass  # read_file says what is wrong, in its words
    return read_file(path)


def _on_sysfs(dev: int) -> bool:
    """The device *dev* is the sysfs mounted at /sys."""
    try:
        return os.stat("/sys/kernel").st_dev == dev
    except OSError:
        return False


def read_file(path: "str | os.PathLike[str]") -> bytes:
    """All bytes of a regular file (:func:`sigbpf.fileio.read_input`), errors as BTFError.

    Directories and non-regular files (a FIFO, /dev/zero) are refused: no hang.
    """
    from sigbpf.errors import FormatError
    from sigbpf.fileio import read_input

    try:
        return read_input(path)
    except FormatError as err:
        raise BTFError(err.message, file=os.fspath(path)) from None


def byte_order_of(data: bytes) -> str:
    """'little' or 'big' from the BTF magic; BTFError if it is not BTF."""
    if len(data) < 2:
        raise BTFError("too short for a BTF header (magic not found)", offset=0)
    if data[:2] == _MAGIC_LE:
        return "little"
    if data[:2] == _MAGIC_BE:
        return "big"
    raise BTFError(f"Invalid magic: bytes {data[:2].hex(' ')} are neither 9f eb (little-endian) "
                   "nor eb 9f (big-endian)", offset=0)


def parse(cls: "type[BTF]", data: "bytes | bytearray | memoryview | mmap.mmap", base: "BTF | None", *,
          file: str | None) -> "BTF":
    """Check header, sections and framing of *data*; return a lazily decoded BTF.

    Immutable input (bytes, or a read-only mapping from :func:`load_file`)
    is kept, not copied: the type section is read in place.
    """
    buf: Buffer = data if isinstance(data, (bytes, mmap.mmap)) else bytes(data)
    try:
        return _parse(cls, buf, base, file)
    except BTFError as err:
        raise err.at(file=file) from None


def _parse(cls: "type[BTF]", data: Buffer, base: "BTF | None", file: str | None) -> "BTF":
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
    offsets = frame(words, start_id, t0, has_tail=type_len != whole)
    if start_id - 1 + len(offsets) > K.MAX_TYPE:
        raise BTFError(f"too many types: {start_id - 1 + len(offsets)} > {K.MAX_TYPE}",
                       offset=t0, type_id=K.MAX_TYPE + 1)
    return cls(words=words, offsets=offsets, strings=strings, base=base,
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


class _RecordLengths(dict):
    """info word -> record length in words; an info not seen before is worked out once."""

    __slots__ = ()

    def __missing__(self, info: int) -> int:
        length = self[info] = record_length(info)
        return length


def frame(words: "array | memoryview", start_id: int, byte_base: int, *, has_tail: bool = False) -> list[int]:
    """Word offset of every record in *words* (the type section as host-order u32 words).

    The hot loop of parsing, run without a Python-level loop: the offsets
    list feeds itself.  ``offsets.extend`` pulls the next offset from
    ``accumulate`` (which starts at 0), adding the length of the record at
    the offset appended last (``lengths[info]``, info being the word after
    its ``name_off``); the list iterator inside sees each offset as soon as
    it is appended.  Reading the info word at or past the end raises
    IndexError, which stops the chain: the last offset appended is then where
    the last record ends, and that must be the end of the section.  About
    80 ns a record (vmlinux: 126,000 records in ~10 ms; a Python loop
    appending infos and names took ~14 ms).

    BTFError (via :func:`_report_framing`) for a truncated record, a bad kind
    or reserved info bits (:func:`record_length` gives those a huge length).
    """
    lengths = _RecordLengths()
    offsets: list[int] = []
    try:
        offsets.extend(accumulate(map(lengths.__getitem__, map(getitem, repeat(words[1:]), offsets)), initial=0))
    except IndexError:
        pass
    end = offsets.pop()
    n = len(words)
    if end != n or has_tail:
        _report_framing(words, offsets + [end] if end < n else offsets, start_id, byte_base, min(end, n))
    return offsets


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
    """The ``.BTF`` section of an ELF file (read by :mod:`sigbpf.elf.reader`)."""
    from sigbpf.elf.reader import read_named_section

    sec = read_named_section(data, ".BTF", file)
    if sec is None:
        raise ELFError("no .BTF section (compile with -g)", file=file)
    return sec
