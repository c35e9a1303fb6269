"""The skeleton every processing stage shares.

discover -> drop excluded EIDs -> keep this shard's -> skip those done with the same settings -> process each (a pure
function, in parallel) -> write atomically -> one manifest row each -> summary. One bad input gets a one-line reason
in the manifest and the log, and the rest of the run goes on.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ukbb_pipeline.errors import InputError, OutputError, StageFailed
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.runtime.atomic import remove_stale_scratch
from ukbb_pipeline.runtime.fingerprint import input_signature, settings_fingerprint
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile, filter_by_eid
from ukbb_pipeline.runtime.manifest import FAILED, OK, SKIPPED, ManifestRow, ManifestWriter
from ukbb_pipeline.runtime.parallel import imap_unordered
from ukbb_pipeline.runtime.progress import progress
from ukbb_pipeline.runtime.sharding import in_shard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """The run-wide settings every stage shares (the top level of the config)."""

    n_jobs: int = 1
    overwrite: bool = False
    allow_failures: bool = False
    shard_index: int = 0
    shard_count: int = 1
    only_eids: frozenset[int] | None = None
    exclude_eids: frozenset[int] | None = None


@dataclass(frozen=True)
class StageJob:
    """What a stage asks the runner to do: ``process`` turns one input into an :class:`Output`.

    ``process`` must be picklable (a module-level function or a ``functools.partial`` of one), because it runs in
    worker processes. ``settings`` are everything that changes the outputs; their fingerprint decides what a
    re-run redoes. ``nested`` asks for the layout with a folder per output where the writer has one (DXA pickles).
    """

    name: str
    folders: StageFolders
    inputs: list[InputFile]
    process: Callable[[InputFile], Output]
    writer: Writer
    settings: dict[str, Any]
    nested: bool = False
    source: str = ""  # where the inputs were looked for, for messages (e.g. "*.zip in /data/raw/dxas")


@dataclass
class StageSummary:
    name: str
    rows: list[ManifestRow]
    manifest: Path | None
    output_dir: Path
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> list[ManifestRow]:
        return [row for row in self.rows if row.status == FAILED]


def select_inputs(inputs: list[InputFile], options: RunOptions) -> list[InputFile]:
    """The inputs this run is responsible for: EID filters, then this shard."""
    kept = filter_by_eid(inputs, only=options.only_eids, exclude=options.exclude_eids)
    return [item for item in kept if in_shard(item.stem, index=options.shard_index, count=options.shard_count)]


def run_stage(job: StageJob, options: RunOptions) -> StageSummary:
    """Run ``job`` over this shard's inputs and return the summary (the manifest is written as rows arrive)."""
    started = time.monotonic()
    inputs = select_inputs(job.inputs, options)
    try:
        job.folders.scratch.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{job.name}: cannot write to {job.folders.output}: {error.strerror}") from None
    remove_stale_scratch(job.folders.scratch)
    fingerprint = settings_fingerprint({"stage": job.name, **job.settings, **job.writer.settings()})

    manifest = ManifestWriter(
        job.folders.meta, stage=job.name, shard_index=options.shard_index, shard_count=options.shard_count
    )
    todo: list[tuple[InputFile, str, str]] = []
    for item in inputs:
        output_fingerprint = _output_fingerprint(fingerprint, item)
        redo_reason = _redo_reason(job, item, output_fingerprint, overwrite=options.overwrite)
        if redo_reason is None:
            path = job.writer.output_path(job.folders, item.stem, nested=job.nested)
            reason = "done earlier from the same input with the same settings"
            manifest.add(_row(item, SKIPPED, output=path, reason=reason, fp=output_fingerprint))
        else:
            todo.append((item, redo_reason, output_fingerprint))

    if not inputs:
        log.warning("%s", _nothing_to_do(job, options))
    else:
        log.info("%s: %d inputs in this shard, %d to process, %d done already",
                 job.name, len(inputs), len(todo), len(inputs) - len(todo))
    arguments = [(item, reason, job, output_fingerprint) for item, reason, output_fingerprint in todo]
    try:
        with progress(len(todo), name=job.name) as counter:
            for row in imap_unordered(_process_one, arguments, n_jobs=min(options.n_jobs, max(1, len(todo)))):
                manifest.add(row)
                counter.update(failed=row.status == FAILED)
                if row.status == FAILED:
                    log.error("%s failed: %s", Path(row.input).name, row.reason)
                elif row.reason:
                    log.info("%s: %s", Path(row.input).name, row.reason)
    except BaseException:
        if inputs:  # keep the finished rows if the disk lets us; the error that stopped the run is the one to show
            with contextlib.suppress(OutputError):
                manifest.flush()
        raise
    if inputs:
        manifest.flush()

    rows = manifest.rows
    summary = StageSummary(
        name=job.name,
        rows=rows,
        manifest=manifest.path if inputs else None,
        output_dir=job.folders.output,
        seconds=time.monotonic() - started,
        counts={status: sum(row.status == status for row in rows) for status in (OK, FAILED, SKIPPED)},
    )
    log.info(format_summary(summary))
    return summary


def _nothing_to_do(job: StageJob, options: RunOptions) -> str:
    """Why this run has no inputs: none found where it looked, or none left after the filters and the shard."""
    where = job.source or "the input folder"
    if not job.inputs:
        return f"{job.name}: no inputs found: looked for {where}; nothing to do"
    filters = [name for name, value in (("eids_file", options.only_eids), ("exclude_eids_file", options.exclude_eids))
               if value is not None]
    if options.shard_count > 1:
        filters.append(f"shard {options.shard_index} of {options.shard_count}")
    return (f"{job.name}: {len(job.inputs)} inputs found ({where}), none left after "
            f"{', '.join(filters) or 'the filters'}; nothing to do")


def raise_on_failures(summaries: list[StageSummary], *, allow_failures: bool) -> None:
    """Raise :class:`StageFailed` when an input failed (after every manifest is written), unless allowed."""
    failed = [(summary, row) for summary in summaries for row in summary.failed]
    if failed and not allow_failures:
        names = ", ".join(f"{summary.name}: {Path(row.input).name}" for summary, row in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise StageFailed(
            f"{len(failed)} input(s) failed ({names}{more}); reasons are in the manifests "
            f"(set allow_failures=true to exit 0 anyway)"
        )


def format_summary(summary: StageSummary) -> str:
    counts = summary.counts
    lines = [
        f"{summary.name}: {len(summary.rows)} inputs: {counts.get(OK, 0)} ok, {counts.get(FAILED, 0)} failed, "
        f"{counts.get(SKIPPED, 0)} skipped in {summary.seconds:.1f} s",
        f"  outputs:  {summary.output_dir}",
    ]
    if summary.manifest is not None:
        lines.append(f"  manifest: {summary.manifest}")
    for row in summary.failed[:10]:
        lines.append(f"  failed:   {Path(row.input).name}: {row.reason}")
    if len(summary.failed) > 10:
        lines.append(f"  ... and {len(summary.failed) - 10} more failures (see the manifest)")
    return "\n".join(lines)


def _output_fingerprint(settings: str, item: InputFile) -> str:
    """What an output was made from: the stage's settings and its input's content (``<settings>-<input>``)."""
    try:
        return f"{settings}-{input_signature(item.path)}"
    except OSError:
        return f"{settings}-unreadable"  # processing will say why


def _redo_reason(job: StageJob, item: InputFile, fingerprint: str, *, overwrite: bool) -> str | None:
    """Why this input must be (re)done, or None when its output is there, opens, and was made the same way."""
    path = job.writer.output_path(job.folders, item.stem, nested=job.nested)
    if not path.exists():
        return ""
    if overwrite:
        return "redone: overwrite=true"
    stored = job.writer.stored_fingerprint(job.folders, item.stem, nested=job.nested)
    if stored is None:
        return "redone: the previous output did not open"
    if stored.split("-")[0] != fingerprint.split("-")[0]:
        return "redone: settings changed since the previous output"
    if stored != fingerprint:
        return "redone: the input changed since the previous output"
    return None


def _process_one(item: InputFile, redo_reason: str, job: StageJob, fingerprint: str) -> ManifestRow:
    """Process and write one input; every error becomes a failed row with a one-line reason."""
    started = time.monotonic()
    try:
        output = job.process(item)
        path = _write(job, item, output, fingerprint)
    except OutputError:
        raise
    except InputError as error:
        return _row(item, FAILED, reason=str(error), fp=fingerprint, started=started)
    except MemoryError:
        return _row(item, FAILED, reason="out of memory", fp=fingerprint, started=started)
    except OSError as error:  # disk full, permissions, a file gone: say what and where
        return _row(item, FAILED, reason=f"I/O error: {error}", fp=fingerprint, started=started)
    except Exception as error:  # a bug must not stop 100,000 subjects; say where it happened
        frame = traceback.extract_tb(error.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        reason = f"unexpected {type(error).__name__} at {where}: {error}"
        return _row(item, FAILED, reason=reason, fp=fingerprint, started=started)
    reason = "; ".join(part for part in (redo_reason, *output.notes) if part)
    return _row(item, OK, output=path, reason=reason, fp=fingerprint, started=started, qc=output.qc)


_STOP_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _write(job: StageJob, item: InputFile, output: Output, fingerprint: str) -> Path:
    """Write one output; a full disk or an unwritable folder stops the run, since every other input would fail too."""
    try:
        return job.writer.write(job.folders, item.stem, output, fingerprint=fingerprint, nested=job.nested)
    except OSError as error:
        code = _errno_of(error)
        if code in _STOP_ERRNOS:
            raise OutputError(f"{job.name}: cannot write to {job.folders.output}: {os.strerror(code)}") from None
        raise


def _errno_of(error: OSError) -> int | None:
    """The errno of an OSError; h5py puts it only in the message ("... errno = 28, error message = ...")."""
    if error.errno is not None:
        return error.errno
    match = re.search(r"errno = (\d+)", str(error))
    return int(match.group(1)) if match else None


def _row(
    item: InputFile,
    status: str,
    *,
    output: Path | None = None,
    reason: str = "",
    fp: str = "",
    started: float | None = None,
    qc: dict[str, Any] | None = None,
) -> ManifestRow:
    return ManifestRow(
        input=str(item.path),
        status=status,
        eid=item.eid,
        instance=item.instance,
        output="" if output is None else str(output),
        reason=reason,
        seconds=0.0 if started is None else time.monotonic() - started,
        settings_fingerprint=fp,
        qc=qc or {},
    )
