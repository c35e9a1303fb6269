"""Progress that shows wherever the output goes.

In a terminal: a tqdm bar, with log lines written above it (through ``tqdm.write``) instead of glued onto it.
Anywhere else (SLURM logs, ``nohup``, a redirect), where a bar turns itself off: a log line every so often, saying
what is done, what failed, the rate and the time left::

    unzip_mri: 1200/100000 done (3 failed), 4.1 inputs/s, about 6 h 42 min left
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

log = logging.getLogger(__name__)


def _duration(time_s: float) -> str:
    seconds = round(time_s)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def progress_line(name: str, *, done: int, failed: int, total: int, elapsed: float, unit: str = "input") -> str:
    """``name: done/total done (failed), rate, time left`` (the rate and time left once something is done)."""
    text = f"{name}: {done}/{total} done"
    if failed:
        text += f" ({failed} failed)"
    if done and elapsed > 0:
        rate = done / elapsed
        text += f", {rate:.3g} {unit}s/s" if rate >= 1 else f", {1 / rate:.3g} s/{unit}"
        if done < total:
            text += f", about {_duration((total - done) / rate)} left"
    return text


class Progress:
    """Count finished units; show a bar in a terminal, or log :func:`progress_line` every so often elsewhere.

    A line is logged when ``interval_s`` have passed since the last one, or when another ``step`` of the total is
    done (at most one line every ``min_gap_s``), so a quick run logs a few lines and a day-long one one every
    ``interval_s``.
    """

    def __init__(self, total: int, *, name: str, unit: str = "input", stream: TextIO | None = None,
                 interval_s: float = 30.0, step: float = 0.05, min_gap_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, logger: logging.Logger = log):
        self.total, self.name, self.unit = total, name, unit
        self.done = self.failed = 0
        self.interval_s, self.step, self.min_gap_s = interval_s, step, min_gap_s
        self.clock, self.logger = clock, logger
        stream = sys.stderr if stream is None else stream
        self.terminal = bool(getattr(stream, "isatty", lambda: False)())
        self._bar: Any = None
        self._stream = stream
        self._started = self._last_time = clock()
        self._last_done = 0

    def __enter__(self) -> Progress:
        if self.terminal and self.total:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=self.name, unit=self.unit, file=self._stream)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def update(self, *, failed: bool = False) -> None:
        """One more unit finished (``failed``: it failed)."""
        self.done += 1
        self.failed += failed
        if self._bar is not None:
            self._bar.update()
            if self.failed:
                self._bar.set_postfix(failed=self.failed, refresh=False)
            return
        now = self.clock()
        since = now - self._last_time
        stepped = self.done - self._last_done >= max(1.0, self.step * self.total)
        if self.done < self.total and (since >= self.interval_s or (stepped and since >= self.min_gap_s)):
            self.logger.info(progress_line(self.name, done=self.done, failed=self.failed, total=self.total,
                                           elapsed=now - self._started, unit=self.unit))
            self._last_time, self._last_done = now, self.done


@contextlib.contextmanager
def progress(total: int, *, name: str, unit: str = "input", **settings: Any) -> Iterator[Progress]:
    """A :class:`Progress`; in a terminal, log lines meanwhile go above the bar (``tqdm.write``), not onto it."""
    counter = Progress(total, name=name, unit=unit, **settings)
    if not counter.terminal:
        with counter:
            yield counter
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(loggers=[logging.getLogger()]), counter:
        yield counter
