"""The download scheduler: at most ``parallel`` tool calls at once, each in its own scratch folder; every zip a call
leaves is verified and moved into place atomically; files that failed are retried in a later call after a growing
wait, then reported with the reason. A file counts as downloaded only once it has passed verification.

A call that fails part-way (ukbfetch works down its batch file in order) has probably never tried the files after
the first one it missed past the last file it left: those go straight back into the queue without losing an
attempt. A call that left no file at all (the server is down) costs every file an attempt, so the backoff applies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ukbb_pipeline.download.bulk import BulkRequest, split_into_calls
from ukbb_pipeline.download.tools import ChildProcesses, ToolRun
from ukbb_pipeline.download.verify import zip_problem
from ukbb_pipeline.errors import OutputError
from ukbb_pipeline.runtime.atomic import scratch_name
from ukbb_pipeline.runtime.runner import STOP_ERRNOS, failure_reason

log = logging.getLogger(__name__)



class Backend(Protocol):
    """A download tool: ``fetch`` leaves the ``<stem>.zip`` files it could get in ``scratch`` and says how it ended."""

    @property
    def name(self) -> str: ...
    @property
    def max_per_call(self) -> int: ...

    def fetch(self, requests: Sequence[BulkRequest], scratch: Path, children: ChildProcesses) -> ToolRun: ...


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3  # further attempts after the first
    backoff_s: float = 30.0  # wait before the first retry; doubled for each further one
    max_backoff_s: float = 900.0

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)


@dataclass(frozen=True)
class FileResult:
    """How one requested file ended. ``seconds`` is its share of the time of the calls that fetched it."""

    request: BulkRequest
    ok: bool
    reason: str = ""
    output: Path | None = None
    seconds: float = 0.0
    attempts: int = 1
    size: int | None = None
    mtime_ns: int | None = None
    retryable: bool = True
    charged: bool = True  # False: the call failed before it reached this file; its attempt does not count


@dataclass(frozen=True)
class _Call:
    requests: list[BulkRequest]
    attempt: int
    ready_at: float = 0.0


def fetch_all(
    requests: Sequence[BulkRequest],
    *,
    backend: Backend,
    destination: Callable[[BulkRequest], Path],
    scratch_root: Path,
    parallel: int,
    retry: RetryPolicy,
    on_result: Callable[[FileResult], None],
) -> None:
    """Fetch ``requests`` into ``destination(request)``, calling ``on_result`` once per request as each settles.

    If the caller is interrupted (an exception, Ctrl-C), the tool processes still running are stopped before the
    exception propagates; zips already moved into place stay, and a re-run fetches only the rest.
    """
    calls = [_Call(batch, attempt=1) for batch in split_into_calls(
        requests, parallel=parallel, max_per_call=backend.max_per_call)]
    if not calls:
        return
    log.info("%s: %d files in %d calls of at most %d, %d at a time",
             backend.name, len(requests), len(calls), max(len(call.requests) for call in calls), parallel)
    children = ChildProcesses()
    spent: dict[BulkRequest, float] = {}
    pending = list(calls)
    running: dict[Future[list[FileResult]], _Call] = {}
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="download") as pool:
        try:
            while pending or running:
                now = time.monotonic()
                pending.sort(key=lambda call: call.ready_at)
                while pending and len(running) < parallel and pending[0].ready_at <= now:
                    call = pending.pop(0)
                    future = pool.submit(_run_call, call, backend, destination, scratch_root, children)
                    running[future] = call
                if not running:
                    time.sleep(max(0.0, pending[0].ready_at - now))
                    continue
                timeout = max(0.0, pending[0].ready_at - now) if pending and len(running) < parallel else None
                done, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
                for future in done:
                    call = running.pop(future)
                    retry_later, not_reached = _settle(call, future.result(), spent, retry, on_result)
                    if not_reached:
                        pending.append(_Call(not_reached, attempt=call.attempt))
                    if retry_later:
                        delay = retry.delay(call.attempt)
                        pending.append(_Call(retry_later, attempt=call.attempt + 1, ready_at=time.monotonic() + delay))
                        log.warning("%s: %d file(s) to retry in %.3g s (attempt %d of %d), e.g. %s",
                                    backend.name, len(retry_later), delay, call.attempt + 1, retry.retries + 1,
                                    retry_later[0].stem)
        except BaseException:
            children.stop_all()
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _settle(
    call: _Call,
    results: list[FileResult],
    spent: dict[BulkRequest, float],
    retry: RetryPolicy,
    on_result: Callable[[FileResult], None],
) -> tuple[list[BulkRequest], list[BulkRequest]]:
    """Report the results that are final; return the requests to try again (after a wait) and those the call
    never reached (to try again at once, with the same attempt number)."""
    retry_later, not_reached = [], []
    for result in results:
        spent[result.request] = spent.get(result.request, 0.0) + result.seconds
        if not result.ok and result.retryable and not result.charged:
            not_reached.append(result.request)
            continue
        if not result.ok and result.retryable and call.attempt <= retry.retries:
            retry_later.append(result.request)
            continue
        reason = result.reason
        if not result.ok and call.attempt > 1:
            reason = f"after {call.attempt} attempts: {reason}"
        elif result.ok and call.attempt > 1:
            reason = f"fetched at attempt {call.attempt}"
        on_result(dataclasses.replace(result, reason=reason, seconds=spent.pop(result.request), attempts=call.attempt))
    return retry_later, not_reached


def _run_call(
    call: _Call, backend: Backend, destination: Callable[[BulkRequest], Path], scratch_root: Path,
    children: ChildProcesses,
) -> list[FileResult]:
    """One tool call in a fresh scratch folder, then verify and place each file it wrote."""
    started = time.monotonic()
    scratch = scratch_root / scratch_name(Path(f"{backend.name}-call"))
    try:
        scratch.mkdir(parents=True)
        run = backend.fetch(call.requests, scratch, children)
        left = [(scratch / request.file_name).is_file() for request in call.requests]
        results = [_collect(request, scratch, run, backend.name, destination) for request in call.requests]
        if not run.succeeded and any(left):
            reached = max(index for index, present in enumerate(left) if present) + 1  # the last it left, and one
            results = [result if index <= reached or result.ok else dataclasses.replace(result, charged=False)
                       for index, result in enumerate(results)]
    except OSError as error:
        if error.errno in STOP_ERRNOS:
            raise OutputError(f"download: cannot write {error.filename or scratch_root}: {error.strerror}") from None
        results = _unexpected(error, call.requests)
    except Exception as error:  # a bug must not lose the manifest; say where it happened, and do not retry
        results = _unexpected(error, call.requests)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    share = (time.monotonic() - started) / len(call.requests)
    return [dataclasses.replace(result, seconds=share) for result in results]


def _unexpected(error: Exception, requests: Sequence[BulkRequest]) -> list[FileResult]:
    """Every file of the call failed by an error of ours: say where it happened, and do not retry."""
    reason = failure_reason(error)
    return [FileResult(request, ok=False, reason=reason, retryable=False) for request in requests]


def _collect(
    request: BulkRequest, scratch: Path, run: ToolRun, tool: str, destination: Callable[[BulkRequest], Path]
) -> FileResult:
    """Verify the file a call left for ``request`` and move it into place, or say why there is none."""
    path = scratch / request.file_name
    if not path.is_file():
        said = run.messages_about(request.stem) or run.messages_about(request.bulk_line)
        if run.succeeded:
            reason = f"not served: {tool} wrote no file ({said or run.last_message()})"
            return FileResult(request, ok=False, reason=reason)
        about_this_file = f" ({said})" if said and said != run.last_message() else ""
        return FileResult(request, ok=False, reason=f"{tool} failed ({run.describe()}); no file{about_this_file}")
    problem = zip_problem(path)
    if problem is not None:
        context = "" if run.succeeded else f"; {tool} {run.describe()}"
        return FileResult(request, ok=False, reason=f"downloaded file is {problem}{context}")
    final = destination(request)
    move_into_place(path, final)
    stat = final.stat()
    return FileResult(request, ok=True, output=final, size=stat.st_size, mtime_ns=stat.st_mtime_ns)


def move_into_place(source: Path, final: Path) -> None:
    """Move ``source`` to ``final`` atomically: readers see no file or the whole file, never part of one."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, final)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        # Another file system (e.g. a symlinked raw folder): copy beside the target, then rename there.
        partial = final.with_name(f".{final.name}.{os.getpid()}.partial")
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
