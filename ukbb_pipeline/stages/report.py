"""Stage ``report``: one self-contained HTML page about the stages under ``paths.root``
(:mod:`ukbb_pipeline.qc.report`).

Reads the cohort's state (every run's and shard's manifests) and the contact sheets only, processes no inputs, and
writes ``<output_dir>/report-<time>.html``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ukbb_pipeline.config import ReportConfig
from ukbb_pipeline.errors import ConfigError
from ukbb_pipeline.formats import Writer
from ukbb_pipeline.qc.report import write_report
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary

log = logging.getLogger(__name__)


def run(config: ReportConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
    metadata = [Path(folder) / f"pipeline-{stage.replace('_', '-')}" for stage, folder in config.stage_dirs.items()]
    if not any(folder.is_dir() for folder in metadata):  # a misspelt root: refuse rather than report nothing
        raise ConfigError(f"report: no pipeline folders under {config.input_dir} (none of {metadata[0].name}, ...): "
                          "is paths.root the folder the stages wrote to?")
    path = write_report(
        config.stage_dirs,
        output_dir=Path(config.output_dir),
        root=Path(config.input_dir),
        max_pictures=config.max_pictures,
        max_rows=config.max_rows,
        only_eids=options.only_eids,
        exclude_eids=options.exclude_eids,
        raw_inputs=config.raw_inputs,
        seam_mismatch_limit=options.seam_mismatch_limit,
    )
    log.info("report: %s", path)
    return []
