"""A one-line progress bar for the fleet check: kernels done, rate, time left.

It writes only when its stream is a terminal (a pipe or a file gets nothing;
callers also leave it off for ``--json``), redraws at most ten times a second
whatever the number of updates, and :meth:`Progress.close` wipes the line so
that the matrix printed next starts clean::

    [##########..........]  412/1000 kernels   83.1/s   7s left
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

__all__ = ["Progress"]

_MIN_INTERVAL = 0.1  # seconds between redraws


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """``Progress(total)``; ``update(done)`` as kernels finish; ``close()`` at the end (or ``with``)."""

    def __init__(self, total: int, stream: TextIO | None = None, *,
                 clock: Callable[[], float] = time.monotonic, width: int | None = None) -> None:
        self.total = max(total, 0)
        self.stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._start = clock()
        self._last_draw: float | None = None
        self._done = 0
        self._shown = False
        try:
            self.enabled = bool(self.stream.isatty())
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            self.enabled = False
        if width is None and self.enabled:
            import shutil

            width = shutil.get_terminal_size((80, 24)).columns
        self.width = max(min(width or 80, 120), 40)

    def line(self, done: int, now: float) -> str:
        """The bar for *done* kernels at time *now* (on the same clock as the constructor's)."""
        done = min(max(done, 0), self.total) if self.total else max(done, 0)
        elapsed = max(now - self._start, 0.0)
        rate = done / elapsed if elapsed > 0 else 0.0
        count = f"{done:>{len(str(self.total))}}/{self.total} kernels"
        speed = f"{rate:.1f}/s" if done else "-/s"
        if done >= self.total:
            left = f"{_duration(elapsed)} total"
        elif rate > 0:
            left = f"{_duration((self.total - done) / rate)} left"
        else:
            left = "? left"
        text = f"  {count}   {speed}   {left}"
        bar_w = max(self.width - len(text) - 3, 10)
        filled = bar_w * done // self.total if self.total else bar_w
        return f"[{'#' * filled}{'.' * (bar_w - filled)}]{text}"[: self.width - 1]

    def update(self, done: int) -> None:
        """*done* kernels are finished (not an increment); redraws when due."""
        self._done = done
        if not self.enabled:
            return
        now = self._clock()
        if (self._last_draw is not None and now - self._last_draw < _MIN_INTERVAL
                and done < self.total):
            return
        self._last_draw = now
        self.stream.write("\r" + self.line(done, now) + "\033[K")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """Wipe the bar (the terminal line is left empty for what is printed next)."""
        if self.enabled and self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
        self._shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
