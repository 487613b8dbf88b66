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
distribution kernel) is dropped before this module returns.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

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


def bzimage_payload(data: bytes) -> tuple[bytes, str]:
    """The decompressed ELF inside a bzImage, and how it was found."""
    from sigbpf.fleet.decompress import MAGICS, decompress, sniff

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
    for n, (start, end, fmt) in enumerate(tries):
        try:
            if n == 0 and fmt == "zstd" and end - start > 4 and is_bzimage(data):
                # the kernel's build appends the payload's decompressed size (size_append)
                (size,) = struct.unpack_from("<I", data, end - 4)
                out = decompress(view[start:end - 4], fmt, size=size)
            else:
                out = decompress(view[start:end], fmt)
        except FormatError as err:
            last = err
            if "pip install" in err.message:
                raise
            continue
        if out[:4] == ELF_MAGIC:
            return out, f"{fmt} payload"
    why = f" ({last.message})" if last is not None else ""
    raise FormatError(f"no compressed ELF payload found in the kernel image{why}")


def image_btf(data: bytes, file: str | None = None) -> ImageBTF:
    """``.BTF``, ``.BTF_ids`` and the version of an ELF vmlinux or a bzImage."""
    from sigbpf.elf.reader import read_named_section

    version = None
    how = "elf"
    if data[:4] != ELF_MAGIC:
        version = bzimage_version(data)
        data, how = bzimage_payload(data)
    try:
        btf = read_named_section(data, ".BTF", file)
        ids = read_named_section(data, ".BTF_ids", file)
    except FormatError as err:
        raise err.at(file=file)
    if btf is None:
        raise FormatError("the kernel image has no .BTF section (built without CONFIG_DEBUG_INFO_BTF)",
                          file=file)
    return ImageBTF(bytes(btf), bytes(ids) if ids is not None else None,
                    version or elf_version(data), how)
