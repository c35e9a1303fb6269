"""Stage ``unzip_mri``: each Dixon zip to one stitched volume per channel, in physical coordinates.

One pass over the zip (``mri.read``), stations grouped with their quirks handled (``mri.stations``), then trimmed,
checked for fat/water swaps, harmonised and feathered onto the union grid (``mri.assemble``). Arrays are
(x: right->left, y: anterior->posterior, z: head->feet); ``spacing`` and ``origin`` place every voxel in LPS mm.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path

from ukbb_pipeline.config import UnzipMriConfig, ZipLimits
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.mri.assemble import stitch_stations
from ukbb_pipeline.mri.parameters import StitchParameters
from ukbb_pipeline.mri.read import read_dixon_zip
from ukbb_pipeline.mri.stations import group_stations
from ukbb_pipeline.mri.summary import qc_figures, slice_notes, swap_notes, volume_attributes
from ukbb_pipeline.registry import output_version
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile, discover_inputs, require_ukbb_name, search_description
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary
from ukbb_pipeline.stages.file_stage import StageJob, run_stage
from ukbb_pipeline.ukbb import DIXON_OUTPUT_NAMES, MRI_FIELD

OUTPUT_NAMES = DIXON_OUTPUT_NAMES
DEFAULT_LIMITS = ZipLimits()
DEFAULT_STITCH = StitchParameters()


def process_mri_zip(
    item: InputFile,
    *,
    channels: Sequence[str] = ("F", "W"),
    allow_missing_stations: bool = False,
    stitch: StitchParameters = DEFAULT_STITCH,
    limits: ZipLimits = DEFAULT_LIMITS,
) -> Output:
    """Read a Dixon zip in one pass and stitch its stations: one dataset per channel, with geometry and QC."""
    require_ukbb_name(item, field=MRI_FIELD)
    scan = read_dixon_zip(
        item.path,
        channels={*channels, "F", "W"},  # fat and water are read for the swap check whatever is written
        max_member_mb=limits.max_member_mb,
        max_total_mb=limits.max_total_mb,
        max_members=limits.max_members,
    )
    found = group_stations(scan.series, required=channels, allow_missing=allow_missing_stations)
    del scan.series  # the stations hold what is used
    stitched = stitch_stations(found.stations, channels=channels, params=stitch)
    arrays = {OUTPUT_NAMES[channel]: stitched.volumes.pop(channel) for channel in channels}
    notes = [*scan.notes, *found.notes, *slice_notes(found.stations), *stitched.notes, *swap_notes(stitched)]
    return Output(
        arrays=arrays,
        attrs=volume_attributes(stitched, channels=channels),
        spacing_attr="spacing",
        qc=qc_figures(stitched, stations=found.stations, shape=next(iter(arrays.values())).shape),
        notes=notes,
    )


def channels_of(config: UnzipMriConfig) -> list[str]:
    """The channels to write, as the names UK Biobank gives them (F, W, in, opp); checked by the config."""
    return [str(getattr(channel, "value", channel)) for channel in config.channels]


def stitch_parameters(config: UnzipMriConfig) -> StitchParameters:
    """The stitching options of ``unzip_mri``'s config (enums as their values)."""
    return StitchParameters(**{item.name: getattr(getattr(config, item.name), "value", getattr(config, item.name))
                               for item in dataclasses.fields(StitchParameters)})


def make_job(config: UnzipMriConfig, *, inputs: list[InputFile], writer: Writer) -> StageJob:
    channels = channels_of(config)
    stitch = stitch_parameters(config)
    return StageJob(
        name="unzip_mri",
        folders=StageFolders(output=Path(config.output_dir), stage="unzip_mri"),
        inputs=inputs,
        process=functools.partial(process_mri_zip, channels=tuple(channels), stitch=stitch, limits=config.limits,
                                  allow_missing_stations=config.allow_missing_stations),
        writer=writer,
        source=search_description(Path(config.input_dir), ".zip"),
        settings={"version": output_version("unzip_mri"), "channels": channels,
                  "allow_missing_stations": config.allow_missing_stations, **dataclasses.asdict(stitch)},
    )


def run(config: UnzipMriConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
    inputs = discover_inputs(Path(config.input_dir), suffix=".zip", eids=options.only_eids,
                             made_by="download")
    return [run_stage(make_job(config, inputs=inputs, writer=writer), options)]
