"""The loader file's magic, importable without the generator (the CLI sniffs inputs with it)."""

from __future__ import annotations

#: First 8 bytes of every loader file (docs/FORMAT.md, "The signed loader file").
LOADER_MAGIC = b"SIGBPFL\0"


def is_loader(data: bytes) -> bool:
    """True when *data* starts with the loader file's magic."""
    return bytes(data[:len(LOADER_MAGIC)]) == LOADER_MAGIC
