"""The one exception hierarchy of sigbpf.

Every error the library raises on purpose is a :class:`SigbpfError`.  Each
carries the place it is about (file, byte offset, BTF type id, instruction
index) so that the CLI can print one line that says what was wrong and where.
Context is added while the error travels outwards, the way Go code wraps a
sentinel error: ``raise err.at(file=path)`` keeps the inner details and adds
the outer ones.

Exit codes follow the CLI contract: 2 for bad input or usage (the default),
1 for "what was asked does not hold" (a rejected resolution, a failed
signature check, a program the kernel refused).
"""

from __future__ import annotations

import errno as _errno
from typing import Any


def errno_name(errno: int | None) -> str | None:
    """The symbolic name of an errno value ("ENOENT"); None for None, 0 or an unknown value.

    The one errno-to-name mapping of sigbpf: errors, resolution results, findings and
    reports all name their errno through it.
    """
    return _errno.errorcode.get(errno) if errno else None


class SigbpfError(Exception):
    """Base class: a clear, one-line, located error."""

    exit_code: int = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        offset: int | None = None,
        type_id: int | None = None,
        insn: int | None = None,
        errno: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.offset = offset
        self.type_id = type_id
        self.insn = insn
        self.errno = errno

    def at(self, **where: Any) -> "SigbpfError":
        """Add location context that is not already set; returns self."""
        for key, value in where.items():
            if getattr(self, key, None) is None:
                setattr(self, key, value)
        return self

    @property
    def errno_name(self) -> str | None:
        return errno_name(self.errno)

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.offset is not None:
            where.append(f"offset {self.offset:#x}")
        if self.type_id is not None:
            where.append(f"type [{self.type_id}]")
        if self.insn is not None:
            where.append(f"insn {self.insn}")
        text = self.message
        if self.errno_name and self.errno_name not in text:
            text = f"{text} ({self.errno_name})"
        return f"{': '.join(where)}: {text}" if where else text


class FormatError(SigbpfError):
    """Input bytes that are not what they claim to be (BTF, ELF, insns, artifact)."""


class BTFError(FormatError):
    """Malformed or inconsistent BTF."""


class ELFError(FormatError):
    """A BPF object file that cannot be read."""


class InstructionError(FormatError):
    """Malformed BPF instructions."""


class ArtifactError(FormatError):
    """A portable artifact that does not follow docs/FORMAT.md."""


class NotFoundError(SigbpfError):
    """A name, type or section that was asked for is not there."""

    exit_code = 1


class CompatError(SigbpfError):
    """Two types that must be compatible are not."""

    exit_code = 1


class ResolveError(SigbpfError):
    """The PROG_BTF resolution pass rejected the program (errno set as the kernel would)."""

    exit_code = 1

    def __init__(self, message: str, *, log: list[str] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.log = list(log or [])


class SignatureError(SigbpfError):
    """A signature that does not verify, or key material that cannot be used."""

    exit_code = 1


class KeyMaterialError(SigbpfError):
    """Key or certificate files that cannot be used (bad format, wrong type, expired)."""


class KernelError(SigbpfError):
    """The running kernel refused a bpf() (or keyctl) request; errno and log kept."""

    exit_code = 1

    def __init__(self, message: str, *, log: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.log = log


class UsageError(SigbpfError):
    """The command line asked for something that does not make sense."""
