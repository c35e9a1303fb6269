"""Stage ``demo`` (the default): a small synthetic cohort, every processing stage on it, ``collect`` and a report.

The cohort is generated once under ``<paths.root>/raw/`` and reused; a second run skips what is done.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ukbb_pipeline.config import DemoConfig
from ukbb_pipeline.errors import ConfigError
from ukbb_pipeline.formats import Writer
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import parse_input
from ukbb_pipeline.runtime.manifest import read_manifests
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary
from ukbb_pipeline.runtime.state import LEFT_OUT
from ukbb_pipeline.stages import collect, extract_slices, report, run_stages, unzip_dxa, unzip_mri

log = logging.getLogger(__name__)


FIRST_EID = 1000001  # make_cohort's first subject; subject i is FIRST_EID + i
MARKER = ".complete-"  # .complete-<subjects>-<size>-<seed>-<quirks>: a cohort written whole


def foreign_entries(config: DemoConfig) -> list[str]:
    """Inputs and outputs under the demo's root that are not of the synthetic cohort the demo wrote there.

    The demo's subjects are EIDs FIRST_EID onwards (as many as the largest cohort written there); anything else in
    the raw folders, the per-input output folders or the manifests came from somewhere else (real data)."""
    raw = Path(config.input_dir)
    written = [int(marker.name.split("-")[1]) for marker in raw.glob(f"{MARKER}*")] if raw.is_dir() else []
    synthetic = range(FIRST_EID, FIRST_EID + max(written, default=0))
    stages = (config.unzip_dxa, config.unzip_mri, config.extract_slices, config.collect)
    found: list[str] = []
    for folder in (config.unzip_dxa.input_dir, config.unzip_mri.input_dir, *(stage.output_dir for stage in stages[:3])):
        if Path(folder).is_dir():
            with os.scandir(folder) as entries:
                found += [entry.path for entry in entries if not entry.name.startswith((".", "pipeline-"))
                          and parse_input(Path(entry.name)).eid not in synthetic]
    for stage in stages:
        meta = StageFolders(output=Path(stage.output_dir), stage=stage.name).meta
        if meta.is_dir():
            found += [row["input"] for row in read_manifests(meta)
                      if parse_input(Path(row["input"])).eid not in synthetic]
    return found


def refuse_a_foreign_root(config: DemoConfig) -> None:
    """The demo runs only on a root of its own: never beside real data, whose outputs would mix with synthetic ones."""
    foreign = foreign_entries(config)
    if foreign:
        raise ConfigError(f"the demo's paths.root={config.output_dir} holds {len(foreign)} input(s) or output(s) that "
                          f"are not the demo's synthetic subjects (e.g. {foreign[0]}): run the demo with a paths.root "
                          "of its own")


def ensure_cohort(config: DemoConfig) -> Path:
    """Write the synthetic cohort unless it is there already; return its folder."""
    from ukbb_pipeline.synthetic import make_cohort, mixed_quirks

    raw = Path(config.input_dir)
    marker = raw / f".complete-{config.subjects}-{config.size}-{config.seed}-{'quirks' if config.quirks else 'clean'}"
    if not marker.exists():
        log.info("demo: writing %d synthetic subjects (%s size) to %s", config.subjects, config.size, raw)
        mri_quirks, dxa_quirks = mixed_quirks(config.subjects) if config.quirks else (None, None)
        make_cohort(raw, n_subjects=config.subjects, first_eid=FIRST_EID, size=config.size, seed=config.seed,
                    mri_quirks=mri_quirks, dxa_quirks=dxa_quirks)
        marker.touch()
    return raw


def run(config: DemoConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
    refuse_a_foreign_root(config)
    ensure_cohort(config)
    summaries = run_stages(
        [
            (unzip_dxa.run, config.unzip_dxa),
            (unzip_mri.run, config.unzip_mri),
            (extract_slices.run, config.extract_slices),
            (collect.run, config.collect),
            (report.run, config.report),
        ],
        options=options,
        writer=writer,
        qc=qc,
    )
    reports = sorted(Path(config.report.output_dir).glob("report-*.html"))
    lines = [f"demo finished: a synthetic cohort of {config.subjects} subjects, everything under {config.output_dir}"]
    for summary in summaries:
        counts = summary.counts
        left_out = sum(row.reason.startswith(LEFT_OUT) for row in summary.rows)  # collect's flagged pairs
        lines.append(
            f"  {summary.name:15} {counts.get('ok', 0):3} ok {counts.get('failed', 0):3} failed "
            f"{counts.get('skipped', 0) - left_out:3} skipped" + (f" {left_out:3} left out" if left_out else "")
            + f"   {summary.output_dir}"
        )
    if reports:
        lines.append(f"  report: {reports[-1]}")
    lines.append("Your own data: ukbb-pipeline stage=<stage> paths.root=/data/ukbb (python main.py ... in a checkout; "
                 "ukbb-pipeline --help lists the stages).")
    log.info("\n".join(lines))
    return summaries
