"""The fleet check's results: one artifact, many kernels, one verdict per (kernel, check).

This is the contract between the parts of :mod:`sigbpf.fleet`: the workers
that read kernels and compute verdicts produce :class:`KernelResult`\\ s, the
renderers (text matrix, JSON, HTML) consume a :class:`FleetReport`.  Nothing
here reads a kernel; everything here is plain data, picklable (workers send
it between processes) and JSON-able (the cache stores it, ``--json`` prints it).

A *check* is one thing the artifact needs from a kernel, named by a kind and
a name (``kfunc:bpf_task_acquire``, ``core:prog/insn 12``, ``map_type:BPF_MAP_TYPE_RINGBUF``).
The checks are computed once from the artifact; every kernel answers each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class CheckKind(IntEnum):
    """What a check is about, in the order the matrix shows them."""

    PROGRAM = 0      # the seed's resolution pass over one program (accept / errno + log line)
    KFUNC = 1        # one kfunc name a PROG_BTF call uses
    ATTACH = 2       # one attach target (fentry/fexit/tp_btf/lsm/iter/struct_ops)
    KSYM = 3         # one typed or typeless ksym
    PROG_TYPE = 4    # enum bpf_prog_type value the artifact uses
    MAP_TYPE = 5     # enum bpf_map_type value
    ATTACH_TYPE = 6  # enum bpf_attach_type value
    HELPER = 7       # enum bpf_func_id value (helper calls)
    CORE = 8         # one CO-RE relocation

    @property
    def label(self) -> str:
        return self.name.lower()


class Verdict(IntEnum):
    """How one kernel answers one check, ordered from best to worst.

    ``OK`` loads and means the same; ``WARN`` loads but something differs
    (strict prototype drift, kfunc-ness unknown, shadowed by a module, a
    CO-RE relocation that fails only if reached); ``FAIL`` the kernel refuses
    the artifact; ``UNREADABLE`` the kernel could not be read at all (never
    counted as accepting).
    """

    OK = 0
    WARN = 1
    FAIL = 2
    UNREADABLE = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Check:
    """One thing the artifact needs: ``kind`` + ``name``; ``detail`` says where it is used."""

    kind: CheckKind
    name: str
    detail: str = ""

    @property
    def key(self) -> str:
        """The check's stable id: ``kfunc:bpf_task_acquire``."""
        return f"{self.kind.label}:{self.name}"

    def as_json(self) -> dict[str, object]:
        return {"key": self.key, "kind": self.kind.label, "name": self.name, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Cell:
    """One kernel's answer to one check.

    ``code`` is a short machine word for the reason (``resolves``, ``missing``,
    ``incompatible``, ``drift``, ``not-kfunc``, ``kfunc-unknown``, ``shadowed``,
    ``known``, ``unknown``, ``fails-if-reached``, ``rejected``, ...);
    ``detail`` is the sentence a person reads; ``value`` is the number that
    goes with it (a BTF id, a relocated value, an errno), if any.  ``also``
    lists the codes of further findings on the same check, milder than
    ``code`` (a kfunc that resolves with prototype ``drift`` and is also
    ``shadowed`` by a module: code ``drift``, also ``("shadowed",)``).
    """

    check: str  # Check.key
    verdict: Verdict
    code: str
    detail: str = ""
    value: int | None = None
    also: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {"check": self.check, "verdict": self.verdict.label, "code": self.code,
                "detail": self.detail, "value": self.value, "also": list(self.also)}


@dataclass(frozen=True, slots=True)
class KernelResult:
    """Every check's answer for one kernel.

    ``name`` is the kernel's version string where one could be read (BTF,
    ELF, package), else its path; ``source`` is where it came from (a path,
    ``path.tar.xz``, ``pkg.deb``, ``running``); ``digest`` is the content hash
    the cache keys it by; ``error`` is set (and ``cells`` empty) when the
    kernel could not be read.
    """

    name: str
    source: str
    digest: str = ""
    native_prog_btf: bool | None = None  # None: cannot be known from BTF alone
    cells: tuple[Cell, ...] = ()
    error: str | None = None

    @property
    def verdict(self) -> Verdict:
        if self.error is not None:
            return Verdict.UNREADABLE
        return max((c.verdict for c in self.cells), default=Verdict.OK)

    @property
    def accepts(self) -> bool:
        return self.verdict in (Verdict.OK, Verdict.WARN)

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "source": self.source, "digest": self.digest,
                "native_prog_btf": self.native_prog_btf, "verdict": self.verdict.label,
                "accepts": self.accepts, "error": self.error,
                "cells": [c.as_json() for c in self.cells]}


@dataclass(frozen=True, slots=True)
class FleetReport:
    """The whole answer: the artifact's checks and every kernel's results."""

    artifact: str
    checks: tuple[Check, ...]
    kernels: tuple[KernelResult, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return all(k.accepts for k in self.kernels)

    @property
    def unreadable(self) -> bool:
        return any(k.error is not None for k in self.kernels)

    @property
    def exit_code(self) -> int:
        """0 every kernel accepts, 1 any refuses, 2 any could not be read (bad input)."""
        if self.unreadable:
            return 2
        return 0 if self.ok else 1

    def as_json(self) -> dict[str, object]:
        return {"artifact": self.artifact, "ok": self.ok, "exit": self.exit_code,
                "checks": [c.as_json() for c in self.checks],
                "kernels": [k.as_json() for k in self.kernels]}
