"""A kernel image's BTF: a bzImage (``vmlinuz``) or an ELF ``vmlinux`` -> ``.BTF``, ``.BTF_ids``, version.

A bzImage is a real-mode setup followed by a compressed payload; the setup
header (Documentation/arch/x86/boot.rst) says where the payload is
(``setup_sects`` at 0x1f1, ``payload_offset``/``payload_length`` at
0x248/0x24c, protocol 2.08+) and what the version is (``kernel_version`` at
0x20e, an offset from 0x200).  The payload is the ELF ``vmlinux``, compressed
with one of the formats of :mod:`.decompress`; when the header does not say
(old protocol, another architecture's image), the image is scanned for
compression magics, like the kernel's ``scripts/extract-vmlinux``.

From the ELF only three things are kept: ``.BTF``, ``.BTF_ids`` and the
version (``Linux version X ...`` banner).  The ELF itself (60-100 MB for a
distribution kernel) is never held: the payload is decompressed as a stream,
twice (:func:`elf_sections_streamed`), so memory is the decompressor's window
plus the sections kept.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from sigbpf.errors import FormatError

ELF_MAGIC = b"\x7fELF"
_HDRS = b"HdrS"


@dataclass(frozen=True, slots=True)
class ImageBTF:
    """What a kernel image gives the fleet check."""

    btf: bytes
    btf_ids: bytes | None
    version: str | None  # "6.12.95+deb12-amd64", the first word of the banner
    how: str  # "elf", "zstd payload", ...


def is_bzimage(data: bytes) -> bool:
    return len(data) > 0x250 and data[0x202:0x206] == _HDRS


def bzimage_version(data: bytes) -> str | None:
    """The setup header's ``kernel_version`` string, first word (the release)."""
    if not is_bzimage(data):
        return None
    (off,) = struct.unpack_from("<H", data, 0x20E)
    if not off:
        return None
    text = data[0x200 + off:0x200 + off + 256].split(b"\0", 1)[0].decode("ascii", "replace").strip()
    return text.split()[0] if text else None


def elf_version(elf: bytes) -> str | None:
    """The release from the ELF's ``Linux version X (...)`` banner."""
    i = elf.find(b"Linux version ")
    if i < 0:
        return None
    words = elf[i + 14:i + 270].split(b"\0", 1)[0].split()
    return words[0].decode("ascii", "replace") if words else None


class _Stream:
    """Decompressed bytes of a payload, read forward once; :meth:`skip_to` / :meth:`take`."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""
        self._at = 0  # file offset of _buf[0]
        self.banner: str | None = None
        self._tail = b""

    def _more(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        if self.banner is None:  # "Linux version X (...)": looked for in every chunk, once found kept
            joined = self._tail + chunk
            i = joined.find(b"Linux version ")
            if 0 <= i and len(joined) - i > 14 + 64:
                self.banner = elf_version(joined[i:i + 300])
            self._tail = joined[-300:]
        self._at += len(self._buf)
        self._buf = chunk
        return True

    def take(self, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length) of the stream; *offset* must not be behind the reader."""
        out = bytearray()
        while length > 0:
            end = self._at + len(self._buf)
            if offset >= end:
                if not self._more():
                    raise FormatError(f"truncated kernel image: ELF ends before offset {offset + length}")
                continue
            if offset < self._at:
                raise FormatError("ELF sections out of order")
            start = offset - self._at
            piece = self._buf[start:start + length]
            out += piece
            offset += len(piece)
            length -= len(piece)
        return bytes(out)

    def drain(self) -> None:
        while self._more():
            pass


def _elf_layout(header: bytes) -> tuple[str, int, int, int, int]:
    """(struct prefix, e_shoff, e_shentsize, e_shnum, e_shstrndx) from an ELF header."""
    if header[:4] != ELF_MAGIC or header[4] not in (1, 2) or header[5] not in (1, 2):
        raise FormatError("the kernel image's payload is not an ELF file")
    e = "<" if header[5] == 1 else ">"
    if header[4] == 2:
        shoff, = struct.unpack_from(e + "Q", header, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", header, 0x3A)
    else:
        shoff, = struct.unpack_from(e + "I", header, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", header, 0x2E)
    return e + ("Q" if header[4] == 2 else "I"), shoff, shentsize, shnum, shstrndx


def _sections(table: bytes, prefix: str, entsize: int, count: int) -> list[tuple[int, int, int, int]]:
    """(name offset, type, file offset, size) of each section header."""
    e, word = prefix[0], prefix[1]
    fmt = e + ("IIQQQQ" if word == "Q" else "IIIIII")
    out = []
    for i in range(count):
        name, stype, _flags, _addr, offset, size = struct.unpack_from(fmt, table, i * entsize)
        out.append((name, stype, offset, size))
    return out


def elf_sections_streamed(open_chunks: Callable[[], Iterator[bytes]], wanted: Sequence[str]
                          ) -> tuple[dict[str, bytes], str | None]:
    """The *wanted* sections of an ELF read as a stream (twice or three times), and its banner.

    Pass 1 reads the ELF header and the section header table (at ``e_shoff``,
    near the end), keeping the last MB read in case ``.shstrtab`` is there (as
    GNU ld lays a vmlinux out); pass 2 takes ``.shstrtab`` if it was not and
    then the wanted sections, in file order.  Only the sections asked for
    (and ~1 MB) are ever held, not the ELF.
    """
    s = _Stream(open_chunks())
    header = s.take(0, 64)
    prefix, shoff, entsize, shnum, shstrndx = _elf_layout(header)
    if not shnum or shstrndx >= shnum:
        raise FormatError("the kernel image's ELF has no section name table")
    keep_from = max(shoff - (1 << 20), 64)
    tail = s.take(keep_from, shoff - keep_from) if shoff > keep_from else b""
    table = s.take(shoff, entsize * shnum)
    sections = _sections(table, prefix, entsize, shnum)
    _n, _t, str_off, str_size = sections[shstrndx]
    s.drain()
    banner = s.banner
    if keep_from <= str_off and str_off + str_size <= shoff:
        names_blob = tail[str_off - keep_from:str_off - keep_from + str_size]
        s2 = _Stream(open_chunks())
    else:
        s2 = _Stream(open_chunks())
        names_blob = s2.take(str_off, str_size)
        if any(off < str_off + str_size for _n, _t, off, _s in sections):  # need a third pass
            s2 = _Stream(open_chunks())

    def name_of(off: int) -> str:
        end = names_blob.find(b"\0", off)
        return names_blob[off:end if end >= 0 else len(names_blob)].decode("ascii", "replace")

    want = sorted((off, size, name_of(n)) for n, stype, off, size in sections
                  if stype != 8 and name_of(n) in wanted)  # 8: SHT_NOBITS
    found = {name: s2.take(off, size) for off, size, name in want}
    return found, banner


def bzimage_payload(data: bytes) -> tuple[Callable[[], Iterator[bytes]], str]:
    """A way to read the ELF inside a bzImage as a stream (re-openable), and how it was found."""
    from sigbpf.fleet.decompress import MAGICS, chunks, sniff

    tries: list[tuple[int, int, str]] = []
    if is_bzimage(data):
        setup_sects = data[0x1F1] or 4
        offset, length = struct.unpack_from("<II", data, 0x248)
        start = (setup_sects + 1) * 512 + offset
        fmt = sniff(data[start:start + 8])
        if fmt is not None and length:
            tries.append((start, start + length, fmt))
    for magic, fmt in MAGICS:  # extract-vmlinux: every place a magic stands
        i = data.find(magic)
        while i >= 0 and len(tries) < 24:
            tries.append((i, len(data), fmt))
            i = data.find(magic, i + 1)
    last: FormatError | None = None
    view = memoryview(data)
    for start, end, fmt in tries:
        def open_chunks(start: int = start, end: int = end, fmt: str = fmt) -> Iterator[bytes]:
            return chunks(view[start:end], fmt)
        try:
            first = next(open_chunks(), b"")
        except FormatError as err:
            last = err
            if "pip install" in err.message:
                raise
            continue
        if first[:4] == ELF_MAGIC:
            return open_chunks, f"{fmt} payload"
    why = f" ({last.message})" if last is not None else ""
    raise FormatError(f"no compressed ELF payload found in the kernel image{why}")


def in_memory(data: bytes | bytearray) -> Callable[[], Iterator[bytes]]:
    """:func:`elf_sections_streamed`'s reader over bytes already in memory (no copy of them)."""
    def open_chunks() -> Iterator[bytes]:
        view = memoryview(data)
        return iter(bytes(view[i:i + (1 << 20)]) for i in range(0, len(view), 1 << 20))
    return open_chunks


def image_btf(data: bytes, file: str | None = None) -> ImageBTF:
    """``.BTF``, ``.BTF_ids`` and the version of an ELF vmlinux or a bzImage."""
    if data[:4] == ELF_MAGIC:
        open_chunks, version, how = in_memory(data), None, "elf"
    else:
        version = bzimage_version(data)
        open_chunks, how = bzimage_payload(data)
    try:
        sections, banner = elf_sections_streamed(open_chunks, (".BTF", ".BTF_ids"))
    except FormatError as err:
        raise err.at(file=file)
    btf = sections.get(".BTF")
    if btf is None:
        raise FormatError("the kernel image has no .BTF section (built without CONFIG_DEBUG_INFO_BTF)",
                          file=file)
    return ImageBTF(btf, sections.get(".BTF_ids"), version or banner, how)
