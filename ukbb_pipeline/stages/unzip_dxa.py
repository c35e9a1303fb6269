"""Stage ``unzip_dxa``: each DXA zip to its Total Body tissue and bone images with their pixel spacing."""

from __future__ import annotations

import functools
from pathlib import Path

from ukbb_pipeline.config import UnzipDxaConfig, ZipLimits
from ukbb_pipeline.dxa.read import acquisition, read_dxa_zip
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile, discover_inputs, require_ukbb_name, search_description
from ukbb_pipeline.runtime.runner import RunOptions, StageJob, StageSummary, run_stage
from ukbb_pipeline.ukbb import DXA_FIELD

# Bump when a code change alters the outputs, so that re-runs redo them.
VERSION = 2


def process_dxa_zip(item: InputFile, *, limits: ZipLimits) -> Output:
    """Read a DXA zip in one pass and return ``tissue``, ``bone`` (uint8 as stored) and ``pixel_spacing``."""
    require_ukbb_name(item, field=DXA_FIELD)
    exam = read_dxa_zip(item.path, max_member_mb=limits.max_member_mb, max_total_mb=limits.max_total_mb,
                        max_members=limits.max_members)
    rows, columns = exam.tissue.shape
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
        notes=exam.notes,
    )


def make_job(config: UnzipDxaConfig, *, inputs: list[InputFile], writer: Writer) -> StageJob:
    return StageJob(
        name="unzip_dxa",
        folders=StageFolders(output=Path(config.output_dir), stage="unzip_dxa"),
        inputs=inputs,
        process=functools.partial(process_dxa_zip, limits=config.limits),
        writer=writer,
        source=search_description(Path(config.input_dir), ".zip"),
        settings={"version": VERSION},
        nested=True,
    )



def run(config: UnzipDxaConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
    eids = None if options.only_eids is None else set(options.only_eids)
    inputs = discover_inputs(Path(config.input_dir), suffix=".zip", eids=eids)
    return [run_stage(make_job(config, inputs=inputs, writer=writer), options)]
