"""Stage ``withdraw``: delete the data of UK Biobank withdrawals (``exclude_eids_file``) from every folder.

The folders: the data root, every log folder a run over it recorded (:func:`ukbb_pipeline.withdraw.record_log_folder`,
called for every stage through :func:`remember_log_folder`), the configured ``stage.log_dirs`` and this run's own.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ukbb_pipeline.config import WithdrawConfig
from ukbb_pipeline.formats import Writer
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary
from ukbb_pipeline.withdraw import record_log_folder, recorded_log_folders, withdraw

log = logging.getLogger(__name__)


def run(config: WithdrawConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
    if not options.exclude_eids:
        raise ValueError("stage=withdraw needs exclude_eids_file=<the withdrawal list>")
    root = Path(config.input_dir)
    own = hydra_log_folder()
    folders = [root, *recorded_log_folders(root), *(Path(folder) for folder in config.log_dirs),
               *([own] if own is not None else [])]
    report = withdraw(options.exclude_eids, folders=folders)
    log.info(
        "withdraw: %d participants in the list; removed %d files or folders named after them, rewrote %d manifests "
        "or logs, removed %d multi-subject files that mentioned them (make those again)",
        len(options.exclude_eids), len(report.removed), len(report.rewritten), len(report.aggregates_removed),
    )
    for path in report.aggregates_removed:
        log.info("withdraw: removed %s", path)
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
        record_log_folder(Path(root), folder)
