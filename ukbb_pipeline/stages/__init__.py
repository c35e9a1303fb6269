"""The stages, and the one function ``main.py`` calls: build the typed config and run the selected stage."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from ukbb_pipeline.config import PipelineConfig, StageConfig, pipeline_config
from ukbb_pipeline.formats import Writer, make_writer
from ukbb_pipeline.runtime.inputs import read_eid_list
from ukbb_pipeline.runtime.parallel import default_n_jobs
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary, raise_on_failures

log = logging.getLogger(__name__)

StageRun = Callable[..., list[StageSummary]]


def _registry() -> dict[str, StageRun]:
    from ukbb_pipeline.stages import (
        collect,
        demo,
        download,
        extract_slices,
        report,
        status,
        unzip_dxa,
        unzip_mri,
        withdraw,
    )

    return {
        "demo": demo.run,
        "download": download.run,
        "unzip_dxa": unzip_dxa.run,
        "unzip_mri": unzip_mri.run,
        "extract_slices": extract_slices.run,
        "withdraw": withdraw.run,
        "collect": collect.run,
        "report": report.run,
        "status": status.run,
    }


def run_options(config: PipelineConfig) -> RunOptions:
    """The run-wide options, with EID lists read (a bad line fails here, before any work)."""
    return RunOptions(
        n_jobs=config.n_jobs or default_n_jobs(),
        overwrite=config.overwrite,
        allow_failures=config.allow_failures,
        shard_index=config.shard.index,
        shard_count=config.shard.count,
        only_eids=frozenset(read_eid_list(Path(config.eids_file))) if config.eids_file else None,
        exclude_eids=frozenset(read_eid_list(Path(config.exclude_eids_file))) if config.exclude_eids_file else None,
    )


def run_stage_from_config(cfg: DictConfig) -> list[StageSummary]:
    """Run the stage ``cfg.stage`` selects; raise after the manifests are written when an input failed."""
    return run_configured(pipeline_config(cfg))


def run_configured(config: PipelineConfig) -> list[StageSummary]:
    """Run the stage of a checked config (:func:`~ukbb_pipeline.config.pipeline_config`)."""
    options = run_options(config)
    writer = make_writer(config.writer)
    stage: StageConfig = config.stage
    from ukbb_pipeline.stages.withdraw import remember_log_folder

    root = config.paths.root  # None when the stage was given its folders one by one
    if root is not None:
        remember_log_folder(root)  # logs name subjects: a withdrawal must find every run's
    try:
        summaries = _registry()[stage.name](stage, options=options, writer=writer, qc=config.qc)
    finally:
        if root is not None:
            remember_log_folder(root)  # the demo makes its root
    raise_on_failures(summaries, allow_failures=options.allow_failures)
    return summaries


def run_stages(
    stages: list[tuple[StageRun, StageConfig]], *, options: RunOptions, writer: Writer, qc: bool
) -> list[StageSummary]:
    """Run several stages in order (each reads what the one before wrote)."""
    summaries: list[StageSummary] = []
    for run, stage in stages:
        summaries.extend(run(stage, options=options, writer=writer, qc=qc))
    return summaries
