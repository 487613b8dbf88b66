"""The fleet check's driver: kernels in, one :class:`FleetReport` out, in bounded memory.

::

    from sigbpf.fleet.run import FleetRun
    report = FleetRun(needs, sources).run()          # needs: ArtifactNeeds, sources: expand(...)

1. **Warm path, in this process**: for each kernel whose files the digest
   memo knows unchanged (:mod:`.digests`), the kernel digest is computed from
   the memo and the result cache (:mod:`.cache`) is asked -- no kernel file
   is opened.
2. **Everything else, in worker processes** (``jobs``, default: the CPUs this
   process may run on): each worker prepares the artifact once
   (:func:`~sigbpf.fleet.worker.init_worker`) and then takes kernels one at
   a time (``imap_unordered``, chunks of one, so a slow ``.deb`` does not
   hold others back); a worker is replaced after ``MAX_TASKS_PER_WORKER``
   kernels so that its memory cannot creep.  Only the small results travel
   back.  With one job, or one kernel left, no process is started.
3. Results are put back in argument order; the digest memo is saved.

Peak memory is one worker's largest kernel times the number of workers plus
the results (a few KB per kernel), whatever the number of kernels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from sigbpf.fleet.model import FleetReport, KernelResult
from sigbpf.fleet.needs import ArtifactNeeds
from sigbpf.fleet.sources import KernelSource
from sigbpf.fleet.worker import Checked, FleetOptions

#: A worker process is replaced after this many kernels (bounds memory creep).
MAX_TASKS_PER_WORKER = 200


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass
class FleetRun:
    """One run: the artifact's needs, the kernels, and how to go about it."""

    needs: ArtifactNeeds
    sources: Sequence[KernelSource]
    options: FleetOptions = FleetOptions()
    cache_dir: Path | None = None  # None: --no-cache
    jobs: int = field(default_factory=default_jobs)
    on_progress: Callable[[int], None] | None = None
    #: How many kernels were answered from the cache (set by :meth:`run`).
    cached: int = 0

    def run(self) -> FleetReport:
        from sigbpf.fleet.cache import ResultCache, result_key
        from sigbpf.fleet.digests import DigestMemo
        from sigbpf.fleet.kernel_input import KernelReader

        memo = DigestMemo.load(self.cache_dir / "digests.json" if self.cache_dir else None)
        cache = ResultCache(self.cache_dir)
        results: list[KernelResult | None] = [None] * len(self.sources)
        todo: list[tuple[int, KernelSource]] = []
        done = 0
        for i, source in enumerate(self.sources):
            digest = KernelReader(source, memo).cached_digest() if self.cache_dir else None
            hit = None
            if digest is not None:
                key = result_key(self.needs.digest, self.options.key, digest)
                hit = cache.get(key, source=source.path, label=source.label or source.path)
            if hit is not None:
                results[i] = hit.result
                self.cached += 1
                done += 1
            else:
                todo.append((i, source))
        if self.on_progress and done:
            self.on_progress(done)
        for i, checked in self._check(todo, memo):
            results[i] = checked.result
            self.cached += checked.cached
            for path, key, digest in checked.hashed:
                memo.put(path, key, digest)
            done += 1
            if self.on_progress:
                self.on_progress(done)
        memo.save()
        kernels = _unique_names([r for r in results if r is not None])
        return FleetReport(self.needs.path, self.needs.checks, tuple(kernels))

    def _check(self, todo: list[tuple[int, KernelSource]], memo):
        if not todo:
            return
        jobs = min(self.jobs, len(todo))
        if jobs <= 1:
            from sigbpf.fleet.cache import ResultCache
            from sigbpf.fleet.worker import KernelChecker

            checker = KernelChecker(self.needs, self.options, ResultCache(self.cache_dir))
            for i, source in todo:
                yield i, checker.check(source, memo)
            return
        import multiprocessing

        from sigbpf.fleet.worker import check_in_worker, init_worker

        ctx = multiprocessing.get_context("fork")
        big_reads = ctx.Lock()
        with ctx.Pool(jobs, initializer=init_worker,
                      initargs=(self.needs, self.options, self.cache_dir, big_reads),
                      maxtasksperchild=MAX_TASKS_PER_WORKER) as pool:
            yield from pool.imap_unordered(check_in_worker, todo, chunksize=1)


def _unique_names(kernels: list[KernelResult]) -> list[KernelResult]:
    """Kernels that share a name (the same release from two places) get `` (source)`` added."""
    from collections import Counter
    from dataclasses import replace

    counts = Counter(k.name for k in kernels)
    return [replace(k, name=f"{k.name} ({k.source})") if counts[k.name] > 1 else k for k in kernels]


__all__ = ["FleetRun", "FleetOptions", "Checked", "default_jobs", "MAX_TASKS_PER_WORKER"]
