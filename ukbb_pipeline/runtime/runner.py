"""The one run loop every stage shares, whatever its unit of work (an input file, a DXA/MRI pair, a download request).

discover -> drop excluded EIDs -> keep this shard's -> skip those done with the same input and settings -> process
each (in parallel) -> write atomically -> one manifest row each -> summary. One bad unit gets a one-line reason in the
manifest and the log, and the rest of the run goes on.

A stage is a :class:`Stage`: it says what its units are (:class:`Unit`), which are done (:meth:`Stage.check_done`), how
one is processed (:meth:`Stage.process`, in a worker process) and, when its units share one output (collect's shard
file), how results are gathered (:meth:`Stage.open_sink`). A stage may run its units its own way
(:meth:`Stage.execute`: download's at most ``parallel`` tool calls at once, independent of ``n_jobs``). The stage
object travels to each worker once, so per-task arguments are one unit whatever the size of the cohort. The stages
whose outputs a writer makes, one per input file, are :class:`ukbb_pipeline.stages.file_stage.FileStage`: the runtime
never imports the formats.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ukbb_pipeline.errors import ConfigError, InputError, OutputError, StageFailed
from ukbb_pipeline.flags import SEAM_MISMATCH_LIMIT
from ukbb_pipeline.runtime.atomic import remove_stale_scratch
from ukbb_pipeline.runtime.cells import escape_controls
from ukbb_pipeline.runtime.coverage import coverage_messages
from ukbb_pipeline.runtime.fingerprint import settings_fingerprint
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile
from ukbb_pipeline.runtime.manifest import FAILED, OK, SKIPPED, ManifestRow, ManifestWriter
from ukbb_pipeline.runtime.parallel import imap_unordered
from ukbb_pipeline.runtime.progress import progress
from ukbb_pipeline.runtime.register import Withdrawals
from ukbb_pipeline.runtime.sharding import in_shard
from ukbb_pipeline.runtime.state import LEFT_OUT

log = logging.getLogger(__name__)

SETTINGS_CHANGED = "redone: settings changed since the previous output"
VERSION_RAISED = "redone: the stage's output version was raised since the previous output (CHANGELOG.md)"



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
    seam_mismatch_limit: float | None = SEAM_MISMATCH_LIMIT  # a seam mismatch above this is a flag (None: never)
    withdrawals: Withdrawals | None = None  # the root's withdrawal register, honoured whatever the EID lists say
    eids_file: str | None = None  # where only_eids came from
    exclude_eids_file: str | None = None  # where exclude_eids came from (stage=withdraw records it)


@dataclass(frozen=True)
class Unit:
    """One unit of work. ``key`` names its output and decides its shard; ``input`` is the manifest's input column."""

    key: str
    input: str
    eid: int | None
    instance: int | None
    item: Any  # what the stage processes: an InputFile, a Pair, a BulkRequest


def file_unit(item: InputFile) -> Unit:
    return Unit(key=item.stem, input=str(item.path), eid=item.eid, instance=item.instance, item=item)


@dataclass(frozen=True)
class Task:
    """A unit to process, why it is (re)done (empty: new), and the fingerprint its output will carry."""

    unit: Unit
    redo: str
    fingerprint: str


@dataclass
class Result:
    """How one unit ended; ``payload`` is what a sink gathers (collect's record), None when the worker wrote it."""

    unit: Unit
    status: str
    reason: str = ""
    output: str = ""
    seconds: float = 0.0
    fingerprint: str = ""
    qc: dict[str, Any] = field(default_factory=dict)
    payload: Any = None


class Sink:
    """Gathers results in the main process; the default records each as it comes (the worker wrote its output)."""

    target: Path | None = None

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def put(self, result: Result) -> list[Result]:
        """Take one result; return those to record now."""
        return [result]

    def close(self) -> list[Result]:
        """Finish the shared output (atomically); return the results held back until it was in place."""
        return []

    def abandoned(self, error: OSError) -> list[Result]:
        """The results to record when the shared output could not be written."""
        return []


class Stage:
    """What a stage tells the runner. Subclasses set the attributes and override :meth:`process`."""

    name: str
    folders: StageFolders
    settings: dict[str, Any]  # what changes the outputs; its "version" is recorded in every manifest row
    source: str = ""  # where units were looked for, for messages (e.g. "*.zip in /data/raw/dxas")
    unit_name: str = "input"
    withdrawals: Withdrawals | None = None  # set by the run: the register checked before each output is written

    def fingerprint(self) -> str:
        return settings_fingerprint({"stage": self.name, **self.settings})

    def settings_change(self, stored: str) -> str:
        """Why outputs with the settings fingerprint ``stored`` differ: only an older output version of this stage
        (an upgrade, redone as CHANGELOG.md says) or other settings (refused unless ``overwrite``)."""
        version = self.settings.get("version")
        if isinstance(version, int):
            base = {"stage": self.name, **self.settings}
            older = {settings_fingerprint({**base, "version": earlier}) for earlier in range(version)}
            older.add(settings_fingerprint({key: value for key, value in base.items() if key != "version"}))
            if stored in older:
                return VERSION_RAISED
        return SETTINGS_CHANGED

    def check_done(self, units: list[Unit], *, fingerprint: str, overwrite: bool) -> Iterator[Task | Result]:
        """Each unit as a :class:`Task` to do, or a skipped :class:`Result`. Default: redo everything."""
        for unit in units:
            yield Task(unit, "redone: overwrite=true" if overwrite else "", fingerprint)

    def process(self, task: Task) -> Result:
        """Process one unit (in a worker process); errors become a failed result through :func:`failure_reason`."""
        raise NotImplementedError

    def open_sink(self, tasks: list[Task], options: RunOptions) -> Sink:
        """Where results go before their manifest rows are written; default: straight to the manifest."""
        return Sink()

    def execute(self, tasks: list[Task], *, n_jobs: int, emit: Callable[[Result], None]) -> None:
        """Run ``tasks``, calling ``emit`` once per unit as each ends. Default: ``n_jobs`` worker processes, with
        tasks sent a few at a time on long runs (at most 16, keeping about 50 chunks per worker for the balance)."""
        chunk = max(1, min(16, len(tasks) // (50 * n_jobs)))
        for result in imap_unordered(_process_task, [(task,) for task in tasks], n_jobs=n_jobs, shared=self,
                                     chunk_size=chunk, on_death=_worker_died):
            emit(result)


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


def select_units(units: Iterable[Unit], options: RunOptions) -> list[Unit]:
    """The units this run is responsible for: EID filters, then this shard."""
    only, exclude, withdrawn = options.only_eids, options.exclude_eids, options.withdrawals
    return [
        unit for unit in units
        if not (exclude and unit.eid in exclude)
        and not (withdrawn and unit.eid in withdrawn)
        and (only is None or unit.eid in only)
        and in_shard(unit.key, index=options.shard_index, count=options.shard_count)
    ]


def run_units(stage: Stage, units: list[Unit], options: RunOptions) -> StageSummary:
    """Run ``stage`` over this shard's ``units`` and return the summary (the manifest is written as rows arrive)."""
    started = time.monotonic()
    selected = select_units(units, options)
    for level, message in coverage_messages(stage.name, (unit.eid for unit in units), only=options.only_eids,
                                            exclude=options.exclude_eids, where=stage.source):
        log.log(level, "%s", message)
    if options.withdrawals:
        withdrawn = sum(1 for unit in units if unit.eid in options.withdrawals)
        if withdrawn:
            log.info("%s: %d input(s) of withdrawn participants left out (%s)", stage.name, withdrawn,
                     options.withdrawals.path)
    prepare_folders(stage.name, stage.folders)
    withdrawals = options.withdrawals
    stage.withdrawals = withdrawals  # checked again before each output is written (in the workers)
    manifest = ManifestWriter(
        stage.folders.meta, stage=stage.name, shard_index=options.shard_index, shard_count=options.shard_count,
        keep=None if withdrawals is None else (lambda row: row.eid not in withdrawals),
    )

    output_version = str(stage.settings.get("version", ""))

    def record(result: Result) -> None:
        if withdrawals is not None and result.unit.eid in withdrawals:  # withdrawn while this run was going
            log.info("%s: left out: its participant was withdrawn during this run", Path(result.unit.input).name)
            return
        manifest.add(_row(result, output_version=output_version))
        if result.status == FAILED:
            log.error("%s failed: %s", Path(result.unit.input).name, result.reason)
        elif result.reason and result.status == OK:
            log.info("%s: %s", Path(result.unit.input).name, result.reason)

    outcomes = list(stage.check_done(selected, fingerprint=stage.fingerprint(), overwrite=options.overwrite))
    refuse_changed_settings(stage, outcomes)
    try:
        todo: list[Task] = []
        for outcome in outcomes:
            if isinstance(outcome, Task):
                todo.append(outcome)
            else:
                record(outcome)
        if not selected:
            log.warning("%s", _nothing_to_do(stage, units, options))
        else:
            log.info("%s: %d %ss in this shard, %d to process, %d done already",
                     stage.name, len(selected), stage.unit_name, len(todo), len(selected) - len(todo))
        _run_tasks(stage, todo, options, record)
    except BaseException:
        if selected:  # keep the finished rows if the disk lets us; the error that stopped the run is the one to show
            with contextlib.suppress(OutputError):
                manifest.flush()
        raise
    if selected:
        manifest.flush()

    rows = manifest.rows
    summary = StageSummary(
        name=stage.name,
        rows=rows,
        manifest=manifest.path if selected else None,
        output_dir=stage.folders.output,
        seconds=time.monotonic() - started,
        counts={status: sum(row.status == status for row in rows) for status in (OK, FAILED, SKIPPED)},
    )
    log.info(format_summary(summary))
    return summary


def refuse_changed_settings(stage: Stage, outcomes: list[Task | Result]) -> None:
    """Stop before any work when outputs here were made with other settings: redoing a cohort is never silent."""
    changed = [o.unit for o in outcomes if isinstance(o, Task) and o.redo == SETTINGS_CHANGED]
    if changed:
        raise ConfigError(
            f"{stage.name}: {len(changed)} output(s) in {stage.folders.output} were made with other settings "
            f"(e.g. {changed[0].key}): set overwrite=true to redo them, or write to another output folder "
            "(paths.root=... or stage.output_dir=...)")


def _run_tasks(stage: Stage, todo: list[Task], options: RunOptions, record: Callable[[Result], None]) -> None:
    """Process ``todo`` through the stage's sink, with the run's one progress bar."""
    sink = stage.open_sink(todo, options)
    try:
        with sink, progress(len(todo), name=stage.name, unit=stage.unit_name) as counter:

            def emit(result: Result) -> None:
                counter.update(failed=result.status == FAILED)
                if result.status == SKIPPED:  # processed, then left out (collect's flagged pairs)
                    log.warning("%s: %s", Path(result.unit.input).name, result.reason)
                for ready in sink.put(result):
                    record(ready)

            stage.execute(todo, n_jobs=min(options.n_jobs, max(1, len(todo))), emit=emit)
            held = sink.close()
    except OutputError:
        raise
    except OSError as error:  # the shared output could not be written: none of its units is done
        for result in sink.abandoned(error):
            record(result)
        raise OutputError(f"{stage.name}: cannot write {sink.target or stage.folders.output}: {error}") from None
    for result in held:
        record(result)


def prepare_folders(name: str, folders: StageFolders) -> None:
    """Make the scratch folder (one clear error when the output folder is not writable) and clear dead runs' files."""
    try:
        folders.scratch.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{name}: cannot write to {folders.output}: {error.strerror}") from None
    remove_stale_scratch(folders.scratch)


def _nothing_to_do(stage: Stage, units: list[Unit], options: RunOptions) -> str:
    """Why this run has no units: none found where it looked, or none left after the filters and the shard."""
    where = stage.source or "the input folder"
    if not units:
        return f"{stage.name}: no {stage.unit_name}s found: looked for {where}; nothing to do"
    filters = [name for name, value in (("eids_file", options.only_eids), ("exclude_eids_file", options.exclude_eids))
               if value is not None]
    if options.shard_count > 1:
        filters.append(f"shard {options.shard_index} of {options.shard_count}")
    return (f"{stage.name}: {len(units)} {stage.unit_name}s found ({where}), none left after "
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
    left_out = sum(row.status == SKIPPED and row.reason.startswith(LEFT_OUT) for row in summary.rows)
    lines = [
        f"{summary.name}: {len(summary.rows)} inputs: {counts.get(OK, 0)} ok, {counts.get(FAILED, 0)} failed, "
        f"{counts.get(SKIPPED, 0) - left_out} skipped (done earlier)"
        + (f", {left_out} left out" if left_out else "") + f" in {summary.seconds:.1f} s",
        f"  outputs:  {summary.output_dir}",
    ]
    if summary.manifest is not None:
        lines.append(f"  manifest: {summary.manifest}")
    for row in summary.failed[:10]:
        lines.append(f"  failed:   {escape_controls(Path(row.input).name)}: {escape_controls(row.reason)}")
    if len(summary.failed) > 10:
        lines.append(f"  ... and {len(summary.failed) - 10} more failures (see the manifest)")
    return "\n".join(lines)


def failure_reason(error: BaseException) -> str:
    """The one-line manifest reason for an error that failed one unit (the one ladder every stage uses)."""
    if isinstance(error, InputError):
        return str(error)
    if isinstance(error, MemoryError):
        return "out of memory"
    if isinstance(error, OSError):  # disk full, permissions, a file gone: say what and where
        return f"I/O error: {error}"
    frame = traceback.extract_tb(error.__traceback__)[-1]  # a bug must not stop 100,000 subjects; say where
    return f"unexpected {type(error).__name__} at {Path(frame.filename).name}:{frame.lineno}: {error}"


def _process_task(stage: Stage, task: Task) -> Result:
    """Process one task in a worker; every error but a stopping :class:`OutputError` becomes a failed result."""
    started = time.monotonic()
    try:
        result = stage.process(task)
    except OutputError:
        raise
    except Exception as error:
        result = Result(task.unit, FAILED, reason=failure_reason(error), fingerprint=task.fingerprint)
    result.seconds = time.monotonic() - started
    return result


def _worker_died(arguments: tuple[Any, ...], reason: str) -> Result:
    """The result of a task whose worker process died (killed, out of memory, a crash in native code)."""
    task: Task = arguments[0]
    return Result(task.unit, FAILED, reason=reason, fingerprint=task.fingerprint)


def _row(result: Result, *, output_version: str) -> ManifestRow:
    unit = result.unit
    return ManifestRow(
        output_version=output_version,
        input=unit.input,
        status=result.status,
        eid=unit.eid,
        instance=unit.instance,
        output=result.output,
        reason=result.reason,
        seconds=result.seconds,
        settings_fingerprint=result.fingerprint,
        qc=result.qc,
    )


STOP_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def stop_if_disk_refuses(error: BaseException, *, stage: str, folder: Path) -> None:
    """Raise :class:`OutputError` (exit 3) when ``error`` is a full, read-only or unwritable disk: a step that must
    not fail the run (a contact sheet) still cannot hide that every later write will fail too."""
    code = errno_of(error) if isinstance(error, OSError) else None
    if code in STOP_ERRNOS:
        raise OutputError(f"{stage}: cannot write to {folder}: {os.strerror(code)}") from None


def draw_pictures(draw: Callable[[], list[Path]], *, stage: str, what: str, folder: Path) -> None:
    """Draw a stage's QC pictures once its outputs and manifest are written: a picture never fails the run, but a
    full or read-only disk stops it (exit 3), since every later write would fail too. ``what`` names them in the log
    (``"contact sheet(s)"``)."""
    try:
        drawn = draw()
    except Exception as error:
        stop_if_disk_refuses(error, stage=stage, folder=folder)
        log.exception("%s: %s failed", stage, what)
        return
    if drawn:
        log.info("%s: %d %s drawn in %s", stage, len(drawn), what, drawn[0].parent)


def errno_of(error: OSError) -> int | None:
    """The errno of an OSError; h5py puts it only in the message ("... errno = 28, error message = ...")."""
    if error.errno is not None:
        return error.errno
    match = re.search(r"errno = (\d+)", str(error))
    return int(match.group(1)) if match else None
