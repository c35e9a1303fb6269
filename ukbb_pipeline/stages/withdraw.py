"""Stage ``withdraw``: delete the data of UK Biobank withdrawals (``exclude_eids_file``) from every folder."""

from __future__ import annotations

import logging
from pathlib import Path

from ukbb_pipeline.config import WithdrawConfig
from ukbb_pipeline.formats import Writer
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary
from ukbb_pipeline.withdraw import withdraw

log = logging.getLogger(__name__)


def run(config: WithdrawConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
    if not options.exclude_eids:
        raise ValueError("stage=withdraw needs exclude_eids_file=<the withdrawal list>")
    folders = [Path(config.input_dir), *(Path(folder) for folder in config.log_dirs)]
    report = withdraw(options.exclude_eids, folders=folders)
    log.info(
        "withdraw: %d participants in the list; removed %d files or folders named after them, rewrote %d manifests "
        "or logs, removed %d multi-subject files that mentioned them (make those again)",
        len(options.exclude_eids), len(report.removed), len(report.rewritten), len(report.aggregates_removed),
    )
    for path in report.aggregates_removed:
        log.info("withdraw: removed %s", path)
    return []
