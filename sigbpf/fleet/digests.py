"""Content digests of kernel files, and the memo that spares re-hashing unchanged files.

A kernel is cached under the SHA-256 of its content, not its path (a file
copied or renamed is still a hit; a file rewritten in place is a miss).
Hashing 1,000 5 MB files costs seconds, so, like git's index, digests are
remembered per file by what ``stat`` says: ``(path, size, mtime_ns, inode,
device)``.  When all of those are unchanged the remembered digest is used
without reading the file; any change and the file is hashed again.  (As with
git, a file rewritten with the same size within one mtime tick on the same
inode would be missed; kernel files are not edited in place.)

The memo is one JSON file, ``<cache>/digests.json`` (see :mod:`.cache` for
the directory), read once per run and written back atomically when it
changed.  :func:`kernel_digest` combines a kernel's file digests, each with
its role, into the kernel's digest.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

#: Bumped when the meaning of a kernel digest changes.
KERNEL_DIGEST_VERSION = "sigbpf-fleet-kernel/1"
_CHUNK = 1 << 20

StatKey = tuple[int, int, int, int]  # size, mtime_ns, inode, device


def stat_key(path: str) -> StatKey | None:
    """What says a file is unchanged, or None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def sha256_bytes(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    """SHA-256 of a file, read in chunks (a 100 MB package never sits in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def kernel_digest(parts: Iterable[tuple[str, str]]) -> str:
    """The kernel's digest from ``(role, file digest)`` pairs (order-independent)."""
    h = hashlib.sha256(KERNEL_DIGEST_VERSION.encode())
    for role, digest in sorted(parts):
        h.update(f"\n{role}={digest}".encode())
    return h.hexdigest()


@dataclass
class DigestMemo:
    """``path -> (stat key, digest)``, loaded from and saved to one JSON file."""

    path: Path | None
    entries: dict[str, tuple[StatKey, str]]
    changed: bool = False

    @classmethod
    def load(cls, path: Path | None) -> "DigestMemo":
        entries: dict[str, tuple[StatKey, str]] = {}
        if path is not None:
            try:
                raw = json.loads(path.read_text())
                for name, (key, digest) in raw.get("files", {}).items():
                    entries[name] = (tuple(key), digest)  # type: ignore[assignment]
            except (OSError, ValueError, TypeError, AttributeError):
                entries = {}  # no memo, or a damaged one: start afresh
        return cls(path, entries)

    def get(self, file: str) -> str | None:
        """The remembered digest of *file* if it is unchanged since, else None."""
        found = self.entries.get(os.path.abspath(file))
        if found is None:
            return None
        key, digest = found
        return digest if stat_key(file) == key else None

    def put(self, file: str, key: StatKey | None, digest: str) -> None:
        if key is None:
            return
        name = os.path.abspath(file)
        if self.entries.get(name) != (key, digest):
            self.entries[name] = (key, digest)
            self.changed = True

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        from sigbpf.fleet.cache import write_quietly

        data = json.dumps({"version": 1, "files": {k: [list(v[0]), v[1]]
                                                   for k, v in sorted(self.entries.items())}})
        write_quietly(self.path, data.encode())
        self.changed = False
