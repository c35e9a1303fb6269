"""Stage ``download``: an EID list (or a ukbconv ``.bulk`` file) to verified bulk zips in ``raw/dxas/`` and
``raw/mris/``, through ukbfetch or the Research Analysis Platform's ``dx``, at most ``parallel`` at a time (with
ukbfetch at most 10, one run per root and application at a time: UK Biobank's limits).

Its units are requests (one per file), run through the runner like every stage: one manifest row per requested file
(ok | failed | skipped with a reason), a summary, files present and valid skipped. The runner's ``n_jobs`` does not
apply: the stage runs its units its own way, at most ``stage.parallel`` tool calls at once (UK Biobank's limit).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from ukbb_pipeline.config import DownloadConfig
from ukbb_pipeline.download.bulk import BulkRequest, raw_path
from ukbb_pipeline.download.fetch import Backend, FileResult, RetryPolicy, fetch_all
from ukbb_pipeline.download.lock import download_lock
from ukbb_pipeline.download.resume import check_present, read_ledger, set_aside
from ukbb_pipeline.download.setup import MAX_PARALLEL, make_backend, make_requests
from ukbb_pipeline.download.ukbfetch import UkbfetchBackend
from ukbb_pipeline.formats.base import Writer
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.manifest import FAILED, OK, SKIPPED
from ukbb_pipeline.runtime.runner import Result, RunOptions, Stage, StageSummary, Task, Unit, run_units

__all__ = ["MAX_PARALLEL", "DownloadStage", "run"]
log = logging.getLogger(__name__)


class DownloadStage(Stage):
    name = "download"
    unit_name = "file"
    def __init__(self, config: DownloadConfig, *, backend: Backend):
        self.config, self.backend = config, backend
        self.settings = {}
        self.output_dir = Path(config.output_dir)
        self.folders = StageFolders(output=self.output_dir, stage=self.name)
        self.source = "requests: stage.eids_file (or eids_file) x stage.fields x stage.instances"

    def destination(self, request: BulkRequest) -> Path:
        return raw_path(self.output_dir, request)

    def check_done(self, units: list[Unit], *, fingerprint: str, overwrite: bool) -> Iterator[Task | Result]:
        """Files present and valid are skipped (checked in parallel: verifying reads every byte); a damaged one is
        set aside and fetched again."""
        if overwrite:
            yield from (Task(u, "redone: overwrite=true" if self.destination(u.item).exists() else "", "")
                        for u in units)
            return
        present = check_present([u.item for u in units], destination=self.destination,
                                ledger=read_ledger(self.folders.meta), parallel=self.config.parallel)
        for unit in units:
            found = present.get(unit.item)
            if found is None:
                yield Task(unit, "", "")
            elif found.problem is None:
                yield Result(unit, SKIPPED, reason=f"present and valid ({found.how})", output=str(found.path),
                             seconds=found.seconds, qc={"attempts": 0, "bytes": found.size, "mtime_ns": found.mtime_ns})
            else:
                aside = set_aside(found.path, self.folders.meta / "rejected")
                redo = f"redone: the file present was {found.problem} (moved to {aside})"
                log.warning("%s: %s", unit.key, redo)
                yield Task(unit, redo, "")

    def execute(self, tasks: list[Task], *, n_jobs: int, emit: Callable[[Result], None]) -> None:
        """The batched fetch: at most ``stage.parallel`` tool calls at once, with retries, whatever ``n_jobs`` is."""
        by_request = {task.unit.item: task for task in tasks}

        def settled(result: FileResult) -> None:
            task = by_request[result.request]
            emit(Result(
                task.unit, OK if result.ok else FAILED,
                reason="; ".join(part for part in (task.redo, result.reason) if part),
                output=str(self.destination(result.request)) if result.ok else "", seconds=result.seconds,
                qc={"attempts": result.attempts, "bytes": "" if result.size is None else result.size,
                    "mtime_ns": "" if result.mtime_ns is None else result.mtime_ns},
            ))

        retry = RetryPolicy(retries=self.config.retries, backoff_s=self.config.retry_backoff_s)
        fetch_all(list(by_request), backend=self.backend, destination=self.destination,
                  scratch_root=self.folders.scratch, parallel=self.config.parallel, retry=retry, on_result=settled)


def run(
    config: DownloadConfig, *, options: RunOptions, writer: Writer | None = None, qc: bool = True
) -> list[StageSummary]:
    """Fetch what is missing, verify it, and record one manifest row per requested file."""
    requests = make_requests(config, only=options.only_eids, exclude=options.exclude_eids)
    backend = make_backend(config)
    stage = DownloadStage(config, backend=backend)
    units = [Unit(key=r.stem, input=r.stem, eid=r.eid, instance=r.instance, item=r) for r in requests]
    one_at_a_time = (download_lock(stage.folders.meta, backend.key.application)
                     if isinstance(backend, UkbfetchBackend) else contextlib.nullcontext(0.0))
    with one_at_a_time:  # a second ukbfetch run on this root waits, then skips what the first fetched
        return [run_units(stage, units, options)]
