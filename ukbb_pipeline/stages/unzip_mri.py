"""Stage ``unzip_mri``: each Dixon zip to one stitched volume per channel, in physical coordinates.

One pass over the zip (``mri.read``), stations grouped with their quirks handled (``mri.stations``), then trimmed,
checked for fat/water swaps, harmonised and feathered onto the union grid (``mri.assemble``). Arrays are
(x: right->left, y: anterior->posterior, z: head->feet); ``spacing`` and ``origin`` place every voxel in LPS mm.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ukbb_pipeline.config import UnzipMriConfig, ZipLimits
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.mri.assemble import stitch_stations
from ukbb_pipeline.mri.header import CHANNELS
from ukbb_pipeline.mri.read import read_dixon_zip
from ukbb_pipeline.mri.stations import group_stations
from ukbb_pipeline.mri.summary import qc_figures, slice_notes, swap_notes, volume_attributes
from ukbb_pipeline.registry import output_version
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile, discover_inputs, require_ukbb_name, search_description
from ukbb_pipeline.runtime.runner import RunOptions, StageJob, StageSummary, run_stage
from ukbb_pipeline.ukbb import DIXON_OUTPUT_NAMES, MRI_FIELD

OUTPUT_NAMES = DIXON_OUTPUT_NAMES
DEFAULT_LIMITS = ZipLimits()


def process_mri_zip(
    item: InputFile,
    *,
    channels: Sequence[str] = ("F", "W"),
    z_spacing: float | None = None,
    fix_swaps: bool = False,
    allow_missing_stations: bool = False,
    dtype: str = "uint16",
    trim_slices: int = 2,
    max_trim_slices: int = 6,
    edge_drop: float = 0.15,
    feather_mm: float = 24.0,
    harmonise: bool = True,
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
    stitched = stitch_stations(
        found.stations,
        channels=channels,
        z_spacing=z_spacing,
        trim_slices=trim_slices,
        max_trim_slices=max_trim_slices,
        edge_drop=edge_drop,
        feather_mm=feather_mm,
        harmonise=harmonise,
        fix_swaps=fix_swaps,
        dtype=dtype,
    )
    arrays = {OUTPUT_NAMES[channel]: stitched.volumes.pop(channel) for channel in channels}
    notes = [*scan.notes, *found.notes, *slice_notes(found.stations), *stitched.notes, *swap_notes(stitched)]
    return Output(
        arrays=arrays,
        attrs=volume_attributes(stitched, channels=channels),
        spacing_attr="spacing",
        qc=qc_figures(stitched, stations=found.stations, shape=next(iter(arrays.values())).shape),
        notes=notes,
    )


def check_settings(config: UnzipMriConfig) -> list[str]:
    """The channels to write, after checking the settings that no subject can make right."""
    channels = [str(getattr(channel, "value", channel)) for channel in config.channels]
    if not channels:
        raise ValueError("stage.channels is empty; give at least one of F, W, in, opp")
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown or len(set(channels)) != len(channels):
        raise ValueError(f"stage.channels must be distinct values among {list(CHANNELS)}, got {channels}")
    if config.z_spacing is not None and not config.z_spacing > 0:
        raise ValueError(f"stage.z_spacing must be positive (mm) or null, got {config.z_spacing}")
    if config.trim_slices < 0 or config.max_trim_slices < 0:
        raise ValueError("stage.trim_slices and stage.max_trim_slices must be >= 0")
    if not 0 < config.edge_drop < 1:
        raise ValueError(f"stage.edge_drop must be between 0 and 1, got {config.edge_drop}")
    if config.feather_mm < 0:
        raise ValueError(f"stage.feather_mm must be >= 0, got {config.feather_mm}")
    return channels


def make_job(config: UnzipMriConfig, *, inputs: list[InputFile], writer: Writer) -> StageJob:
    channels = check_settings(config)
    parameters: dict[str, Any] = {
        "channels": tuple(channels),
        "z_spacing": config.z_spacing,
        "fix_swaps": config.fix_swaps,
        "allow_missing_stations": config.allow_missing_stations,
        "dtype": getattr(config.dtype, "value", config.dtype),
        "trim_slices": config.trim_slices,
        "max_trim_slices": config.max_trim_slices,
        "edge_drop": config.edge_drop,
        "feather_mm": config.feather_mm,
        "harmonise": config.harmonise,
    }
    return StageJob(
        name="unzip_mri",
        folders=StageFolders(output=Path(config.output_dir), stage="unzip_mri"),
        inputs=inputs,
        process=functools.partial(process_mri_zip, limits=config.limits, **parameters),
        writer=writer,
        source=search_description(Path(config.input_dir), ".zip"),
        settings={"version": output_version("unzip_mri"), **parameters, "channels": channels},
    )


def run(config: UnzipMriConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
    check_settings(config)  # before the input folder is listed
    inputs = discover_inputs(Path(config.input_dir), suffix=".zip", eids=options.only_eids,
                             made_by="download")
    return [run_stage(make_job(config, inputs=inputs, writer=writer), options)]
