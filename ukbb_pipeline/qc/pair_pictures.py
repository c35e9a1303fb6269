"""collect's QC pictures: the pairs a collection shard holds, MRI slab row beside DXA, at the collected geometry.

One or more contact sheets per shard file, ``<output>/pipeline-collect/qc/sheets/shard<i>of<n>/
contact-sheet-shard<i>of<n>-<page>.png`` (``sheet_size`` pairs each, in the file's (eid, instance) order). Each tile
is one pair as the loader sees it: the MRI row (fat magenta, water green) on the left, the DXA (tissue magenta,
bone green) on the right, both at the collected pixel spacing. Pairs kept with upstream flags
(``stage.keep_flagged=true``) are framed red. Left-out pairs are not in the file, so not shown: the sheet's title
counts them and the manifest names them. The PNG ``Description`` lists the visits shown (``<eid> visit <instance>``),
so a withdrawal finds every sheet that shows one; the ``Comment`` holds the shard file's content fingerprint, so an
unchanged shard is not drawn again.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import h5py
import numpy as np

from ukbb_pipeline.formats.collection import read_flags
from ukbb_pipeline.qc import pictures, sheets
from ukbb_pipeline.runtime.folders import StageFolders

log = logging.getLogger(__name__)

SHEET_SIZE = 60  # pairs per sheet
TILE_GAP_PX = 4  # between the MRI and the DXA within a tile
CAPTION = ("each pair at the collected geometry: MRI slab row (fat magenta, water green) | DXA (tissue magenta, "
           "bone green); head up")
_SHARD = re.compile(r"^collection-shard(\d+)of(\d+)\.h5$")


def _channel(names: list[str], word: str, fallback: int) -> int:
    return next((index for index, name in enumerate(names) if word in name), min(fallback, len(names) - 1))


def _resample(image: np.ndarray, spacing: tuple[float, float], target: tuple[float, float]) -> np.ndarray:
    """Nearest-pixel resampling of a (rows, columns) image from ``spacing`` to ``target`` mm (no-op when equal)."""
    if np.allclose(spacing, target):
        return image
    rows = max(1, round(image.shape[0] * spacing[0] / target[0]))
    columns = max(1, round(image.shape[1] * spacing[1] / target[1]))
    at_rows = np.minimum((np.arange(rows) + 0.5) * image.shape[0] / rows, image.shape[0] - 1).astype(np.intp)
    at_columns = np.minimum((np.arange(columns) + 0.5) * image.shape[1] / columns, image.shape[1] - 1).astype(np.intp)
    return image[at_rows][:, at_columns]


def side_by_side(left: list[np.ndarray], right: list[np.ndarray]) -> list[np.ndarray]:
    """Two display-oriented images per channel, each scaled to [0, 1] alone, on one canvas with a black gap."""
    height = max(left[0].shape[0], right[0].shape[0])
    width = left[0].shape[1] + TILE_GAP_PX + right[0].shape[1]
    joined = []
    for a, b in zip(left, right, strict=True):
        canvas = np.zeros((height, width), np.float32)
        canvas[: a.shape[0], : a.shape[1]] = pictures.scaled(a)
        canvas[: b.shape[0], a.shape[1] + TILE_GAP_PX :] = pictures.scaled(b)
        joined.append(canvas)
    return joined


def pair_tile(handle: h5py.File, row: int) -> pictures.SheetTile:
    """One pair of an open collection shard as a contact-sheet tile."""
    mri_names = [str(name) for name in handle["mri"].attrs.get("channels", [])] or ["fat", "water"]
    dxa_names = [str(name) for name in handle["dxa"].attrs.get("channels", [])] or ["tissue", "bone"]
    mri, dxa = handle["mri"][row], handle["dxa"][row]
    mri_row, mri_column = (float(value) for value in handle["mri_pixel_spacing"][row])
    dxa_row, dxa_column = (float(value) for value in handle["dxa_pixel_spacing"][row])
    mri_spacing, dxa_spacing = (mri_row, mri_column), (dxa_row, dxa_column)
    fat, water = (mri[_channel(mri_names, word, index)] for index, word in enumerate(("fat", "water")))
    tissue, bone = (_resample(dxa[_channel(dxa_names, word, index)], dxa_spacing, mri_spacing)
                    for index, word in enumerate(("tissue", "bone")))
    magenta, green = side_by_side([fat, water], [tissue, bone])  # fat | tissue, water | bone
    flags = read_flags(handle, row)["flags"]
    label = f"{int(handle['eids'][row])} visit {int(handle['instances'][row])}"
    # The sheet draws (x, z) arrays transposed: hand it the display-oriented canvases transposed.
    return pictures.SheetTile(label=label, fat=magenta.T, water=green.T, spacing_xz=(mri_spacing[1], mri_spacing[0]),
                              flags=[flag for flag in flags.split("; ") if flag])


def update_pair_sheets(shard_file: Path, *, folders: StageFolders, n_left_out: int = 0,
                       sheet_size: int = SHEET_SIZE, force: bool = False) -> list[Path]:
    """Draw the sheets of ``shard_file`` (unless they show its current content); remove its stale pages."""
    match = _SHARD.match(shard_file.name)
    if match is None:
        raise ValueError(f"{shard_file.name} is not named like a collection shard (collection-shard<i>of<n>.h5)")
    index, count = int(match.group(1)), int(match.group(2))
    folder = sheets.sheet_folder(folders.qc, shard_index=index, shard_count=count)
    existing = sorted(folder.glob("contact-sheet-*.png"))
    if not shard_file.is_file():
        for path in existing:
            path.unlink()
        return []
    drawn: list[Path] = []
    with h5py.File(shard_file, "r") as handle:
        content = str(handle.attrs.get("content_fingerprint", ""))
        comment = f"collection {content}"
        if not force and existing and all(sheets._png_text(path).get("Comment") == comment for path in existing):
            return []
        n = int(handle["eids"].shape[0])
        n_pages = math.ceil(n / max(1, sheet_size))
        for page in range(1, n_pages + 1):
            rows = range((page - 1) * sheet_size, min(n, page * sheet_size))
            tiles = [pair_tile(handle, row) for row in rows]
            n_flagged = sum(bool(tile.flags) for tile in tiles)
            left_out = f", {n_left_out} left out for their flags (not shown; see the manifest)" if n_left_out else ""
            heading = (f"collect {shard_file.name}, sheet {page} of {n_pages}: {len(tiles)} pairs, {n_flagged} "
                       f"kept with flags (red){left_out}\n{CAPTION}")
            path = folder / sheets._sheet_name(index, count, page)
            drawn.append(pictures.contact_sheet(path, tiles, title=heading, scratch_dir=folders.scratch,
                                                png_text={"Comment": comment}, columns=6, tile_size=(220, 260)))
    for path in existing:
        if sheets._page_of(path) > n_pages:
            path.unlink()
    return drawn
