"""Output helpers shared by every command: JSON, atomic files, reading inputs."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from sigbpf.errors import FormatError


def emit_json(value: Any) -> None:
    """Print *value* as indented JSON on stdout."""
    json.dump(value, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def read_input(path: str | os.PathLike[str]) -> bytes:
    """Read a whole input file; a missing or unreadable file is a one-line error."""
    try:
        return Path(path).read_bytes()
    except IsADirectoryError:
        raise FormatError("is a directory, not a file", file=str(path)) from None
    except OSError as err:
        raise FormatError(err.strerror or str(err), file=str(path)) from None


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Write *data* to *path* so that it is either wholly there or not at all.

    The bytes go to a temporary file in the same directory which is renamed
    over *path* only once complete: an error never leaves a half-written output.
    """
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
