"""Decompressing what kernel packages hold: xz, lzma, gzip, bzip2 (stdlib), zstd and lz4.

Kernels ship compressed in layers: a ``.deb``'s ``data.tar.xz`` (or
``.zst``/``.gz``), a bzImage's payload (Debian: xz up to 6.x, zstd since;
Ubuntu: lz4 or zstd), modules as ``.ko.xz``/``.ko.zst``/``.ko.gz``, BTFHub's
``.btf.tar.xz``.  One function per job:

* :func:`sniff` names the format from its magic bytes;
* :func:`decompress` turns one compressed blob into its bytes, ignoring
  what follows the first stream (the kernel's build appends the payload's
  size after a zstd or lz4 payload);
* :func:`open_stream` wraps a binary file for reading decompressed, for
  ``tarfile``'s streaming mode, so a tar is never held whole.

zstd and lz4 are not in Python 3.11's standard library: they come from the
``zstandard`` and ``lz4`` packages (the ``fleet`` extra of pyproject.toml),
imported only when such data turns up; without them, that input is a
:class:`~sigbpf.errors.FormatError` saying what to install.  Why these two:
both are the reference bindings of the C libraries (the same code the kernel
build uses to compress), have wheels for every platform CPython runs on, and
stream; a pure-Python zstd decoder would take minutes per kernel.  The
kernel's lz4 payloads are in lz4's *legacy* frame format (``lz4 -l``), which
:func:`decompress` parses itself around ``lz4.block``.
"""

from __future__ import annotations

import struct
from typing import IO

from sigbpf.errors import FormatError

#: (magic, format) in the order they are tried.
MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b", "gzip"),
    (b"\x02\x21\x4c\x18", "lz4-legacy"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"BZh", "bzip2"),
    (b"\x5d\x00\x00", "lzma"),
)

#: What to ``pip install`` for the formats outside the standard library.
PACKAGES = {"zstd": "zstandard>=0.22", "lz4": "lz4>=4.0", "lz4-legacy": "lz4>=4.0"}

_LZ4_LEGACY_MAGIC = 0x184C2102
_LZ4_LEGACY_BLOCK = 8 << 20  # each legacy block decompresses to at most 8 MiB


def sniff(data: bytes) -> str | None:
    """The compression format *data* starts with, or None."""
    for magic, name in MAGICS:
        if data.startswith(magic):
            return name
    return None


def _need(module: str, fmt: str):
    """Import the binding for *fmt*, or a FormatError naming the package to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise FormatError(f"{fmt} data needs the Python package {PACKAGES[fmt]!r} "
                          f"(pip install '{PACKAGES[fmt]}')") from None


def decompress(data: bytes, fmt: str | None = None, *, size: int = 0) -> bytes:
    """The decompressed bytes of the first stream in *data* (trailing bytes are ignored).

    *size*, when known (a kernel payload's appended size), lets zstd decompress
    in one shot into one buffer, its window included (~60 MB less at peak for
    a distribution kernel than streaming).
    """
    fmt = fmt or sniff(data)
    try:
        if fmt == "xz" or fmt == "lzma":
            import lzma

            d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ if fmt == "xz" else lzma.FORMAT_ALONE)
            return d.decompress(data)
        if fmt == "gzip":
            import zlib

            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
        if fmt == "bzip2":
            import bz2

            return bz2.BZ2Decompressor().decompress(data)
        if fmt == "zstd":
            zstd = _need("zstandard", fmt)
            if size:
                return zstd.ZstdDecompressor().decompress(data, max_output_size=size)
            return zstd.ZstdDecompressor().decompressobj().decompress(data)
        if fmt == "lz4":
            frame = _need("lz4.frame", fmt)
            return frame.LZ4FrameDecompressor().decompress(data)
        if fmt == "lz4-legacy":
            return _lz4_legacy(data)
    except FormatError:
        raise
    except Exception as err:  # EOFError, lzma.LZMAError, zlib.error, zstandard.ZstdError, ...
        raise FormatError(f"corrupt {fmt} data: {err}") from None
    raise FormatError("not compressed in a known format (xz, zstd, gzip, lz4, bzip2, lzma)", offset=0)


def _lz4_legacy(data: bytes) -> bytes:
    """lz4's legacy frame: magic, then (u32 size, block) until the end or another magic."""
    block = _need("lz4.block", "lz4-legacy")
    out = bytearray()
    pos = 4
    while pos + 4 <= len(data):
        (size,) = struct.unpack_from("<I", data, pos)
        if size == _LZ4_LEGACY_MAGIC:  # a concatenated stream starts again
            pos += 4
            continue
        if size == 0 or pos + 4 + size > len(data):
            break  # the kernel's appended payload size, or the end
        out += block.decompress(data[pos + 4:pos + 4 + size], uncompressed_size=_LZ4_LEGACY_BLOCK)
        pos += 4 + size
    if not out:
        raise FormatError("corrupt lz4-legacy data: no block")
    return bytes(out)


def open_stream(raw: IO[bytes], fmt: str) -> IO[bytes]:
    """A file object reading *raw* decompressed (for ``tarfile.open(fileobj=..., mode="r|")``)."""
    if fmt in ("xz", "lzma"):
        import lzma

        return lzma.LZMAFile(raw)
    if fmt == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw)
    if fmt == "bzip2":
        import bz2

        return bz2.BZ2File(raw)
    if fmt == "zstd":
        zstd = _need("zstandard", fmt)
        return zstd.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    if fmt == "none":
        return raw
    raise FormatError(f"cannot stream {fmt} data")


def by_suffix(name: str) -> str:
    """The compression a file name's suffix says: ``data.tar.xz`` -> ``xz`` (``none`` if none)."""
    for suffix, fmt in ((".xz", "xz"), (".zst", "zstd"), (".gz", "gzip"), (".bz2", "bzip2"),
                        (".lzma", "lzma")):
        if name.endswith(suffix):
            return fmt
    return "none"


__all__ = ["sniff", "decompress", "open_stream", "by_suffix", "MAGICS", "PACKAGES"]
