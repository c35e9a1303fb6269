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
from typing import Any

import h5py
import numpy as np

from ukbb_pipeline.config import ExtractSlicesConfig
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.formats.hdf5 import Hdf5Writer
from ukbb_pipeline.formats.outputs import find_outputs, open_volume
from ukbb_pipeline.formats.pickle import safe_load
from ukbb_pipeline.formats.sidecar import read_sidecar
from ukbb_pipeline.formats.volumes import REQUIRED_CHANNEL, VolumeInfo
from ukbb_pipeline.pairs.flags import flag_attrs, flags_from_attrs
from ukbb_pipeline.qc import pictures
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile
from ukbb_pipeline.runtime.manifest import OK, SKIPPED, ManifestRow, read_manifests
from ukbb_pipeline.runtime.runner import RunOptions, StageJob, StageSummary, run_stage
from ukbb_pipeline.slices.midcoronal import (
    CentreEstimate,
    SlabWindow,
    auto_in_plane_step,
    auto_profile_stride,
    estimate_centre,
    slab_window,
)

MRI_STAGE = "unzip_mri"  # whose manifests flag subjects (swapped stations, seam mismatch) on the sheets

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
    """Extract the mid-coronal slab of one volume; with ``qc_dir``, also draw its QC figure there."""
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
        notes.extend(_subject_figure(item, qc_dir=qc_dir, scratch_dir=scratch_dir, estimate=estimate, window=window,
                                     arrays=arrays, info=info))
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


def _subject_figure(
    item: InputFile,
    *,
    qc_dir: Path,
    scratch_dir: Path | None,
    estimate: CentreEstimate,
    window: SlabWindow,
    arrays: dict[str, np.ndarray],
    info: VolumeInfo,
) -> list[str]:
    """Draw the subject's QC figure; a picture that fails is a note, never a failed extraction."""
    rows = window.rows
    step = int(rows[1] - rows[0]) if rows.size > 1 else 1
    try:
        pictures.subject_figure(
            qc_dir / f"{item.stem}.png",
            title=f"{item.stem}: centre row {window.centre} of {info.shape[1]}, slab rows {rows[0]}..{rows[-1]} "
            f"every {step}",
            profile_rows=estimate.rows,
            profile=estimate.profile,
            n_rows=info.shape[1],
            centre=window.centre,
            window_rows=rows,
            window_shift=window.shift,
            fat=arrays[REQUIRED_CHANNEL],
            water=arrays.get("water_scan"),
            spacing=info.spacing,
            scratch_dir=scratch_dir or qc_dir / "tmp",
        )
    except Exception as error:  # matplotlib can fail in many ways; the slab itself is still good
        log.warning("%s: QC figure failed: %s", item.stem, error)
        return [f"QC figure failed: {type(error).__name__}: {error}"]
    return []


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
    found = find_outputs(input_dir)
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
            qc_dir=folders.qc / "subjects" if qc else None,
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
            sheets = write_contact_sheets(
                summary.rows,
                folders=job.folders,
                mri_dir=Path(config.input_dir),
                name=f"shard{options.shard_index}of{options.shard_count}",
                sheet_size=config.sheet_size,
                seam_mismatch_limit=config.seam_mismatch_limit,
            )
        except Exception:  # the outputs and manifest are written; a picture must not fail the run
            log.exception("%s: contact sheets failed", STAGE)
        else:
            if sheets:
                log.info("%s: %d contact sheet(s) in %s", STAGE, len(sheets), sheets[0].parent)
    return [summary]


# ----------------------------------------------------------------------------------------------------------------
# Contact sheets


def write_contact_sheets(
    rows: list[ManifestRow],
    *,
    folders: StageFolders,
    mri_dir: Path,
    name: str,
    sheet_size: int,
    seam_mismatch_limit: float | None,
) -> list[Path]:
    """Contact sheets of the subjects in ``rows`` (ok, skipped and failed), ``sheet_size`` per sheet.

    Written as ``<qc>/contact-sheet-<name>-<page>.png``; pages left from an earlier, larger run of the same
    shard are removed.
    """
    upstream = {_stem(record["input"]): record for record in _safe_read_manifests(mri_dir / _meta_name(MRI_STAGE))}
    ordered = sorted(rows, key=lambda row: Path(row.input).name)
    tiles = [_tile(row, upstream.get(_stem(row.input)), seam_mismatch_limit=seam_mismatch_limit) for row in ordered]
    folders.qc.mkdir(parents=True, exist_ok=True)
    sheet_size = max(1, sheet_size)
    pages = math.ceil(len(tiles) / sheet_size)
    paths = []
    for page in range(pages):
        chunk = tiles[page * sheet_size : (page + 1) * sheet_size]
        n_flagged = sum(bool(tile.flags or tile.failed) for tile in chunk)
        title = (
            f"extract_slices {name}, sheet {page + 1} of {pages}: {len(chunk)} subjects, {n_flagged} flagged (red)\n"
            "slab centre slice: fat magenta, water green; head up, patient's right on the left"
        )
        path = folders.qc / f"contact-sheet-{name}-{page + 1:03d}.png"
        paths.append(pictures.contact_sheet(path, chunk, title=title, scratch_dir=folders.scratch))
    for stale in folders.qc.glob(f"contact-sheet-{name}-*.png"):
        if stale not in paths:
            stale.unlink(missing_ok=True)
    return paths


def _tile(
    row: ManifestRow, upstream: dict[str, str] | None, *, seam_mismatch_limit: float | None
) -> pictures.SheetTile:
    stem = _stem(row.input)
    label = stem if row.eid is None else f"{row.eid} visit {row.instance}"
    flags = upstream_flags(upstream, seam_mismatch_limit=seam_mismatch_limit)
    if row.status not in (OK, SKIPPED) or not row.output:
        return pictures.SheetTile(label=label, flags=flags, failed=row.reason or row.status)
    try:
        centre = read_centre_slices(Path(row.output))
    except (OSError, KeyError, ValueError, InputError) as error:
        return pictures.SheetTile(label=label, flags=flags, failed=f"output unreadable: {error}")
    if centre.window_shift:
        flags.append(f"window moved {centre.window_shift:+d}")
    return pictures.SheetTile(label=label, fat=centre.fat, water=centre.water, spacing_xz=centre.spacing_xz,
                              flags=flags)


def upstream_flags(record: dict[str, str] | None, *, seam_mismatch_limit: float | None) -> list[str]:
    """What unzip_mri's manifest row says is worth a look: swapped stations, a high seam mismatch."""
    if not record:
        return []
    flags = []
    swapped = [token for token in str(record.get("swapped_stations", "")).replace(",", " ").split()
               if token.strip("[]").isdigit()]
    if swapped:
        flags.append("swapped station " + " ".join(token.strip("[]") for token in swapped))
    mismatch = _number(record.get("max_seam_mismatch"))
    if seam_mismatch_limit is not None and mismatch is not None and mismatch > seam_mismatch_limit:
        flags.append(f"seam mismatch {mismatch:.2g}")
    return flags


@dataclass(frozen=True)
class CentreSlices:
    fat: np.ndarray
    water: np.ndarray | None
    spacing_xz: tuple[float, float]
    window_shift: int


def read_centre_slices(path: Path) -> CentreSlices:
    """The slice of a written slab that the paper's loader takes (index ``shape[1] // 2``), fat and water."""
    if path.suffix == ".h5":
        with h5py.File(path, "r") as handle:
            middle = handle[REQUIRED_CHANNEL].shape[1] // 2
            fat = handle[REQUIRED_CHANNEL][:, middle, :]
            water = handle["water_scan"][:, middle, :] if "water_scan" in handle else None
            spacing = [float(value) for value in handle.attrs["spacing"]]
            shift = int(handle.attrs.get("window_shift", 0))
        return CentreSlices(fat=fat, water=water, spacing_xz=(spacing[0], spacing[2]), window_shift=shift)
    payload = safe_load(path)
    middle = payload[REQUIRED_CHANNEL].shape[1] // 2
    water = payload.get("water_scan")
    spacing = [float(value) for value in payload["pixel_spacing"]]
    folders = StageFolders(output=path.parent, stage=STAGE)
    try:
        shift = int(read_sidecar(folders, path.name.split(".", 1)[0])["attrs"].get("window_shift", 0))
    except (OSError, ValueError, KeyError):
        shift = 0
    return CentreSlices(
        fat=payload[REQUIRED_CHANNEL][:, middle, :],
        water=None if water is None else water[:, middle, :],
        spacing_xz=(spacing[0], spacing[2]),
        window_shift=shift,
    )


def _safe_read_manifests(folder: Path) -> list[dict[str, str]]:
    if not folder.is_dir():
        return []
    try:
        return read_manifests(folder)
    except (OSError, ValueError, KeyError) as error:
        log.warning("%s: could not read unzip_mri manifests in %s (%s); no upstream flags", STAGE, folder, error)
        return []


def _meta_name(stage: str) -> str:
    return StageFolders(output=Path(), stage=stage).meta.name


def _stem(path: str) -> str:
    return Path(path).name.split(".", 1)[0]


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None

