"""Stage ``withdraw``: apply a UK Biobank withdrawal list (``exclude_eids_file``) to a data root.

First the list goes into the root's withdrawal register (:mod:`ukbb_pipeline.runtime.register`), which every later
run honours and a run already going checks before each output and manifest flush. Then what the pipeline made of
those participants is removed (:mod:`ukbb_pipeline.withdraw`) under the root, in every output folder a run recorded
(wherever it is), in every log folder a run recorded, the configured ``stage.log_dirs`` and this run's own. The
user's own files that mention them are listed, never changed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ukbb_pipeline.config import WithdrawConfig
from ukbb_pipeline.errors import ConfigError, OutputError
from ukbb_pipeline.formats import Writer
from ukbb_pipeline.runtime.register import record_withdrawal, register_path
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary
from ukbb_pipeline.withdraw import (
    LOG_FOLDERS,
    OUTPUT_FOLDERS,
    holds_pipeline_folders,
    record_folder,
    recorded_folders,
    withdraw,
)

log = logging.getLogger(__name__)

RUN_LOG = "ukbb-pipeline.log"  # Hydra's log of a run of this pipeline (hydra.job.name)


def run(config: WithdrawConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
    if not options.exclude_eids:
        raise ConfigError("stage=withdraw needs exclude_eids_file=<the withdrawal list>")
    root = Path(config.input_dir)
    check_root(root)
    listed = [Path(path) for path in (options.exclude_eids_file, options.eids_file) if path]
    new = record_withdrawal(root, options.exclude_eids, list_path=listed[0] if listed else Path("?"))
    log.info("withdraw: %d participant(s) recorded in %s (%d new): every later run leaves them out",
             len(options.exclude_eids), register_path(root), new)
    own = hydra_log_folder()
    log_folders = [*recorded_folders(root, kind=LOG_FOLDERS), *pipeline_runs_in(config.log_dirs),
                   *([own] if own is not None else [])]
    outputs = recorded_folders(root, kind=OUTPUT_FOLDERS, existing_only=False)
    report = withdraw(options.exclude_eids, root=root, output_folders=outputs, log_folders=log_folders, keep=listed)

    log.info("withdraw: removed %d files or folders of theirs, rewrote %d manifests or logs, removed %d "
             "multi-subject files (the stage's next run makes them again)",
             len(report.removed), len(report.rewritten), len(report.remade))
    for path in report.remade:
        log.info("withdraw: removed %s: it named a withdrawn participant; the stage's next run makes it again", path)
    for path, line in report.user_files:
        log.warning("withdraw: %s (line %d) mentions a withdrawn participant: not the pipeline's file, left as it "
                    "is; remove the participant from it yourself", path, line)
    for path in report.not_searched:
        log.warning("withdraw: %s is too large to search for withdrawn participants: check it yourself", path)
    for path in report.missing:
        log.warning("withdraw: the output folder %s, recorded by an earlier run, is not there now: if it is on a "
                    "disk not mounted here, run the withdrawal again where it is", path)
    if report.unreadable:
        shown = "; ".join(f"{path}: {why}" for path, why in report.unreadable[:5])
        raise OutputError(f"withdraw: could not clean {len(report.unreadable)} folder(s) or file(s): {shown} "
                          "(the register is written: later runs leave the participants out)")
    return []


def check_root(root: Path) -> None:
    """A mistyped root must not look like a withdrawal done: it must exist and hold the pipeline's folders."""
    if not root.is_dir():
        raise ConfigError(f"withdraw: paths.root={root} does not exist (nothing was withdrawn)")
    if not holds_pipeline_folders(root):
        raise ConfigError(f"withdraw: paths.root={root} holds no pipeline folders (pipeline-*): is it the data root? "
                          "(nothing was withdrawn)")


def pipeline_runs_in(log_dirs: list[str]) -> list[Path]:
    """The run folders (with this pipeline's log) and sweep folders (with such runs) in the configured folders."""
    found = []
    for base in map(Path, log_dirs):
        if not base.is_dir():
            continue
        for entry in os.scandir(base):
            if not entry.is_dir():
                continue
            folder = Path(entry.path)
            if (folder / RUN_LOG).is_file() or any((child / RUN_LOG).is_file() for child in _subfolders(folder)):
                found.append(folder)
    return found


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [Path(entry.path) for entry in os.scandir(folder) if entry.is_dir()]
    except OSError:
        return []


def hydra_log_folder() -> Path | None:
    """This run's log folder: Hydra's run folder, or for a multirun its sweep folder (which holds .submitit/)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra = HydraConfig.get()
    except (ImportError, ValueError):  # not under Hydra (called from Python)
        return None
    output = Path(hydra.runtime.output_dir)
    return output.parent if hydra.mode == RunMode.MULTIRUN else output


def remember_log_folder(root: str | Path) -> None:
    """Record this run's log folder under ``root``, so that a withdrawal started anywhere finds it."""
    folder = hydra_log_folder()
    if folder is not None and Path(root).is_dir():
        record_folder(Path(root), folder, kind=LOG_FOLDERS)


def remember_output_folder(root: str | Path, folder: str | Path) -> None:
    """Record a run's output folder under ``root``, so that a withdrawal cleans it wherever it is."""
    if Path(root).is_dir() and Path(folder).is_dir():
        record_folder(Path(root), Path(folder), kind=OUTPUT_FOLDERS)
