"""Reading input files and writing output files, for the library and the CLI alike.

:func:`read_input` turns a missing or unreadable file into a one-line
:class:`~sigbpf.errors.FormatError` naming the file; :func:`write_atomic`
never leaves a half-written output file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sigbpf.errors import FormatError

__all__ = ["read_input", "write_atomic"]


def read_input(path: str | os.PathLike[str]) -> bytes:
    """Read a whole input file; a missing or unreadable file is a one-line error.

    Only regular files are read: a directory, a FIFO or a device such as
    ``/dev/zero`` (which would never end) is refused, so no input can hang.
    """
    name = os.fspath(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (no effect on regular files)
        with open(os.open(name, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if stat.S_ISDIR(mode):
                raise FormatError("is a directory, not a file", file=name)
            if not stat.S_ISREG(mode):
                raise FormatError("not a regular file", file=name)
            return f.read()
    except IsADirectoryError:
        raise FormatError("is a directory, not a file", file=name) from None
    except OSError as err:
        raise FormatError(err.strerror or str(err), file=name) from None


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Write *data* to *path* so that it is either wholly there or not at all.

    The bytes go to a temporary file in the same directory which is renamed
    over *path* only once complete: an error never leaves a half-written output.
    """
    import tempfile  # here, not at the top: reading inputs (e.g. vmlinux BTF) stays light

    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=directory)
    except OSError as err:
        raise FormatError(f"cannot write: {err.strerror or err}", file=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise FormatError(f"cannot write: {err.strerror or err}", file=str(path)) from None
        raise
