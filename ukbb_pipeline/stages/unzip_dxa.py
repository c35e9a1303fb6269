"""Stage ``unzip_dxa``: each DXA zip to its Total Body tissue and bone images with their pixel spacing."""

from __future__ import annotations

import functools
from pathlib import Path

from ukbb_pipeline.config import UnzipDxaConfig, ZipLimits
from ukbb_pipeline.dicomio import dicom
from ukbb_pipeline.dicomio.zipread import iter_members
from ukbb_pipeline.dxa import images as dxa
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile, discover_inputs, require_ukbb_name, search_description
from ukbb_pipeline.runtime.runner import RunOptions, StageJob, StageSummary, run_stage
from ukbb_pipeline.ukbb import DXA_FIELD

# Bump when a code change alters the outputs, so that re-runs redo them.
VERSION = 1


def process_dxa_zip(item: InputFile, *, limits: ZipLimits) -> Output:
    """Read a DXA zip in one pass and return ``tissue``, ``bone`` (uint8 as stored) and ``pixel_spacing``."""
    require_ukbb_name(item, field=DXA_FIELD)
    members = {}
    datasets = []
    for member in iter_members(
        item.path,
        max_member_mb=limits.max_member_mb,
        max_total_mb=limits.max_total_mb,
        max_members=limits.max_members,
    ):
        dataset = dicom.parse(member)
        dicom.check_values(dataset, (*dxa.TAGS_READ, *dicom.PIXEL_TAGS), name=member.name)
        members[id(dataset)] = member.name
        datasets.append(dataset)
    pair = dxa.select_total_body(datasets)
    tissue = dicom.pixels(pair.tissue, name=members[id(pair.tissue)])
    bone = dicom.pixels(pair.bone, name=members[id(pair.bone)])
    dxa.check_pair_shapes(tissue, bone)
    spacing = dxa.pixel_spacing(pair.tissue, shape=tissue.shape)
    notes = []
    if pair.n_total_body > 2:
        notes.append(f"{pair.n_total_body} Total Body images: used the most recent pair")
    return Output(
        arrays={"tissue": tissue, "bone": bone},
        attrs={
            "pixel_spacing": list(spacing),
            "tissue_instance_number": dxa.instance_number(pair.tissue),
            "bone_instance_number": dxa.instance_number(pair.bone),
            "acquired_at": dxa.acquired_at(pair.tissue),
        },
        spacing_attr="pixel_spacing",
        qc={"n_total_body": pair.n_total_body, "pixel_spacing": list(spacing), "rows": tissue.shape[0],
            "columns": tissue.shape[1]},
        notes=notes,
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
    inputs = discover_inputs(Path(config.input_dir), suffix=".zip", eids=options.only_eids)
    return [run_stage(make_job(config, inputs=inputs, writer=writer), options)]
