"""Stage ``download``: an EID list (or a ukbconv ``.bulk`` file) to verified bulk zips in ``raw/dxas/`` and
``raw/mris/``, through ukbfetch or the Research Analysis Platform's ``dx``, at most ``parallel`` at a time.

Its inputs are requests, not files, so it does not use the runner's per-input loop; it keeps the runner's
conventions: one manifest row per requested file (ok | failed | skipped with a reason), a summary, skip what is done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from ukbb_pipeline.config import DownloadBackend, DownloadConfig
from ukbb_pipeline.download.bulk import (
    BulkRequest,
    RequestSource,
    keep_eids,
    raw_path,
    read_request_file,
    requests_for,
)
from ukbb_pipeline.download.dx import DxBackend
from ukbb_pipeline.download.fetch import Backend, FileResult, RetryPolicy, fetch_all
from ukbb_pipeline.download.keyfile import check_key_file
from ukbb_pipeline.download.resume import PresentFile, check_present, read_ledger, set_aside
from ukbb_pipeline.download.tools import find_executable
from ukbb_pipeline.download.ukbfetch import UkbfetchBackend
from ukbb_pipeline.errors import OutputError
from ukbb_pipeline.formats.base import Writer
from ukbb_pipeline.runtime.atomic import remove_stale_scratch
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.manifest import FAILED, OK, SKIPPED, ManifestRow, ManifestWriter
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary, format_summary

log = logging.getLogger(__name__)

MAX_PARALLEL = 10  # UK Biobank: at most 10 simultaneous downloads per application (since 03/2019)
STAGE = "download"


def check_settings(config: DownloadConfig, options: RunOptions) -> None:
    """Refuse settings that would break UK Biobank's limits or cannot work, naming the setting."""
    if options.shard_count > 1:
        raise ValueError(
            f"download refuses shard.count={options.shard_count}: UK Biobank's limit of {MAX_PARALLEL} simultaneous "
            "downloads is per application, so parallel shards would exceed it; run one download with stage.parallel"
        )
    if not 1 <= config.parallel <= MAX_PARALLEL:
        raise ValueError(
            f"stage.parallel={config.parallel} is refused: UK Biobank allows 1 to {MAX_PARALLEL} simultaneous "
            "downloads per application"
        )
    if config.retries < 0 or config.retry_backoff_s < 0 or config.timeout_per_file_s <= 0:
        raise ValueError("stage.retries and stage.retry_backoff_s must be >= 0, stage.timeout_per_file_s > 0")
    if not config.fields or not config.instances:
        raise ValueError("stage.fields and stage.instances must each list at least one value")


def make_requests(config: DownloadConfig, options: RunOptions) -> list[BulkRequest]:
    """The files to fetch: stage.eids_file (or the top-level eids_file) x fields x instances, minus exclusions."""
    if config.eids_file is not None:
        source = read_request_file(Path(config.eids_file))
    elif options.only_eids is not None:
        source = RequestSource(eids=tuple(sorted(options.only_eids)))
    else:
        raise ValueError("download needs stage.eids_file=<an EID list or a ukbconv .bulk file> (or eids_file=...)")
    requested = requests_for(source, fields=config.fields, instances=config.instances)
    kept = keep_eids(requested, only=options.only_eids, exclude=options.exclude_eids)
    if len(kept) < len(requested):
        log.info("download: %d of %d requested files left out by eids_file / exclude_eids_file",
                 len(requested) - len(kept), len(requested))
    return kept


def make_backend(config: DownloadConfig) -> Backend:
    """The configured tool, checked before any work: the executable is there, and so is ukbfetch's key file."""
    if config.backend == DownloadBackend.dx:
        folders = {int(field): folder for field, folder in config.dx_folders.items()}
        missing = [field for field in config.fields if field not in folders]
        if missing:
            raise ValueError(f"no stage.dx_folders entry for field(s) {missing}")
        return DxBackend(
            executable=find_executable(config.dx, setting="stage.dx"),
            folders=folders,
            project=config.dx_project,
            timeout_per_file_s=config.timeout_per_file_s,
        )
    return UkbfetchBackend(
        executable=find_executable(config.ukbfetch, setting="stage.ukbfetch"),
        key=check_key_file(Path(config.key_file)),
        timeout_per_file_s=config.timeout_per_file_s,
    )


def run(
    config: DownloadConfig, *, options: RunOptions, writer: Writer | None = None, qc: bool = True
) -> list[StageSummary]:
    """Fetch what is missing, verify it, and record one manifest row per requested file."""
    started = time.monotonic()
    check_settings(config, options)
    requests = make_requests(config, options)
    backend = make_backend(config)
    output_dir = Path(config.output_dir)
    folders = StageFolders(output=output_dir, stage=STAGE)
    try:
        folders.scratch.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"download: cannot write to {output_dir}: {error.strerror}") from None
    remove_stale_scratch(folders.scratch)

    def destination(request: BulkRequest) -> Path:
        return raw_path(output_dir, request)

    manifest = ManifestWriter(folders.meta, stage=STAGE, shard_index=0, shard_count=1)
    try:
        todo = _skip_present(requests, manifest, folders, destination, config, options)
        if requests:
            log.info("download: %d files requested, %d present and valid, %d to fetch with %s",
                     len(requests), len(requests) - len(todo), len(todo), backend.name)
        else:
            log.warning("download: nothing to fetch (the EID list, fields, instances and filters leave no file)")
        with tqdm(total=len(todo), desc=STAGE, unit="file", disable=None) as progress:

            def record(result: FileResult) -> None:
                manifest.add(_fetched_row(result, destination(result.request), redo=todo[result.request]))
                progress.update()
                if not result.ok:
                    log.error("%s failed: %s", result.request.stem, result.reason)

            fetch_all(
                list(todo),
                backend=backend,
                destination=destination,
                scratch_root=folders.scratch,
                parallel=config.parallel,
                retry=RetryPolicy(retries=config.retries, backoff_s=config.retry_backoff_s),
                on_result=record,
            )
    finally:
        if requests:
            manifest.flush()

    rows = manifest.rows
    summary = StageSummary(
        name=STAGE,
        rows=rows,
        manifest=manifest.path if requests else None,
        output_dir=output_dir,
        seconds=time.monotonic() - started,
        counts={status: sum(row.status == status for row in rows) for status in (OK, FAILED, SKIPPED)},
    )
    log.info(format_summary(summary))
    return [summary]


def _skip_present(
    requests: list[BulkRequest],
    manifest: ManifestWriter,
    folders: StageFolders,
    destination: Callable[[BulkRequest], Path],
    config: DownloadConfig,
    options: RunOptions,
) -> dict[BulkRequest, str]:
    """Record a skipped row for each file present and valid; return the rest with why each is (re)fetched."""
    if options.overwrite:
        return {r: ("redone: overwrite=true" if destination(r).exists() else "") for r in requests}
    present = check_present(requests, destination=destination, ledger=read_ledger(folders.meta),
                            parallel=config.parallel)
    todo: dict[BulkRequest, str] = {}
    for request in requests:
        found = present.get(request)
        if found is None:
            todo[request] = ""
        elif found.problem is None:
            manifest.add(_present_row(found))
        else:
            aside = set_aside(found.path, folders.meta / "rejected")
            todo[request] = f"redone: the file present was {found.problem} (moved to {aside})"
            log.warning("%s: %s", request.stem, todo[request])
    return todo


def _present_row(found: PresentFile) -> ManifestRow:
    request = found.request
    return ManifestRow(
        input=request.stem,
        status=SKIPPED,
        eid=request.eid,
        instance=request.instance,
        output=str(found.path),
        reason=f"present and valid ({found.how})",
        seconds=found.seconds,
        qc={"attempts": 0, "bytes": found.size, "mtime_ns": found.mtime_ns},
    )


def _fetched_row(result: FileResult, final: Path, *, redo: str) -> ManifestRow:
    request = result.request
    return ManifestRow(
        input=request.stem,
        status=OK if result.ok else FAILED,
        eid=request.eid,
        instance=request.instance,
        output=str(final) if result.ok else "",
        reason="; ".join(part for part in (redo, result.reason) if part),
        seconds=result.seconds,
        qc={
            "attempts": result.attempts,
            "bytes": "" if result.size is None else result.size,
            "mtime_ns": "" if result.mtime_ns is None else result.mtime_ns,
        },
    )
