"""How many workers a run may use, and running a function over many inputs with joblib."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from joblib import Parallel, delayed

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
    function: Callable[..., T], argument_lists: Iterable[tuple[Any, ...]], *, n_jobs: int
) -> Iterator[T]:
    """Yield ``function(*arguments)`` for each tuple, in completion order, on ``n_jobs`` processes.

    With one job everything runs in this process (simple to debug, no pickling). Workers keep BLAS to one thread.
    """
    if n_jobs == 1:
        for arguments in argument_lists:
            yield function(*arguments)
        return
    parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered", inner_max_num_threads=1)
    yield from parallel(delayed(function)(*arguments) for arguments in argument_lists)
