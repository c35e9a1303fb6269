"""The QC picture of a tracked spine: the centreline on a sagittal and a coronal view of the fat image.

Left, a sagittal view along the spine (at each z the column the spine is at): the spine's row in crimson where it
was tracked, orange where the curve is held flat (head, pelvis, legs), and the slab's first and last rows in pale
orange. Right, a coronal view along the spine (at each z the spine's row): the spine's column (its lateral curve).
Head at the top; pixels square in millimetres. Written as ``<stem>_spine.png`` beside the subject pictures.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ukbb_pipeline.qc import pictures
from ukbb_pipeline.qc.sheets import subject_picture_path
from ukbb_pipeline.runtime.inputs import InputFile
from ukbb_pipeline.slices.spine import SpineTrack

log = logging.getLogger(__name__)

MIN_HEIGHT = 500  # px: small volumes are enlarged to at least this height
GAP = 8  # px between the two views


def spine_picture_path(qc_dir: Path, stem: str) -> Path:
    plain = subject_picture_path(qc_dir, stem)
    return plain.with_name(f"{stem}_spine.png")


def _grey(image: np.ndarray) -> np.ndarray:
    return (pictures.scaled(image) * (pictures.GREYS - 1)).astype(np.uint8)


def spine_views(fat: np.ndarray, track: SpineTrack, *, centre_rows: np.ndarray, n_neighbours: int, spacing: int,
                voxel: tuple[float, float, float]) -> np.ndarray:
    """The picture as palette indices ``(height, width)`` (see the module text)."""
    n_x, n_y, n_z = fat.shape
    z = np.arange(n_z)
    columns = np.clip(np.rint(track.columns).astype(np.int64), 0, n_x - 1)
    rows = np.clip(np.rint(track.rows).astype(np.int64), 0, n_y - 1)
    sagittal = _grey(fat[columns, :, z])  # (z, y)
    coronal = _grey(fat[:, rows, z].T)  # (z, x)
    sx, sy, sz = voxel
    pixel = min(sx, sy, sz)
    scale = max(1.0, MIN_HEIGHT / (n_z * sz / pixel))
    out_z = np.minimum((np.arange(round(n_z * sz / pixel * scale)) * pixel / scale / sz).astype(np.int64), n_z - 1)

    def across(n: int, step: float) -> np.ndarray:
        return np.minimum((np.arange(round(n * step / pixel * scale)) * pixel / scale / step).astype(np.int64), n - 1)

    out_y, out_x = across(n_y, sy), across(n_x, sx)
    left = sagittal[np.ix_(out_z, out_y)]
    right = coronal[np.ix_(out_z, out_x)]
    tracked = track.tracked[out_z]
    line = np.where(tracked, pictures.CRIMSON, pictures.ORANGE).astype(np.uint8)
    k = np.arange(out_z.size)

    def mark(panel: np.ndarray, index: np.ndarray, positions: np.ndarray, colour: np.ndarray | int) -> None:
        where = np.searchsorted(index, positions[out_z])  # output pixel of each input row/column
        inside = (where >= 0) & (where < panel.shape[1])
        colours = np.broadcast_to(np.asarray(colour, dtype=np.uint8), inside.shape)
        panel[k[inside], where[inside]] = colours[inside]

    half = n_neighbours * spacing
    mark(left, out_y, np.clip(centre_rows - half, 0, n_y - 1), pictures.PALE_ORANGE)
    mark(left, out_y, np.clip(centre_rows + half, 0, n_y - 1), pictures.PALE_ORANGE)
    mark(left, out_y, rows, line)
    mark(right, out_x, columns, line)
    gap = np.full((out_z.size, GAP), pictures.WHITE, dtype=np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def draw_spine_picture(item: InputFile, *, qc_dir: Path, scratch_dir: Path | None, fat: np.ndarray,
                       track: SpineTrack, centre_rows: np.ndarray, n_neighbours: int, spacing: int,
                       voxel: tuple[float, float, float]) -> list[str]:
    """Draw the subject's spine picture; a picture that fails is a note, never a failed extraction."""
    try:
        picture = spine_views(fat, track, centre_rows=centre_rows, n_neighbours=n_neighbours, spacing=spacing,
                              voxel=voxel)
        tracked = int(track.tracked.sum())
        pictures.write_png(spine_picture_path(qc_dir, item.stem), picture, scratch_dir=scratch_dir or qc_dir / "tmp",
                           palette=pictures.PALETTE,
                           text={"Description": f"{item.stem}: spine centreline (sagittal | coronal), tracked over "
                                                f"{tracked} of {track.tracked.size} slices"})
    except Exception as error:  # a picture must never fail the slab, which is good
        log.warning("%s: spine QC picture failed: %s", item.stem, error)
        return [f"spine QC picture failed: {type(error).__name__}: {error}"]
    return []
