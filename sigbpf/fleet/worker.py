"""Checking one kernel: read it, answer every check, return a small :class:`KernelResult`.

:class:`KernelChecker` is built once per process from the artifact
(:class:`~sigbpf.fleet.needs.ArtifactNeeds`: parsed program BTF, the seed's
subject, the CO-RE relocation set) and then checks kernel after kernel.
Per kernel it keeps nothing: the BTF objects die when :meth:`check` returns,
only the cells (a few KB) go back to the parent process.

Order of work for one kernel: digest (:mod:`.kernel_input`) -> cache look-up
(:mod:`.cache`) -> read the BTF -> cells of every kind (:mod:`.kfunc_verdicts`,
:mod:`.attach_verdicts`, :mod:`.enum_verdicts`, :mod:`.core_verdicts`) ->
cache write.  Any :class:`~sigbpf.errors.SigbpfError` (and ``MemoryError``)
while reading makes a result with ``error`` set: "could not read: ...".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sigbpf.fleet.model import Cell, KernelResult

if TYPE_CHECKING:  # pragma: no cover
    from sigbpf.fleet.cache import ResultCache
    from sigbpf.fleet.kernel_input import KernelData
    from sigbpf.fleet.needs import ArtifactNeeds
    from sigbpf.fleet.sources import KernelSource


@dataclass(frozen=True, slots=True)
class FleetOptions:
    """The checks beyond the seed (``--no-proto-check`` ...), as for ``sigbpf resolve``."""

    prototype: bool = True
    kfunc: bool = True
    module: bool = True

    @property
    def key(self) -> str:
        """Part of the cache key."""
        return f"proto={int(self.prototype)},kfunc={int(self.kfunc)},module={int(self.module)}"


@dataclass
class Checked:
    """What a worker sends back: the result, whether its name was read from the content,
    the files it hashed (for the parent's digest memo) and whether the cache answered."""

    result: KernelResult
    named_by_content: bool = False
    hashed: list = field(default_factory=list)
    cached: bool = False


class KernelChecker:
    """The artifact's side, prepared once; :meth:`check` answers one kernel."""

    def __init__(self, needs: "ArtifactNeeds", options: FleetOptions, cache: "ResultCache") -> None:
        from sigbpf.resolve.subject import Subject

        self.needs = needs
        self.options = options
        self.cache = cache
        self.artifact = needs.artifact()
        self.subject = Subject.from_artifact(needs.data, needs.path)
        self.prog_btf = self.subject.prog_btf
        self._relos = None
        if any(p.core_relos for p in self.artifact.programs):
            try:
                from sigbpf.btf.core import core_relocations
            except ImportError:  # the CO-RE calculator is not part of this build
                pass
            else:
                self._relos = core_relocations(self.artifact, self.prog_btf)
        self.names = tuple(sorted(needs.names))
        self.core_names = tuple(sorted(self._core_names()))

    def _core_names(self) -> set[str]:
        """Root type names of the CO-RE relocations (module BTFs holding one are read)."""
        if self._relos is None or self.prog_btf is None:
            return set()
        from sigbpf.btf.core_types import essential_name

        out = set()
        for r in self._relos.relocations:
            try:
                name = essential_name(self.prog_btf.name_of(r.type_id))
            except Exception:  # a bad id: the relocation itself will say so
                continue
            if name:
                out.add(name)
        return out

    def check(self, source: "KernelSource", memo=None) -> Checked:
        """One kernel, start to end (never raises for a bad kernel: its result says so)."""
        from sigbpf.errors import SigbpfError
        from sigbpf.fleet.cache import result_key
        from sigbpf.fleet.kernel_input import KernelReader

        reader = KernelReader(source, memo)
        label = source.label or source.path
        try:
            digest = reader.digest()
        except (SigbpfError, MemoryError) as err:
            return Checked(KernelResult(label, source.path, error=_why(err)), hashed=reader.hashed)
        key = result_key(self.needs.digest, self.options.key, digest)
        hit = self.cache.get(key, source=source.path, label=label)
        if hit is not None:
            return Checked(hit.result, hit.named_by_content, reader.hashed, cached=True)
        try:
            data = reader.read(self.names, self.core_names)
            cells = self.cells(data, label)
        except (SigbpfError, MemoryError) as err:
            return Checked(KernelResult(label, source.path, digest, error=_why(err)), hashed=reader.hashed)
        native = self._native(data)
        result = KernelResult(data.version or label, source.path, digest, native, tuple(cells))
        named = data.version is not None
        self.cache.put(key, result, named_by_content=named)
        return Checked(result, named, reader.hashed)

    def cells(self, data: "KernelData", label: str) -> list[Cell]:
        """Every check's cell for one kernel, in the artifact's check order."""
        from sigbpf.fleet.attach_verdicts import attach_cells, ksym_cells
        from sigbpf.fleet.enum_verdicts import enum_cells
        from sigbpf.fleet.kfunc_verdicts import kfunc_set, program_and_kfunc_cells
        from sigbpf.resolve.report import CheckOptions

        o = self.options
        modules = data.modules if o.module else ()
        kset = kfunc_set(data.vmlinux, data.btf_ids) if o.kfunc else None
        copts = CheckOptions(prototype=o.prototype, kfunc=o.kfunc, module=o.module, digest=False)
        cells = program_and_kfunc_cells(self.subject, self.artifact, label, data.vmlinux, modules,
                                        kset, copts)
        cells += attach_cells(self.artifact, self.prog_btf, data.vmlinux, data.modules,
                              prototype=o.prototype)
        cells += ksym_cells(self.artifact, self.prog_btf, data.vmlinux, data.modules)
        cells += enum_cells(self.needs.enums, data.vmlinux)
        cells += self._core_cells(data)
        order = {c.key: i for i, c in enumerate(self.needs.checks)}
        return sorted(cells, key=lambda c: order.get(c.check, len(order)))

    def _core_cells(self, data: "KernelData") -> list[Cell]:
        from sigbpf.fleet.model import CheckKind, Verdict

        core_checks = [c for c in self.needs.checks if c.kind is CheckKind.CORE]
        if not core_checks:
            return []
        if self._relos is None or self.prog_btf is None:
            return [Cell(c.key, Verdict.WARN, "core-unchecked",
                         "this sigbpf has no CO-RE calculator (sigbpf.btf.core)") for c in core_checks]
        from sigbpf.fleet.core_verdicts import core_cells

        return core_cells(self._relos, self.prog_btf, data.vmlinux, data.modules)

    @staticmethod
    def _native(data: "KernelData") -> bool | None:
        """Does the kernel resolve src_reg 3 itself? The running kernel: its probe; else its BTF."""
        if data.running:
            try:
                from sigbpf.kernel.probe import kernel_resolves_prog_btf

                return kernel_resolves_prog_btf().native
            except Exception:  # no bpf() here (permissions): fall back to what the BTF shows
                pass
        try:
            from sigbpf.resolve.native import native_prog_btf
        except ImportError:
            return None
        return native_prog_btf(data.vmlinux)


def _why(err: BaseException) -> str:
    """The "could not read" reason: the error's one line."""
    if isinstance(err, MemoryError):
        return "out of memory reading it"
    return str(err)


# -------------------------------------------------------------- worker processes

_checker: KernelChecker | None = None


def init_worker(needs: "ArtifactNeeds", options: FleetOptions, cache_dir, big_reads=None) -> None:
    """Pool initializer: prepare this process's :class:`KernelChecker` once; *big_reads* is
    the pool's lock for kernel images (:data:`sigbpf.fleet.kernel_input.BIG_READS`)."""
    global _checker
    from sigbpf.fleet import kernel_input
    from sigbpf.fleet.cache import ResultCache

    if big_reads is not None:
        kernel_input.BIG_READS = big_reads
    _checker = KernelChecker(needs, options, ResultCache(cache_dir))


def check_in_worker(item: tuple[int, "KernelSource"]) -> tuple[int, Checked]:
    """Pool task: (index, source) -> (index, what was found)."""
    index, source = item
    assert _checker is not None, "init_worker was not run"
    return index, _checker.check(source)
