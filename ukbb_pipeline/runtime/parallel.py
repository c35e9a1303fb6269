"""How many workers a run may use, and running a function over many inputs with joblib."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, TypeVar

from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor

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
) -> Iterator[T]:
    """Yield ``function(*arguments)`` (``function(shared, *arguments)`` with ``shared``), in completion order.

    With one job everything runs in this process (simple to debug, no pickling). Otherwise ``n_jobs`` worker
    processes (BLAS kept to one thread each) run the calls; ``shared`` is sent to each worker once, not with every
    call, so what travels per call is only its own arguments; ``chunk_size`` calls travel together (fewer round
    trips when calls are quick). At most a few chunks per worker are in flight, so a 100,000-unit run holds few
    pending futures.
    """
    if n_jobs == 1:
        for arguments in argument_lists:
            yield function(*arguments) if shared is None else function(shared, *arguments)
        return
    if shared is None:
        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered", inner_max_num_threads=1)
        yield from parallel(delayed(function)(*arguments) for arguments in argument_lists)
        return
    executor = get_reusable_executor(
        max_workers=n_jobs, initializer=_install, initargs=(shared,), env=_ONE_THREAD, reuse=False
    )
    window = max(4, 4 * n_jobs)
    pending: set[Future[list[T]]] = set()
    try:
        for chunk in _chunks(argument_lists, max(1, chunk_size)):
            pending.add(executor.submit(_call_shared, function, chunk))
            if len(pending) >= window:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield from future.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield from future.result()
    finally:
        for future in pending:
            future.cancel()


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
    """Worker initializer (its arguments travel once per worker): keep the object every call of this run shares."""
    _SHARED[:] = [shared]


def _call_shared(function: Callable[..., T], chunk: list[tuple[Any, ...]]) -> list[T]:
    return [function(_SHARED[0], *arguments) for arguments in chunk]
