"""Reading Debian packages (``.deb``) in memory: the ar container, ``control`` and ``data.tar.*``.

A ``.deb`` is an ``ar`` archive (``!<arch>\\n``, then members with 60-byte
headers) holding ``debian-binary``, ``control.tar.*`` and ``data.tar.*``
(xz, zstd, gzip, bzip2 or none: :mod:`.decompress`).  :func:`control` reads
the package's name and version; :func:`data_members` walks ``data.tar.*``
in ``tarfile``'s streaming mode and yields only the members a predicate
wants, one at a time, so a 100 MB modules package never sits in memory and
nothing is written to disk.  A truncated or corrupt package is a
:class:`~sigbpf.errors.FormatError` naming it.
"""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from typing import IO, Callable, Iterator

from sigbpf.errors import FormatError

AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60


@dataclass(frozen=True, slots=True)
class ArMember:
    name: str
    offset: int  # of the member's data in the file
    size: int


class _Window(io.RawIOBase):
    """A read-only window [offset, offset+size) of an open file (one ar member)."""

    def __init__(self, f: IO[bytes], offset: int, size: int) -> None:
        self._f, self._start, self._size, self._pos = f, offset, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        n = min(len(buf), self._size - self._pos)
        if n <= 0:
            return 0
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        buf[:len(data)] = data
        self._pos += len(data)
        return len(data)


def ar_members(f: IO[bytes], file: str) -> list[ArMember]:
    """The members of an ar archive (names as written, GNU ``/`` suffix removed)."""
    f.seek(0)
    if f.read(8) != AR_MAGIC:
        raise FormatError("not a Debian package (no ar magic '!<arch>')", file=file, offset=0)
    size_total = os.fstat(f.fileno()).st_size if hasattr(f, "fileno") else None
    out: list[ArMember] = []
    pos = 8
    while True:
        f.seek(pos)
        head = f.read(_AR_HEADER)
        if not head:
            break
        if len(head) < _AR_HEADER or head[58:60] != b"`\n":
            raise FormatError("truncated or corrupt ar member header", file=file, offset=pos)
        name = head[:16].decode("ascii", "replace").rstrip().rstrip("/")
        try:
            size = int(head[48:58].decode("ascii").strip())
        except ValueError:
            raise FormatError(f"ar member {name!r}: bad size field", file=file, offset=pos + 48) from None
        data_at = pos + _AR_HEADER
        if size_total is not None and data_at + size > size_total:
            raise FormatError(f"ar member {name!r} runs past the end of the file "
                              f"({data_at}+{size} > {size_total} bytes; truncated?)", file=file, offset=pos)
        out.append(ArMember(name, data_at, size))
        pos = data_at + size + (size & 1)
    return out


def _member(members: list[ArMember], prefix: str, file: str) -> ArMember:
    for m in members:
        if m.name.startswith(prefix):
            return m
    raise FormatError(f"no {prefix}* member: not a binary Debian package", file=file)


def _tar_stream(f: IO[bytes], member: ArMember, file: str) -> tarfile.TarFile:
    from sigbpf.fleet.decompress import by_suffix, open_stream

    raw = io.BufferedReader(_Window(f, member.offset, member.size), 1 << 16)
    fmt = by_suffix(member.name)
    return tarfile.open(fileobj=open_stream(raw, fmt), mode="r|")


def control(path: str) -> dict[str, str]:
    """The fields of the package's ``control`` file (``Package``, ``Version``, ...)."""
    try:
        with open(path, "rb") as f:
            members = ar_members(f, path)
            tar = _tar_stream(f, _member(members, "control.tar", path), path)
            for info in tar:
                if info.name.lstrip("./") == "control" and info.isfile():
                    handle = tar.extractfile(info)
                    text = handle.read().decode("utf-8", "replace") if handle else ""
                    return _fields(text)
    except FormatError:
        raise
    except (OSError, EOFError, tarfile.TarError, ValueError) as err:
        raise FormatError(f"corrupt package: {err}", file=path) from None
    raise FormatError("no control file in control.tar", file=path)


def _fields(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line[0].isspace() and ":" in line:
            key, value = line.split(":", 1)
            out[key.strip()] = value.strip()
    return out


def data_members(path: str, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """(name, contents) of each regular file of ``data.tar.*`` whose name *want* accepts.

    Names are as in the tar, without a leading ``./``.  Streams: one member
    is in memory at a time.
    """
    try:
        with open(path, "rb") as f:
            members = ar_members(f, path)
            tar = _tar_stream(f, _member(members, "data.tar", path), path)
            for info in tar:
                name = info.name[2:] if info.name.startswith("./") else info.name
                if info.isfile() and want(name):
                    handle = tar.extractfile(info)
                    if handle is not None:
                        yield name, handle.read()
    except FormatError:
        raise
    except (OSError, EOFError, tarfile.TarError, ValueError) as err:
        raise FormatError(f"corrupt package data: {err}", file=path) from None
    except Exception as err:  # a decompressor's own error class (zstandard.ZstdError)
        raise FormatError(f"corrupt package data: {err}", file=path) from None
