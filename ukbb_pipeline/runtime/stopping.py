"""Ending a run cleanly on SIGTERM and SIGINT (scancel, a job's time limit, the node going down, Ctrl-C).

Without this, SIGTERM ended the process at once (rows since the last manifest flush lost, and with them their QC
flags) and Ctrl-C printed a long traceback. Inside :func:`stop_on_signals` either signal raises
:class:`~ukbb_pipeline.errors.Interrupted` in the main thread; the run loop flushes its manifest on the way out and
the command line ends with one line and exit code 128 + the signal (130, 143). A second signal while the run is
stopping is ignored, so the flush is not itself cut short.

While worker processes run (:func:`graceful`), a signal only asks the run to stop: the pool stops handing out
work, takes the results of the calls in flight (up to :data:`GRACE_S`), so that every output a worker wrote gets its
manifest row, and then raises :class:`Interrupted`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from ukbb_pipeline.errors import Interrupted

SIGNALS = (signal.SIGTERM, signal.SIGINT)
GRACE_S = 15.0  # how long a stopping run waits for the calls in flight (SLURM's KillWait is 30 s by default)
_graceful = [0]  # > 0 while the caller polls requested_stop() itself
_requested: list[int] = []  # the signal that asked for a stop, while graceful


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`Interrupted` (once); the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        if _graceful[0] > 0:
            _requested.append(signum)
            return
        raise Interrupted(signum)

    previous = {number: signal.signal(number, handler) for number in SIGNALS}
    _requested.clear()
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
        _requested.clear()


@contextlib.contextmanager
def graceful() -> Iterator[None]:
    """Within the block a stopping signal is only recorded; the block polls :func:`requested_stop`."""
    _graceful[0] += 1
    try:
        yield
    finally:
        _graceful[0] -= 1
        if _graceful[0] == 0 and _requested:
            raise Interrupted(_requested[0])


def requested_stop() -> int | None:
    """The signal that asked the run to stop, or None."""
    return _requested[0] if _requested else None
