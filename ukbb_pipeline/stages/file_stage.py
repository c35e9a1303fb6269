"""Stages whose unit is an input file and whose output is one file (or folder) per input, written by a Writer:
``unzip_dxa``, ``unzip_mri``, ``extract_slices``. The runtime's one run loop (:func:`~ukbb_pipeline.runtime.runner.
run_units`) with a format's writer (:mod:`ukbb_pipeline.formats`): the stages' layer joins the two, so the runtime
never imports the formats.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ukbb_pipeline.errors import InputError, OutputError
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.runtime.fingerprint import input_signature
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile
from ukbb_pipeline.runtime.manifest import FAILED, OK, SKIPPED, read_manifests
from ukbb_pipeline.runtime.parallel import WORKER_DIED
from ukbb_pipeline.runtime.runner import (
    STOP_ERRNOS,
    Result,
    RunOptions,
    Stage,
    StageSummary,
    Task,
    Unit,
    errno_of,
    file_unit,
    run_units,
)

DONE_EARLIER = "done earlier from the same input with the same settings"
NOT_RETRIED = "(not retried: it killed its worker last time; overwrite=true, or more memory, tries it again)"
WITHDRAWN = "its participant was withdrawn during the run"
QC_ATTR = "qc_figures"  # every output's own copy of its manifest QC figures (JSON), for a run killed before its row


@dataclass(frozen=True)
class StageJob:
    """A per-file stage: ``process`` turns one input into an :class:`Output`, which ``writer`` writes.

    ``process`` must be picklable (a module-level function or a ``functools.partial`` of one). ``settings`` are
    everything that changes the outputs; with the input's content they decide what a re-run redoes. ``nested`` asks
    for the layout with a folder per output where the writer has one (DXA pickles).
    """

    name: str
    folders: StageFolders
    inputs: list[InputFile]
    process: Callable[[InputFile], Output]
    writer: Writer
    settings: dict[str, Any]
    nested: bool = False
    source: str = ""


class FileStage(Stage):
    """A :class:`StageJob` as a :class:`Stage` (without its inputs, which stay in the main process)."""

    def __init__(self, job: StageJob):
        self.name = job.name
        self.folders = job.folders
        self.writer = job.writer
        self.settings = {**job.settings, **job.writer.settings()}
        self.source = job.source
        self.nested = job.nested
        self.make_output = job.process

    def output_path(self, unit: Unit) -> Path:
        return self.writer.output_path(self.folders, unit.key, nested=self.nested)

    def check_done(self, units: list[Unit], *, fingerprint: str, overwrite: bool) -> Iterator[Task | Result]:
        ledger, deaths = read_ledger(self.folders.meta) if units and not overwrite else ({}, {})
        for unit in units:
            output_fingerprint = content_fingerprint(fingerprint, unit.item.path)
            died = deaths.get(unit.input)
            if died is not None and died[0] == output_fingerprint:  # it would kill its worker again
                yield Result(unit, FAILED, reason=f"{died[1].split(' (not retried')[0]} {NOT_RETRIED}",
                             fingerprint=output_fingerprint)
                continue
            path = self.output_path(unit)
            try:
                stat = os.stat(path)
            except OSError:
                yield Task(unit, "", output_fingerprint)
                continue
            redo = self._redo_reason(unit, output_fingerprint, overwrite=overwrite, stat=stat,
                                     recorded=ledger.get(unit.input))
            if redo is None:
                recovered = {} if unit.input in ledger else self._stored_qc(unit)
                yield Result(unit, SKIPPED, reason=DONE_EARLIER, output=str(path), fingerprint=output_fingerprint,
                             qc={**recovered, **_stat_qc(stat)})
            else:
                yield Task(unit, redo, output_fingerprint)

    def _redo_reason(self, unit: Unit, fingerprint: str, *, overwrite: bool, stat: os.stat_result,
                     recorded: tuple[str, str, int, int] | None) -> str | None:
        """Why this unit must be (re)done, or None when its output is there, opens, and was made the same way.

        When the manifest recorded this very output file (same path, size and modification time), its fingerprint
        is taken from there, without opening the file: at 100,000 outputs, opening each costs minutes.
        """
        if overwrite:
            return "redone: overwrite=true"
        path = str(self.output_path(unit))
        if recorded is not None and recorded[1:] == (path, stat.st_size, stat.st_mtime_ns):
            stored: str | None = recorded[0]
        else:
            stored = self.writer.stored_fingerprint(self.folders, unit.key, nested=self.nested)
        if stored is None:
            return "redone: the previous output did not open"
        if stored.split("-")[0] != fingerprint.split("-")[0]:
            return self.settings_change(stored.split("-")[0])  # other settings are refused (runner)
        if stored != fingerprint:
            return "redone: the input changed since the previous output"
        return None

    def _stored_qc(self, unit: Unit) -> dict[str, Any]:
        """The QC figures an output carries (:data:`QC_ATTR`): a run killed before its manifest row was written
        left them nowhere else, and a skip must not lose its flags (a fat/water swap)."""
        try:
            text = self.writer.stored_attrs(self.folders, unit.key, nested=self.nested).get(QC_ATTR)
            figures = json.loads(text) if isinstance(text, str) else None
        except (OSError, ValueError, InputError):
            return {}
        return figures if isinstance(figures, dict) else {}

    def _withdrawn(self, unit: Unit) -> Result | None:
        """When ``unit``'s participant was withdrawn during the run: remove what this unit left (its output, sidecar
        and picture) and return the result the run drops; else None."""
        if self.withdrawals is None or unit.eid not in self.withdrawals:
            return None
        stem = unit.key
        for path in (self.output_path(unit), self.folders.sidecars / stem[:2] / f"{stem}.json",
                     *self.folders.qc.glob(f"subjects/{stem[:2]}/{stem}.*")):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return Result(unit, FAILED, reason=WITHDRAWN)

    def process(self, task: Task) -> Result:
        output = self.make_output(task.unit.item)
        withdrawn = self._withdrawn(task.unit)  # checked before the output is written ...
        if withdrawn is not None:
            return withdrawn
        output.attrs = {**output.attrs, QC_ATTR: json.dumps(output.qc, default=str)}
        path = self._write(task.unit, output, task.fingerprint)
        withdrawn = self._withdrawn(task.unit)  # ... and after, for a withdrawal that came while it was written
        if withdrawn is not None:
            return withdrawn
        reason = "; ".join(part for part in (task.redo, *output.notes) if part)
        return Result(task.unit, OK, reason=reason, output=str(path), fingerprint=task.fingerprint,
                      qc={**output.qc, **_stat_qc(os.stat(path))})

    def _write(self, unit: Unit, output: Output, fingerprint: str) -> Path:
        """Write one output; a full disk or an unwritable folder stops the run, since every other unit would fail."""
        try:
            return self.writer.write(self.folders, unit.key, output, fingerprint=fingerprint, nested=self.nested)
        except OSError as error:
            code = errno_of(error)
            if code in STOP_ERRNOS:
                raise OutputError(f"{self.name}: cannot write to {self.folders.output}: {os.strerror(code)}") from None
            raise


def run_stage(job: StageJob, options: RunOptions) -> StageSummary:
    """Run a per-file stage over this shard's inputs."""
    return run_units(FileStage(job), [file_unit(item) for item in job.inputs], options)


def _stat_qc(stat: os.stat_result) -> dict[str, Any]:
    """What the manifest records of an output file, so that a re-run knows it unchanged without opening it."""
    return {"output_bytes": stat.st_size, "output_mtime_ns": stat.st_mtime_ns}


def read_ledger(meta: Path) -> tuple[dict[str, tuple[str, str, int, int]], dict[str, tuple[str, str]]]:
    """From the latest manifest row of each input: input -> (fingerprint, output, bytes, mtime_ns) for those that
    made or kept an output, and input -> (fingerprint, reason) for those whose worker process died."""
    ledger: dict[str, tuple[str, str, int, int]] = {}
    deaths: dict[str, tuple[str, str]] = {}
    if not meta.is_dir():
        return ledger, deaths
    try:
        rows = read_manifests(meta)
    except (OSError, ValueError, KeyError, csv.Error):
        return ledger, deaths
    for row in rows:
        size, mtime = row.get("output_bytes", ""), row.get("output_mtime_ns", "")
        if row.get("status") in (OK, SKIPPED) and size.isdigit() and mtime.isdigit():
            ledger[row["input"]] = (row.get("settings_fingerprint", ""), row.get("output", ""), int(size), int(mtime))
        elif row.get("status") == FAILED and row.get("reason", "").startswith(WORKER_DIED):
            deaths[row["input"]] = (row.get("settings_fingerprint", ""), row["reason"])
    return ledger, deaths


def content_fingerprint(settings: str, path: Path) -> str:
    """What an output was made from: the stage's settings and its input's content (``<settings>-<input>``)."""
    try:
        return f"{settings}-{input_signature(path)}"
    except OSError:
        return f"{settings}-unreadable"  # processing will say why
