"""Stage ``extract_slices``: each stitched MRI volume to its mid-coronal slab, with QC pictures.

Per volume: find the centre row from the body's coronal fat profile (``slices.estimate_centre``, reading a fraction
of the rows), keep the centre plus ``n_neighbours`` rows each side every ``spacing``-th row in every channel, and
draw the subject's QC figure. With ``stage.method=spine`` the centre is the spine's (``slices.spine``): per z, the
tracked vertebral bodies' row, the slab following it (curved) or flat at its median row; the spine's 3-D centreline
is written with the slab, and a QC picture shows it on sagittal and coronal views. Where the spine is not tracked the
slab is the weighted median's, with a note (docs/methods/slab.md).
Per run (or shard): contact sheets of the slabs' centre slices, with the subjects
unzip_mri flagged (swapped stations, high seam mismatch) and those whose window had to move framed in red.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ukbb_pipeline.config import ExtractSlicesConfig, SlabMethod, SlabShape
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.formats.hdf5 import Hdf5Writer
from ukbb_pipeline.formats.outputs import find_outputs, open_volume
from ukbb_pipeline.formats.volumes import REQUIRED_CHANNEL
from ukbb_pipeline.pairs.flags import flag_attrs, flags_from_attrs
from ukbb_pipeline.qc import sheets, spine_pictures
from ukbb_pipeline.registry import output_version
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile
from ukbb_pipeline.runtime.manifest import SKIPPED
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary, draw_pictures
from ukbb_pipeline.slices.curved import curved_rows
from ukbb_pipeline.slices.midcoronal import (
    auto_in_plane_step,
    auto_profile_stride,
    estimate_centre,
    slab_window,
)
from ukbb_pipeline.slices.spine import SpineTrack, track_spine
from ukbb_pipeline.stages.file_stage import StageJob, run_stage

log = logging.getLogger(__name__)

METHOD = "weighted median row of body fat (noise and table removed)"
SPINE_METHODS = {
    SlabShape.curved: "spine tracker (classical): curved slab along the vertebral bodies' row per z",
    SlabShape.flat: "spine tracker (classical): flat slab at the vertebral bodies' median row",
}
SPINE_FALLBACK = "weighted median row of body fat (spine not tracked: fallback)"
STAGE = "extract_slices"


@dataclass(frozen=True)
class SlabSettings:
    """The parameters of one extraction, from the stage config."""

    n_neighbours: int
    spacing: int
    profile_stride: int | None  # None: chosen from the row spacing (auto_profile_stride)
    method: SlabMethod = SlabMethod.median
    slab: SlabShape = SlabShape.curved


def process_volume(
    item: InputFile,
    *,
    settings: SlabSettings,
    qc_dir: Path | None = None,
    scratch_dir: Path | None = None,
    hdf5_locking: bool | None = None,
) -> Output:
    """Extract the slab of one volume; with ``qc_dir``, also draw its QC picture there."""
    notes: list[str] = []
    track: SpineTrack | None = None
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
        fat = water = None
        if settings.method == SlabMethod.spine:
            if "water_scan" in info.channels:
                everything = np.arange(n_rows)
                fat, water = volume.rows(REQUIRED_CHANNEL, everything), volume.rows("water_scan", everything)
                track = track_spine(fat, water, spacing=(sx, sy, sz))
                notes.extend(track.notes)
                if track.failed:
                    notes.append("the slab is the weighted median row's (flat): the spine was not tracked")
                    track_used = None
                else:
                    track_used = track
            else:
                notes.append("spine not tracked: the volume has no water image; the slab is the weighted median "
                             "row's (flat)")
                track_used = None
        else:
            track_used = None
        centre = estimate.centre
        if track_used is not None:
            centre = track_used.median_row
        window = slab_window(centre, n_rows=n_rows, n_neighbours=settings.n_neighbours, spacing=settings.spacing)
        curved = track_used is not None and settings.slab == SlabShape.curved
        if curved and track_used is not None:
            centres, rows, shifts = curved_rows(np.rint(track_used.rows).astype(np.int64), n_rows=n_rows,
                                                n_neighbours=settings.n_neighbours, spacing=settings.spacing)
            needed = np.unique(rows)
            arrays = {channel: _gather(volume.rows(channel, needed), needed, rows) for channel in info.channels}
            window_shift = int(shifts[np.argmax(np.abs(shifts))]) if shifts.size else 0
        else:
            arrays = {channel: volume.rows(channel, window.rows) for channel in info.channels}
            centres = np.full(info.shape[2], window.rows[settings.n_neighbours], dtype=np.int64)
            window_shift = window.shift

    if info.origin is None:
        origin = [math.nan] * 3
        centre_y = math.nan
        notes.append("the input has no origin: origin attribute NaN")
    else:
        origin = [info.origin[0], info.origin[1] + float(window.rows[0]) * sy, info.origin[2]]
        centre_y = info.origin[1] + window.centre * sy
    if window_shift:
        notes.append(f"centre row {window.centre} near the volume's edge: window moved {window_shift:+d} rows"
                     + (" at some z" if curved else ""))
    method = METHOD
    if settings.method == SlabMethod.spine:
        method = SPINE_FALLBACK if track_used is None else SPINE_METHODS[settings.slab]
    attrs: dict[str, object] = {
        "spacing": [sx, sy * settings.spacing, sz],
        "origin": origin,
        "centre_index": window.centre,
        "window_shift": window_shift,
        "method": method,
        "source_rows": [int(row) for row in window.rows],
        "centre_rows": centres.astype(np.int64),
        "input_shape": list(info.shape),
        **flag_attrs(flags_from_attrs(info.attrs)),
    }
    qc: dict[str, object] = {}
    if track is not None and not track.failed:
        attrs.update(spine_attrs(track, origin=info.origin, spacing=info.spacing))
        qc.update(spine_qc(track))
    if qc_dir is not None:
        if track is not None and not track.failed and fat is not None:
            notes.extend(spine_pictures.draw_spine_picture(
                item, qc_dir=qc_dir, scratch_dir=scratch_dir, fat=fat, track=track, centre_rows=centres,
                n_neighbours=settings.n_neighbours, spacing=settings.spacing, voxel=info.spacing))
        else:
            notes.extend(sheets.draw_subject_picture(item, qc_dir=qc_dir, scratch_dir=scratch_dir,
                                                     estimate=estimate, window=window, arrays=arrays,
                                                     info=info))
    return Output(
        arrays=arrays,
        attrs=attrs,
        spacing_attr="spacing",
        qc={
            "centre_index": window.centre,
            "window_shift": window_shift,
            "centre_y_mm": centre_y,
            "input_rows": n_rows,
            "noise_sigma": estimate.levels.noise_sigma,
            "body_threshold": estimate.levels.threshold,
            "channels": list(info.channels),
            **qc,
        },
        notes=notes,
    )


def _gather(block: np.ndarray, rows_read: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The curved slab ``(x, k, z)`` from a block of ``rows_read`` ``(x, len(rows_read), z)``: at each z, the rows
    ``rows[:, z]`` (each one of ``rows_read``)."""
    index = np.searchsorted(rows_read, rows)  # (k, z)
    z = np.arange(rows.shape[1])[None, :]
    return np.ascontiguousarray(block[:, index, z])


def spine_attrs(track: SpineTrack, *, origin: tuple[float, float, float] | None,
                spacing: tuple[float, float, float]) -> dict[str, object]:
    """The spine's centreline as slab attributes: per z of the input, its row and column (float indices of axes 1
    and 0), whether it was tracked there, and (with an origin) its LPS position in mm (docs/methods/slab.md)."""
    attrs: dict[str, object] = {
        "spine_rows": track.rows.astype(np.float32),
        "spine_columns": track.columns.astype(np.float32),
        "spine_tracked": track.tracked.astype(np.uint8),
    }
    if origin is not None:
        z = np.arange(track.rows.size)
        attrs["spine_centreline_lps_mm"] = np.stack([
            origin[0] + track.columns * spacing[0], origin[1] + track.rows * spacing[1], origin[2] - z * spacing[2],
        ], axis=1).astype(np.float32)
    return attrs


def spine_qc(track: SpineTrack) -> dict[str, object]:
    """The manifest's figures about a tracked spine."""
    rows = track.rows[track.tracked]
    return {
        "spine_tracked_share": float(track.tracked.mean()),
        "spine_row_range": float(rows.max() - rows.min()) if rows.size else math.nan,
        "spine_median_score": float(np.median(track.score[track.tracked])) if rows.size else math.nan,
    }


def settings_from(config: ExtractSlicesConfig) -> SlabSettings:
    """The slab settings of a checked config (ranges are checked in :func:`ukbb_pipeline.config.validate`)."""
    return SlabSettings(n_neighbours=config.n_neighbours, spacing=config.spacing, profile_stride=config.profile_stride,
                        method=SlabMethod(config.method), slab=SlabShape(config.slab))


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
            "version": output_version("extract_slices"),
            "n_neighbours": settings.n_neighbours,
            "spacing": settings.spacing,
            "profile_stride": settings.profile_stride,
            "method": settings.method.value,
            "slab": settings.slab.value,
        },
    )


def run(config: ExtractSlicesConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
    inputs = discover_volumes(Path(config.input_dir), eids=options.only_eids)
    job = make_job(config, inputs=inputs, writer=writer, qc=qc)
    summary = run_stage(job, options)
    if qc and summary.rows:
        draw_pictures(lambda: sheets.update_contact_sheets(
            folders=job.folders,
            mri_dir=Path(config.input_dir),
            shard_index=options.shard_index,
            shard_count=options.shard_count,
            processed={Path(row.input).name.split(".", 1)[0] for row in summary.rows if row.status != SKIPPED},
            sheet_size=config.sheet_size,
            seam_mismatch_limit=options.seam_mismatch_limit,
        ), stage=STAGE, what="contact sheet(s)", folder=job.folders.qc)
    return [summary]
