"""The stages, and the one function ``main.py`` calls: build the typed config and run the selected stage."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import cast

from omegaconf import DictConfig, OmegaConf

from ukbb_pipeline.config import PipelineConfig, StageConfig
from ukbb_pipeline.formats import Writer, make_writer
from ukbb_pipeline.runtime.inputs import read_eid_list
from ukbb_pipeline.runtime.parallel import default_n_jobs
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary, raise_on_failures

log = logging.getLogger(__name__)

StageRun = Callable[..., list[StageSummary]]


def _registry() -> dict[str, StageRun]:
    from ukbb_pipeline.stages import collect, demo, download, extract_slices, report, unzip_dxa, unzip_mri, withdraw

    return {
        "demo": demo.run,
        "download": download.run,
        "unzip_dxa": unzip_dxa.run,
        "unzip_mri": unzip_mri.run,
        "extract_slices": extract_slices.run,
        "withdraw": withdraw.run,
        "collect": collect.run,
        "report": report.run,
    }


def run_options(config: PipelineConfig) -> RunOptions:
    """The run-wide options, with EID lists read (a bad line fails here, before any work)."""
    if config.n_jobs is not None and config.n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1 or null, got {config.n_jobs}")
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
    config = cast(PipelineConfig, OmegaConf.to_object(cfg))
    options = run_options(config)
    if not 0 <= options.shard_index < options.shard_count:
        raise ValueError(f"shard.index must be in [0, shard.count={options.shard_count}), got {options.shard_index}")
    writer = make_writer(config.writer)
    stage: StageConfig = config.stage
    summaries = _registry()[stage.name](stage, options=options, writer=writer, qc=config.qc)
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
