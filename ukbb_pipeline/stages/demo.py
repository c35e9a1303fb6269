"""Stage ``demo`` (the default): a small synthetic cohort, every processing stage on it, ``collect`` and a report.

The cohort is generated once under ``<paths.root>/raw/`` and reused; a second run skips what is done.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ukbb_pipeline.config import DemoConfig
from ukbb_pipeline.formats import Writer
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary
from ukbb_pipeline.stages import collect, extract_slices, report, run_stages, unzip_dxa, unzip_mri

log = logging.getLogger(__name__)


def ensure_cohort(config: DemoConfig) -> Path:
    """Write the synthetic cohort unless it is there already; return its folder."""
    from ukbb_pipeline.synthetic import make_cohort, mixed_quirks

    raw = Path(config.input_dir)
    marker = raw / f".complete-{config.subjects}-{config.size}-{config.seed}-{'quirks' if config.quirks else 'clean'}"
    if not marker.exists():
        log.info("demo: writing %d synthetic subjects (%s size) to %s", config.subjects, config.size, raw)
        mri_quirks, dxa_quirks = mixed_quirks(config.subjects) if config.quirks else (None, None)
        make_cohort(raw, n_subjects=config.subjects, size=config.size, seed=config.seed, mri_quirks=mri_quirks,
                    dxa_quirks=dxa_quirks)
        marker.touch()
    return raw


def run(config: DemoConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
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
        lines.append(
            f"  {summary.name:15} {counts.get('ok', 0):3} ok {counts.get('failed', 0):3} failed "
            f"{counts.get('skipped', 0):3} skipped   {summary.output_dir}"
        )
    if reports:
        lines.append(f"  report: {reports[-1]}")
    lines.append("Your own data: ukbb-pipeline stage=<stage> paths.root=/data/ukbb (python main.py ... in a checkout; "
                 "ukbb-pipeline --help lists the stages).")
    log.info("\n".join(lines))
    return summaries
