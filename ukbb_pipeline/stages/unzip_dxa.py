"""Stage ``unzip_dxa``: each DXA zip to its Total Body tissue and bone images with their pixel spacing."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from ukbb_pipeline.config import UnzipDxaConfig, ZipLimits
from ukbb_pipeline.dxa.read import acquisition, read_dxa_zip
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.qc import dxa_pictures
from ukbb_pipeline.registry import output_version
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile, discover_inputs, require_ukbb_name, search_description
from ukbb_pipeline.runtime.manifest import SKIPPED
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary, draw_pictures
from ukbb_pipeline.stages.file_stage import StageJob, run_stage
from ukbb_pipeline.ukbb import DXA_FIELD

log = logging.getLogger(__name__)


def process_dxa_zip(item: InputFile, *, limits: ZipLimits, qc_dir: Path | None = None,
                    scratch_dir: Path | None = None) -> Output:
    """Read a DXA zip in one pass and return ``tissue``, ``bone`` (uint8 as stored) and ``pixel_spacing``.

    With ``qc_dir``, also draw the subject's QC picture there (:mod:`ukbb_pipeline.qc.dxa_pictures`).
    """
    require_ukbb_name(item, field=DXA_FIELD)
    exam = read_dxa_zip(item.path, max_member_mb=limits.max_member_mb, max_total_mb=limits.max_total_mb,
                        max_members=limits.max_members)
    rows, columns = exam.tissue.shape
    notes = list(exam.notes)
    if qc_dir is not None:
        notes += dxa_pictures.draw_subject_picture(item.stem, qc_dir=qc_dir, scratch_dir=scratch_dir,
                                                   tissue=exam.tissue, bone=exam.bone,
                                                   pixel_spacing=exam.pixel_spacing, notes=exam.notes)
    return Output(
        arrays={"tissue": exam.tissue, "bone": exam.bone},
        attrs={
            "pixel_spacing": list(exam.pixel_spacing),
            "tissue_instance_number": exam.tissue_image.instance_number or 0,
            "bone_instance_number": exam.bone_image.instance_number or 0,
            "acquired_at": acquisition(exam),
        },
        spacing_attr="pixel_spacing",
        qc={"n_total_body": exam.n_total_body, "pixel_spacing": list(exam.pixel_spacing), "rows": rows,
            "columns": columns},
        notes=notes,
    )


def make_job(config: UnzipDxaConfig, *, inputs: list[InputFile], writer: Writer, qc: bool = False) -> StageJob:
    folders = StageFolders(output=Path(config.output_dir), stage="unzip_dxa")
    return StageJob(
        name="unzip_dxa",
        folders=folders,
        inputs=inputs,
        process=functools.partial(process_dxa_zip, limits=config.limits,
                                  qc_dir=folders.qc if qc and config.subject_pictures else None,
                                  scratch_dir=folders.scratch),
        writer=writer,
        source=search_description(Path(config.input_dir), ".zip"),
        settings={"version": output_version("unzip_dxa")},
        nested=True,
    )


def run(config: UnzipDxaConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
    eids = None if options.only_eids is None else set(options.only_eids)
    inputs = discover_inputs(Path(config.input_dir), suffix=".zip", eids=eids, made_by="download")
    job = make_job(config, inputs=inputs, writer=writer, qc=qc)
    summary = run_stage(job, options)
    if qc and summary.rows:
        _draw_contact_sheets(config, job, summary, options)
    return [summary]


def _draw_contact_sheets(config: UnzipDxaConfig, job: StageJob, summary: StageSummary, options: RunOptions) -> None:
    """This shard's contact sheets, from the cohort's state; a picture never fails the run."""
    draw_pictures(lambda: dxa_pictures.update_contact_sheets(
        folders=job.folders, shard_index=options.shard_index, shard_count=options.shard_count,
        processed={Path(row.input).name.split(".", 1)[0] for row in summary.rows if row.status != SKIPPED},
        sheet_size=config.sheet_size), stage="unzip_dxa", what="contact sheet(s)", folder=job.folders.qc)
