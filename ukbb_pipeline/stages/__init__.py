"""The stages, and the one function ``main.py`` calls: build the typed config and run the selected stage."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from ukbb_pipeline import registry
from ukbb_pipeline.config import PipelineConfig, StageConfig, pipeline_config
from ukbb_pipeline.formats import Writer, make_writer
from ukbb_pipeline.runtime.folders import refuse_output_among_inputs
from ukbb_pipeline.runtime.inputs import read_eid_list
from ukbb_pipeline.runtime.parallel import default_n_jobs
from ukbb_pipeline.runtime.register import Withdrawals
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary, raise_on_failures

log = logging.getLogger(__name__)

StageRun = Callable[..., list[StageSummary]]


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
        seam_mismatch_limit=config.seam_mismatch_limit,
        # every later run honours every withdrawal (a stage given only its own folders has no root, so no register)
        withdrawals=Withdrawals.of_root(config.paths.root) if config.paths.root is not None else None,
        eids_file=config.eids_file,
        exclude_eids_file=config.exclude_eids_file,
    )


def _folders_of_stages() -> tuple[dict[str, str], dict[str, str]]:
    """From the table of stages: the ``paths`` folder each processing stage makes, and the stage reading each
    ``paths`` folder (``input_dir``, ``dxa_dir``, ...)."""
    makes: dict[str, str] = {}
    read_by: dict[str, str] = {}
    for entry in registry.STAGES:
        if entry.version is None:  # not a processing stage
            continue
        output, reads = entry.paths_keys()
        if output is not None:
            makes[entry.name] = output
        for key in reads:
            read_by.setdefault(key, entry.name)
    return makes, read_by


def check_output_folder(config: PipelineConfig) -> None:
    """Refuse a processing stage whose output folder is, or is inside, its own or any stage's input folder."""
    stage = config.stage
    makes, read_by = _folders_of_stages()
    if stage.name not in makes:
        return
    inputs = {f"paths.{key} ({reader}'s input)": Path(getattr(config.paths, key))
              for key, reader in read_by.items() if key != makes[stage.name]}
    inputs["stage.input_dir"] = Path(stage.input_dir)
    if getattr(stage, "dxa_dir", None):
        inputs["stage.dxa_dir"] = Path(stage.dxa_dir)
    refuse_output_among_inputs(stage.name, Path(stage.output_dir), inputs)


def run_stage_from_config(cfg: DictConfig) -> list[StageSummary]:
    """Run the stage ``cfg.stage`` selects; raise after the manifests are written when an input failed."""
    return run_configured(pipeline_config(cfg))


def run_configured(config: PipelineConfig) -> list[StageSummary]:
    """Run the stage of a checked config (:func:`~ukbb_pipeline.config.pipeline_config`)."""
    check_output_folder(config)
    options = run_options(config)
    writer = make_writer(config.writer)
    stage: StageConfig = config.stage
    from ukbb_pipeline.stages.withdraw import remember_log_folder, remember_output_folder

    # (a withdrawal cleans its own log folder, and must not make a root; a stage given its folders one by one has none)
    root = config.paths.root
    remembers = stage.name != "withdraw" and root is not None
    if remembers and root is not None:
        remember_log_folder(root)  # logs name subjects: a withdrawal must find every run's
    try:
        summaries = registry.stage(stage.name).run()(stage, options=options, writer=writer, qc=config.qc)
    finally:
        if remembers and root is not None:
            remember_log_folder(root)  # the demo makes its root
            remember_output_folder(root, stage.output_dir)  # a withdrawal cleans it wherever it is
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
