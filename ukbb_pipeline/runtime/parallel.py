"""How many workers a run may use, and running a function over many inputs with joblib."""

from __future__ import annotations

import itertools
import os
import re
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor

from ukbb_pipeline.errors import Interrupted
from ukbb_pipeline.runtime.stopping import GRACE_S, graceful, requested_stop

T = TypeVar("T")


def default_n_jobs() -> int:
    """The CPUs this process may use (its affinity, not the machine's count), capped by SLURM_CPUS_PER_TASK.

    Under SLURM the affinity mask may be unbound (the whole node), so the granted CPUs count too.
    """
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        available = os.cpu_count() or 1
    granted = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if granted.isdigit() and int(granted) > 0:
        available = min(available, int(granted))
    return max(1, available)


def imap_unordered(
    function: Callable[..., T],
    argument_lists: Iterable[tuple[Any, ...]],
    *,
    n_jobs: int,
    shared: Any = None,
    chunk_size: int = 1,
    on_death: Callable[[tuple[Any, ...], str], T] | None = None,
) -> Iterator[T]:
    """Yield ``function(*arguments)`` (``function(shared, *arguments)`` with ``shared``), in completion order.

    With one job everything runs in this process (simple to debug, no pickling). Otherwise ``n_jobs`` worker
    processes (BLAS kept to one thread each) run the calls; ``shared`` is sent to each worker once, not with every
    call, so what travels per call is only its own arguments; ``chunk_size`` calls travel together (fewer round
    trips when calls are quick). At most a few chunks per worker are in flight, so a 100,000-unit run holds few
    pending futures.

    A worker that dies (the OOM killer's SIGKILL, a segfault in a decoder) breaks the whole pool, and every call in
    flight fails with it. With ``on_death`` (and ``shared``), the calls in flight are run again, fewer at a time,
    until the one whose worker dies alone is found: ``on_death(arguments, reason)`` is yielded for it, and the run
    goes on with the others. A worker ended by SIGTERM or SIGINT (the whole run is being stopped) raises
    :class:`~ukbb_pipeline.errors.Interrupted`.
    """
    if n_jobs == 1:
        for arguments in argument_lists:
            yield function(*arguments) if shared is None else function(shared, *arguments)
        return
    if shared is None:
        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered", inner_max_num_threads=1)
        yield from parallel(delayed(function)(*arguments) for arguments in argument_lists)
        return
    yield from _pooled(function, iter(argument_lists), n_jobs=n_jobs, shared=shared, chunk_size=max(1, chunk_size),
                       window=max(4, 4 * n_jobs), on_death=on_death)


def _executor(n_jobs: int, shared: Any) -> Any:
    return get_reusable_executor(max_workers=n_jobs, initializer=_install, initargs=(shared,), env=_ONE_THREAD,
                                 reuse=False)


def _pooled(
    function: Callable[..., T], argument_lists: Iterator[tuple[Any, ...]], *, n_jobs: int, shared: Any,
    chunk_size: int, window: int, on_death: Callable[[tuple[Any, ...], str], T] | None,
) -> Iterator[T]:
    """Run the calls with at most ``window`` chunks in flight; on a worker's death, isolate the call that killed it
    (the calls in flight again, ``n_jobs`` then one at a time)."""
    executor = _executor(n_jobs, shared)
    chunks = _chunks(argument_lists, chunk_size)
    pending: dict[Future[list[T]], list[tuple[Any, ...]]] = {}
    try:
        with graceful():  # a stopping signal: no new work, the calls in flight recorded, then Interrupted
            while True:
                stop = requested_stop()
                if stop is None:
                    for chunk in itertools.islice(chunks, max(0, window - len(pending))):
                        pending[executor.submit(_call_shared, function, chunk)] = chunk
                if not pending:
                    break
                done, _ = wait(pending, timeout=GRACE_S if stop is not None else 0.5, return_when=FIRST_COMPLETED)
                if stop is not None and not done:
                    break  # the calls in flight did not end within the grace time
                suspects: list[tuple[Any, ...]] = []
                death: BrokenProcessPool | None = None
                for future in done:
                    chunk = pending.pop(future)
                    try:
                        results = future.result()
                    except BrokenProcessPool as error:
                        if on_death is None:
                            raise
                        death, suspects = error, suspects + chunk
                        continue
                    yield from results
                if death is None:
                    continue
                _stop_if_interrupted(death)
                if requested_stop() is not None:
                    break
                for chunk in pending.values():  # the whole pool went down with the worker
                    suspects.extend(chunk)
                pending.clear()
                assert on_death is not None
                if window == 1 and len(suspects) == 1:
                    yield on_death(suspects[0], death_reason(death))
                else:
                    yield from _pooled(function, iter(suspects), n_jobs=n_jobs, shared=shared, chunk_size=1,
                                       window=n_jobs if window > n_jobs else 1, on_death=on_death)
                executor = _executor(n_jobs, shared)
            if requested_stop() is not None:
                _abandon(executor)
    except BaseException:  # stopped (an error that ends the run): the workers must not run on
        _abandon(executor)
        raise


def _abandon(executor: Any) -> None:
    """End the workers of a run that is stopping (an error, a signal), without waiting for their calls.

    The executor fails its futures itself (cancelling them here would trip loky's manager thread). That thread can
    still trip over a result that arrives while the workers are killed (a ``KeyError`` on a work item already
    dropped): its error says nothing about the run, so it is kept out of the log while the executor shuts down.
    """
    previous = threading.excepthook

    def quiet(args: threading.ExceptHookArgs) -> None:
        if args.thread is None or args.thread.name != "ExecutorManagerThread":
            previous(args)

    threading.excepthook = quiet
    try:
        executor.shutdown(wait=True, kill_workers=True)
    finally:
        threading.excepthook = previous


_SIGNAL_IN_MESSAGE = re.compile(r"\((-?\d+)\)")
_HINTS: dict[int, str] = {signal.SIGKILL: "likely out of memory (the kernel's OOM killer, or a job's memory limit)",
          signal.SIGSEGV: "a crash in native code, e.g. an image decoder", signal.SIGBUS: "a crash in native code",
          signal.SIGABRT: "a crash in native code"}


def _exit_codes(error: BaseException) -> list[int]:
    """The exit codes loky reports for the dead workers (``{SIGKILL(-9)}``): negative numbers are signals."""
    return [int(code) for code in _SIGNAL_IN_MESSAGE.findall(str(error))]


def death_reason(error: BaseException) -> str:
    """The one-line reason for a call whose worker died: ``its worker process died: killed by signal 9 (SIGKILL):
    likely out of memory ...``."""
    codes = _exit_codes(error)
    code = next((code for code in codes if code < 0), codes[0] if codes else None)
    if code is None:
        return f"{WORKER_DIED}: {type(error).__name__}"
    if code >= 0:
        return f"{WORKER_DIED}: it exited with code {code}"
    number = -code
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = "unknown signal"
    hint = _HINTS.get(number)
    return f"{WORKER_DIED}: killed by signal {number} ({name})" + (f", {hint}" if hint else "")


WORKER_DIED = "its worker process died"


def _stop_if_interrupted(error: BaseException) -> None:
    """Workers ended by SIGTERM or SIGINT: the run is being stopped (scancel, Ctrl-C), not failed by an input."""
    codes = _exit_codes(error)
    stops = {-signal.SIGTERM, -signal.SIGINT}
    if codes and all(code in stops for code in codes):
        raise Interrupted(-codes[0])


def _chunks(items: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_ONE_THREAD = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"), "1")
_SHARED: list[Any] = []


def _install(shared: Any) -> None:
    """Worker initializer (its arguments travel once per worker): keep the object every call of this run shares.

    Ctrl-C reaches every process of the terminal's group: a worker ignores it, and the main process stops the run
    (its manifest flushed) and ends the workers.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _SHARED[:] = [shared]


def _call_shared(function: Callable[..., T], chunk: list[tuple[Any, ...]]) -> list[T]:
    return [function(_SHARED[0], *arguments) for arguments in chunk]
