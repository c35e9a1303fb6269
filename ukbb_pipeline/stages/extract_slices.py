"""Stage ``extract_slices``: each stitched MRI volume to its mid-coronal slab, with QC pictures.

Per volume: find the centre row from the body's coronal fat profile (``slices.estimate_centre``, reading a fraction
of the rows), keep the centre plus ``n_neighbours`` rows each side every ``spacing``-th row in every channel, and
draw the subject's QC figure. Per run (or shard): contact sheets of the slabs' centre slices, with the subjects
unzip_mri flagged (swapped stations, high seam mismatch) and those whose window had to move framed in red.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from ukbb_pipeline.config import ExtractSlicesConfig
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.formats.hdf5 import Hdf5Writer
from ukbb_pipeline.formats.outputs import find_outputs, open_volume
from ukbb_pipeline.formats.volumes import REQUIRED_CHANNEL
from ukbb_pipeline.pairs.flags import flag_attrs, flags_from_attrs
from ukbb_pipeline.qc import sheets
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile
from ukbb_pipeline.runtime.manifest import SKIPPED
from ukbb_pipeline.runtime.runner import RunOptions, StageJob, StageSummary, run_stage
from ukbb_pipeline.slices.midcoronal import (
    auto_in_plane_step,
    auto_profile_stride,
    estimate_centre,
    slab_window,
)

log = logging.getLogger(__name__)

# Bump when a code change alters the outputs, so that re-runs redo them.
VERSION = 2  # 2: slabs carry unzip_mri's flags (swapped_stations, fat_water_fixed, max_seam_mismatch) for collect
METHOD = "weighted median row of body fat (noise and table removed)"
STAGE = "extract_slices"


@dataclass(frozen=True)
class SlabSettings:
    """The parameters of one extraction, from the stage config."""

    n_neighbours: int
    spacing: int
    profile_stride: int | None  # None: chosen from the row spacing (auto_profile_stride)


def process_volume(
    item: InputFile,
    *,
    settings: SlabSettings,
    qc_dir: Path | None = None,
    scratch_dir: Path | None = None,
    hdf5_locking: bool | None = None,
) -> Output:
    """Extract the mid-coronal slab of one volume; with ``qc_dir``, also draw its QC picture there."""
    with open_volume(item.path, locking=hdf5_locking) as volume:
        info = volume.info
        n_rows = info.shape[1]
        sx, sy, sz = info.spacing
        estimate = estimate_centre(
            lambda rows: volume.rows(REQUIRED_CHANNEL, rows),
            n_rows=n_rows,
            stride=settings.profile_stride or auto_profile_stride(sy),
            in_plane_step=auto_in_plane_step(sx, sz),
        )
        window = slab_window(
            estimate.centre, n_rows=n_rows, n_neighbours=settings.n_neighbours, spacing=settings.spacing
        )
        arrays = {channel: volume.rows(channel, window.rows) for channel in info.channels}

    notes = []
    if info.origin is None:
        origin = [math.nan] * 3
        centre_y = math.nan
        notes.append("the input has no origin: origin attribute NaN")
    else:
        origin = [info.origin[0], info.origin[1] + float(window.rows[0]) * sy, info.origin[2]]
        centre_y = info.origin[1] + window.centre * sy
    if window.shift:
        notes.append(f"centre row {window.centre} near the volume's edge: window moved {window.shift:+d} rows")
    if qc_dir is not None:
        notes.extend(sheets.draw_subject_picture(item, qc_dir=qc_dir, scratch_dir=scratch_dir, estimate=estimate,
                                                 window=window, arrays=arrays, info=info))
    return Output(
        arrays=arrays,
        attrs={
            "spacing": [sx, sy * settings.spacing, sz],
            "origin": origin,
            "centre_index": window.centre,
            "window_shift": window.shift,
            "method": METHOD,
            "source_rows": [int(row) for row in window.rows],
            "input_shape": list(info.shape),
            **flag_attrs(flags_from_attrs(info.attrs)),
        },
        spacing_attr="spacing",
        qc={
            "centre_index": window.centre,
            "window_shift": window.shift,
            "centre_y_mm": centre_y,
            "input_rows": n_rows,
            "noise_sigma": estimate.levels.noise_sigma,
            "body_threshold": estimate.levels.threshold,
            "channels": list(info.channels),
        },
        notes=notes,
    )


def settings_from(config: ExtractSlicesConfig) -> SlabSettings:
    if config.n_neighbours < 0:
        raise ValueError(f"stage.n_neighbours must be >= 0, got {config.n_neighbours}")
    if config.spacing < 1:
        raise ValueError(f"stage.spacing must be >= 1 (a step in rows), got {config.spacing}")
    if config.profile_stride is not None and config.profile_stride < 1:
        raise ValueError(f"stage.profile_stride must be >= 1 or null, got {config.profile_stride}")
    return SlabSettings(n_neighbours=config.n_neighbours, spacing=config.spacing, profile_stride=config.profile_stride)


def discover_volumes(input_dir: Path, *, eids: frozenset[int] | set[int] | None = None) -> list[InputFile]:
    """The volumes in ``input_dir``, in whichever format unzip_mri wrote them (HDF5 first where a stem has several)."""
    found = find_outputs(input_dir, made_by="unzip_mri")
    return found if eids is None else [item for item in found if item.eid in eids]


def make_job(config: ExtractSlicesConfig, *, inputs: list[InputFile], writer: Writer, qc: bool = True) -> StageJob:
    folders = StageFolders(output=Path(config.output_dir), stage=STAGE)
    settings = settings_from(config)
    return StageJob(
        name=STAGE,
        folders=folders,
        inputs=inputs,
        process=functools.partial(
            process_volume,
            settings=settings,
            qc_dir=folders.qc if qc and config.subject_pictures else None,
            scratch_dir=folders.scratch,
            hdf5_locking=writer.file_locking if isinstance(writer, Hdf5Writer) else None,
        ),
        writer=writer,
        source=f"unzip_mri outputs (.h5, .pkl, NIfTI folders) in {config.input_dir}",
        settings={
            "version": VERSION,
            "n_neighbours": settings.n_neighbours,
            "spacing": settings.spacing,
            "profile_stride": settings.profile_stride,
        },
    )


def run(config: ExtractSlicesConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
    inputs = discover_volumes(Path(config.input_dir), eids=options.only_eids)
    job = make_job(config, inputs=inputs, writer=writer, qc=qc)
    summary = run_stage(job, options)
    if qc and summary.rows:
        try:
            drawn = sheets.update_contact_sheets(
                folders=job.folders,
                mri_dir=Path(config.input_dir),
                shard_index=options.shard_index,
                shard_count=options.shard_count,
                processed={Path(row.input).name.split(".", 1)[0] for row in summary.rows if row.status != SKIPPED},
                sheet_size=config.sheet_size,
                seam_mismatch_limit=config.seam_mismatch_limit,
            )
        except Exception:  # the outputs and manifest are written; a picture must not fail the run
            log.exception("%s: contact sheets failed", STAGE)
        else:
            if drawn:
                log.info("%s: %d contact sheet(s) drawn in %s", STAGE, len(drawn), drawn[0].parent)
    return [summary]
