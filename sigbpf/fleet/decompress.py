"""Decompressing what kernel packages hold: xz, lzma, gzip, bzip2 (stdlib), zstd and lz4.

Kernels ship compressed in layers: a ``.deb``'s ``data.tar.xz`` (or
``.zst``/``.gz``), a bzImage's payload (Debian: xz up to 6.x, zstd since;
Ubuntu: lz4 or zstd), modules as ``.ko.xz``/``.ko.zst``/``.ko.gz``, BTFHub's
``.btf.tar.xz``.  One function per job:

* :func:`sniff` names the format from its magic bytes;
* :func:`decompress` turns one compressed blob into its bytes, ignoring
  what follows the first stream (the kernel's build appends the payload's
  size after a zstd or lz4 payload); :func:`chunks` gives the same bytes a
  chunk at a time (a kernel image is read without ever holding all of it);
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
from typing import IO, Iterator

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


def decompress(data: bytes | memoryview, fmt: str | None = None) -> bytearray:
    """The decompressed bytes of the first stream in *data* (trailing bytes are ignored).

    A bytearray grown chunk by chunk: the output is held once, not twice as a
    join of the chunks would (a 48 MB ``amdgpu.ko`` is in a modules package).
    """
    out = bytearray()
    for chunk in chunks(data, fmt):
        out += chunk
    return out


def chunks(data: bytes | memoryview, fmt: str | None = None, size: int = 1 << 20) -> Iterator[bytes]:
    """The decompressed bytes of the first stream in *data*, *size* bytes at a time.

    Memory: the decompressor's own window (up to the compressed stream's
    window size: 64 MB for a distribution kernel's zstd -22 payload) plus one
    chunk, whatever the output's size.  Errors are :class:`FormatError`.
    """
    fmt = fmt or sniff(bytes(data[:8]))
    if fmt is None:
        raise FormatError("not compressed in a known format (xz, zstd, gzip, lz4, bzip2, lzma)", offset=0)
    try:
        yield from _chunks(data, fmt, size)
    except FormatError:
        raise
    except Exception as err:  # EOFError, lzma.LZMAError, zlib.error, zstandard.ZstdError, ...
        raise FormatError(f"corrupt {fmt} data: {err}") from None


def _chunks(data: bytes | memoryview, fmt: str, size: int) -> Iterator[bytes]:
    if fmt == "zstd":
        # fed 128 KB of input at a time, the output of each step stays a few MB; the frame's
        # end is known (eof), what follows it (a kernel payload's appended size) is left alone
        d = _need("zstandard", fmt).ZstdDecompressor().decompressobj()
        view = memoryview(data)
        for i in range(0, len(view), 128 << 10):
            out = d.decompress(view[i:i + (128 << 10)])
            if out:
                yield out
            if d.eof:
                return
        raise FormatError("truncated zstd data")
    if fmt == "lz4-legacy":
        yield from _lz4_legacy(data)
        return
    if fmt in ("xz", "lzma"):
        import lzma

        d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ if fmt == "xz" else lzma.FORMAT_ALONE)
    elif fmt == "bzip2":
        import bz2

        d = bz2.BZ2Decompressor()
    elif fmt == "lz4":
        d = _need("lz4.frame", fmt).LZ4FrameDecompressor()
    elif fmt == "gzip":
        yield from _zlib_chunks(data, size)
        return
    else:
        raise FormatError(f"unknown compression {fmt!r}")
    # lzma, bz2 and lz4.frame share one API: decompress(input, max_length), needs_input, eof
    pending = data
    while not d.eof:
        out = d.decompress(pending, max_length=size)
        pending = b""
        if out:
            yield out
        elif d.needs_input:
            raise FormatError(f"truncated {fmt} data")


def _zlib_chunks(data: bytes | memoryview, size: int) -> Iterator[bytes]:
    import zlib

    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending = bytes(data)
    while not d.eof:
        out = d.decompress(pending, size)
        pending = d.unconsumed_tail
        if out:
            yield out
        elif not pending:
            raise FormatError("truncated gzip data")


def _lz4_legacy(data: bytes | memoryview) -> Iterator[bytes]:
    """lz4's legacy frame: magic, then (u32 size, block) until the end or another magic."""
    block = _need("lz4.block", "lz4-legacy")
    pos = 4
    any_block = False
    while pos + 4 <= len(data):
        (size,) = struct.unpack_from("<I", data, pos)
        if size == _LZ4_LEGACY_MAGIC:  # a concatenated stream starts again
            pos += 4
            continue
        if size == 0 or pos + 4 + size > len(data):
            break  # the kernel's appended payload size, or the end
        yield block.decompress(bytes(data[pos + 4:pos + 4 + size]), uncompressed_size=_LZ4_LEGACY_BLOCK)
        any_block = True
        pos += 4 + size
    if not any_block:
        raise FormatError("corrupt lz4-legacy data: no block")


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


__all__ = ["sniff", "decompress", "chunks", "open_stream", "by_suffix", "MAGICS", "PACKAGES"]
