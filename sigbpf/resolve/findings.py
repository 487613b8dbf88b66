"""What a check beyond the seed reports: a :class:`Finding` with a :class:`Severity`.

The seed's pass answers with one log line and an errno.  sigbpf's extra checks
(prototype, is-it-a-kfunc, module replacement) answer with findings:

* ``error``   the program must be rejected; ``errno`` says with what
  (prototype incompatible: EINVAL, the errno the verifier uses for argument
  mismatches in ``check_kfunc_args``; not a kfunc: EACCES, the errno of the
  verifier's later "calling kernel function %s is not allowed").
* ``warning`` it resolves and loads, but something differs that a reviewer
  should see (strict prototype differences, a module defining the same name).
* ``note``    information, e.g. a check that could not be done.

A finding prints as a log line in the seed's style, prefixed ``sigbpf:`` so
that it is never mistaken for a line the kernel wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sigbpf.errors import errno_name


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


class CheckName(str, Enum):
    """The checks beyond the seed, by the name the CLI flags use (and ``binding``:
    what binding an artifact to a kernel did, see :mod:`sigbpf.resolve.subject`)."""

    PROTOTYPE = "prototype"
    KFUNC = "kfunc"
    MODULE = "module"
    BINDING = "binding"


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of one check for one kfunc (``insn``: its first call site)."""

    check: CheckName
    severity: Severity
    name: str
    insn: int | None
    message: str
    errno: int | None = None
    detail: tuple[str, ...] = ()
    module: str | None = None  # the module concerned (module check only)
    prototypes: tuple[str, str] | None = None  # (program's, kernel's) as C (prototype check only)
    site: str = "kfunc call"  # what is at ``insn``, for the log line ("kfunc address": ld_imm64)

    @property
    def errno_name(self) -> str | None:
        return errno_name(self.errno)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def log_line(self) -> str:
        where = f"{self.site} insn {self.insn}: " if self.insn is not None else ""
        return f"sigbpf: {self.severity.value}: {where}{self.message}"

    def as_json(self) -> dict[str, object]:
        return {"check": self.check.value, "severity": self.severity.value, "name": self.name,
                "insn": self.insn, "site": self.site, "message": self.message, "errno": self.errno_name,
                "detail": list(self.detail), "module": self.module,
                "prototypes": ({"program": self.prototypes[0], "kernel": self.prototypes[1]}
                               if self.prototypes else None)}
