"""Stage ``status``: where a cohort stands (:mod:`ukbb_pipeline.qc.status`), printed and written as CSV.

Reads the manifests under ``paths.root`` (through the cohort's state) and lists the input folders; processes
nothing. Honours ``eids_file`` (EIDs with no zip are listed as missing) and ``exclude_eids_file`` (counted).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ukbb_pipeline.config import StatusConfig
from ukbb_pipeline.formats import Writer
from ukbb_pipeline.qc.status import cohort_status, format_register, format_status, register_lines, write_status_csv
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary

log = logging.getLogger(__name__)


def run(config: StatusConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
    if config.jobs is not None:  # a platform sweep submitted without waiting: its jobs' states
        from ukbb_pipeline.rap.jobs import format_job_states, job_states

        log.info("%s", format_job_states(job_states(Path(config.jobs))))
    root = Path(config.input_dir)
    if config.jobs is not None and not root.is_dir():
        return []  # the cohort itself lives on the platform
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist")
    statuses = cohort_status(root, raw_inputs=config.raw_inputs, only_eids=options.only_eids,
                             exclude_eids=options.exclude_eids, seam_mismatch_limit=options.seam_mismatch_limit)
    path = write_status_csv(statuses, output_dir=Path(config.output_dir), examples=config.examples,
                            extra=register_lines(root))
    log.info("status of %s:", root)
    for line in [*format_status(statuses, examples=config.examples).splitlines(), *format_register(root).splitlines()]:
        log.info("%s", line)  # a line per record: the log escapes line breaks inside a value
    log.info("  written to %s", path)
    return []
