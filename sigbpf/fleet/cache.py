"""The fleet check's cache: one kernel's results for one artifact, keyed by content.

Location: ``$SIGBPF_CACHE/fleet`` when ``SIGBPF_CACHE`` is set, else
``$XDG_CACHE_HOME/sigbpf/fleet``, else ``~/.cache/sigbpf/fleet``
(``sigbpf check --no-cache`` neither reads nor writes it)::

    fleet/
      digests.json                  file digest memo (:mod:`.digests`)
      results/ab/abcdef....json     one kernel x one artifact x options

An entry's key is the SHA-256 of the code (:func:`code_fingerprint`: the
cache format version and the size and mtime of sigbpf's source files), the
artifact's digest (its canonical bytes), the check options and the kernel's digest
(:func:`~sigbpf.fleet.digests.kernel_digest`: the content of every file it was
read from).  Its value is the kernel's :class:`~sigbpf.fleet.model.KernelResult`
as JSON, less where it came from (``source``), which the run sets, and with
``name`` only when the name was read from the content (a banner, a package);
otherwise the name comes from the file name of this run.  Entries are small
(a few KB); nothing expires them: delete the directory to reclaim the space.

Entries are written atomically (temporary file + rename), so parallel
workers and parallel runs never see half an entry; an unreadable or damaged
entry is a miss.  A cache that cannot be written (read-only home) is
silently skipped: it only saves time.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from sigbpf.fleet.model import Cell, KernelResult, Verdict

#: Bumped whenever what a kernel answers (the checks, their codes) changes meaning.
CACHE_VERSION = "sigbpf-fleet-results/1"


def cache_dir() -> Path:
    """The fleet cache directory (module docstring); not created here."""
    base = os.environ.get("SIGBPF_CACHE")
    if base:
        return Path(base) / "fleet"
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path(os.path.expanduser("~")) / ".cache"
    return root / "sigbpf" / "fleet"


def write_quietly(path: Path, data: bytes) -> bool:
    """Write atomically, creating directories; False (and nothing written) when it cannot."""
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


@dataclass(frozen=True, slots=True)
class CachedKernel:
    """A cached answer: the result and whether its name was read from the content."""

    result: KernelResult
    named_by_content: bool


_CODE: str | None = None


def code_fingerprint() -> str:
    """What identifies the code that computed a result: the size and mtime of every source
    file of the sigbpf package (an upgraded or edited sigbpf never reads an older answer)."""
    global _CODE
    if _CODE is None:
        import sigbpf

        h = hashlib.sha256(CACHE_VERSION.encode())
        root = Path(sigbpf.__file__).parent
        for path in sorted(root.rglob("*.py")):
            try:
                st = path.stat()
            except OSError:
                continue
            h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        _CODE = h.hexdigest()
    return _CODE


def result_key(artifact_digest: str, options: str, kernel_digest: str) -> str:
    """The cache key of one kernel's results (module docstring)."""
    return hashlib.sha256(f"{code_fingerprint()}\n{artifact_digest}\n{options}\n{kernel_digest}".encode()
                          ).hexdigest()


def _result_from_json(doc: dict, source: str, label: str) -> CachedKernel:
    cells = tuple(Cell(c["check"], Verdict[c["verdict"].upper()], c["code"], c.get("detail", ""),
                       c.get("value"), tuple(c.get("also", ())))
                  for c in doc["cells"])
    name = doc.get("name")
    result = KernelResult(name or label, source, doc["digest"], doc.get("native_prog_btf"), cells,
                          doc.get("error"))
    return CachedKernel(result, name is not None)


class ResultCache:
    """Entries under ``<dir>/results`` (None dir: a cache that never hits and never writes)."""

    def __init__(self, directory: Path | None) -> None:
        self.dir = directory

    def _path(self, key: str) -> Path | None:
        return None if self.dir is None else self.dir / "results" / key[:2] / f"{key}.json"

    def get(self, key: str, *, source: str, label: str) -> CachedKernel | None:
        path = self._path(key)
        if path is None:
            return None
        try:
            doc = json.loads(path.read_bytes())
            return _result_from_json(doc, source, label)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def put(self, key: str, result: KernelResult, *, named_by_content: bool) -> None:
        path = self._path(key)
        if path is None or result.error is not None:
            return  # an unreadable kernel is read again next time (the file may be fixed)
        doc = result.as_json()
        doc.pop("source", None)
        doc.pop("verdict", None)
        doc.pop("accepts", None)
        if not named_by_content:
            doc["name"] = None
        write_quietly(path, json.dumps(doc, separators=(",", ":")).encode())
