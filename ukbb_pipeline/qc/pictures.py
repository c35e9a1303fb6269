"""QC pictures for the mid-coronal slabs (PNG, matplotlib's Agg backend, no display needed).

Two kinds: a per-subject figure (the coronal fat profile with the centre and the window marked, and every slice of
the slab in fat and water one above the other) and contact sheets of about a hundred subjects' centre slices, in
which a wrong centre, a missing body part or a fat/water swap shows at a glance. Slices are drawn as a radiologist
views a coronal image: head at the top, the patient's right on the viewer's left (array axis x runs right to left),
with the true millimetre aspect. In the contact sheets fat is magenta and water green, so a station whose channels
are swapped shows green where the fat layer should be.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from scipy import ndimage

from ukbb_pipeline.runtime.atomic import atomic_file

FLAG_COLOUR = (230, 40, 40)
FAILED_GREY = 60
LABEL_HEIGHT = 36  # px above each contact-sheet tile for its label (a name and up to two lines of flags)
TITLE_LINE = 15  # px per line of a contact sheet's title
TILE_GAP = 6  # px between tiles


@dataclass
class SheetTile:
    """One subject on a contact sheet: its centre slices (``(x, z)`` arrays), spacing, and what to flag.

    ``fat`` is None for a subject whose extraction failed; ``failed`` then says why.
    """

    label: str
    fat: np.ndarray | None = None
    water: np.ndarray | None = None
    spacing_xz: tuple[float, float] = (1.0, 1.0)
    flags: list[str] = field(default_factory=list)
    failed: str = ""


def display_range(image: np.ndarray, *, percentile: float = 99.5) -> tuple[float, float]:
    """Intensity window for display: 0 to a high percentile of the non-zero voxels (hot spots saturate)."""
    sample = np.asarray(image[::2, ::2], dtype=np.float32)
    sample = sample[sample > 0]
    high = float(np.percentile(sample, percentile)) if sample.size else 1.0
    return 0.0, high if high > 0 else 1.0


def scaled(image: np.ndarray) -> np.ndarray:
    """``image`` as float32 in [0, 1] with :func:`display_range`."""
    low, high = display_range(image)
    return np.clip((np.asarray(image, dtype=np.float32) - low) / (high - low), 0.0, 1.0)


def coronal_view(slice_xz: np.ndarray) -> np.ndarray:
    """A ``(x, z)`` coronal slice as displayed: rows are z (head at the top), columns are x (patient's right left)."""
    return np.asarray(slice_xz).T


def composite(fat: np.ndarray, water: np.ndarray | None) -> np.ndarray:
    """RGB uint8 ``(z, x, 3)`` of a coronal slice: fat in magenta, water in green (fat alone: grey)."""
    fat_view = scaled(coronal_view(fat))
    if water is None:
        grey = (fat_view * 255).astype(np.uint8)
        return np.stack([grey, grey, grey], axis=-1)
    water_view = scaled(coronal_view(water))
    return (np.stack([fat_view, water_view, fat_view], axis=-1) * 255).astype(np.uint8)


def save_figure(
    figure: Figure, path: Path, *, scratch_dir: Path, dpi: float, description: str | None = None
) -> Path:
    """Write ``figure`` to ``path`` as PNG, atomically; ``description`` goes into the PNG's text metadata."""
    FigureCanvasAgg(figure)
    with atomic_file(path, scratch_dir=scratch_dir) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, metadata={"Description": description} if description else None)
    return path


def subject_figure(
    path: Path,
    *,
    title: str,
    profile_rows: np.ndarray,
    profile: np.ndarray,
    n_rows: int,
    centre: int,
    window_rows: np.ndarray,
    window_shift: int,
    fat: np.ndarray,
    water: np.ndarray | None,
    spacing: tuple[float, float, float],
    scratch_dir: Path,
    dpi: float = 72,
) -> Path:
    """One subject's QC picture: the coronal fat profile and the slab's slices, fat above water.

    ``fat`` and ``water`` are the slab ``(x, slices, z)``; ``spacing`` the input volume's (sx, sy, sz) in mm.
    """
    figure = Figure(figsize=(15, 5.6))
    grid = figure.add_gridspec(1, 2, width_ratios=(1, 3.2), wspace=0.12, left=0.05, right=0.99, top=0.8, bottom=0.1)
    _draw_profile(figure.add_subplot(grid[0]), profile_rows, profile, n_rows, centre, window_rows, window_shift)
    _draw_slab(figure.add_subplot(grid[1]), fat, water, window_rows, centre, spacing)
    figure.suptitle(title, fontsize=11, y=0.97)
    return save_figure(figure, path, scratch_dir=scratch_dir, dpi=dpi)


def _draw_profile(axes, rows, profile, n_rows, centre, window_rows, window_shift) -> None:
    peak = float(np.max(profile)) if np.max(profile) > 0 else 1.0
    every = np.arange(n_rows)
    axes.plot(every, np.interp(every, rows, profile) / peak, color="0.3", lw=1)
    axes.plot(rows, profile / peak, ".", color="0.1", ms=3, label="measured rows")
    axes.axvspan(window_rows[0] - 0.5, window_rows[-1] + 0.5, color="orange", alpha=0.25, label="slab window")
    axes.vlines(window_rows, 0, 0.08, color="darkorange", lw=1.5)
    axes.axvline(centre, color="crimson", lw=1.5, label=f"centre row {centre}")
    if window_shift:
        axes.text(0.98, 0.97, f"window moved {window_shift:+d} rows to fit", transform=axes.transAxes, va="top",
                  ha="right", color="crimson", fontsize=9)
    axes.set_xlim(0, n_rows - 1)
    axes.set_ylim(0, 1.08)
    axes.set_xlabel("coronal row (anterior \u2192 posterior)")
    axes.set_ylabel("body fat per row (relative)")
    axes.set_title("coronal fat profile (noise and table removed)", fontsize=10)
    axes.legend(loc="upper left", fontsize=8, framealpha=0.85)


def _draw_slab(axes, fat, water, window_rows, centre, spacing) -> None:
    channels = [("fat", fat)] + ([("water", water)] if water is not None else [])
    n_slices, gap = fat.shape[1], 4
    width, height = fat.shape[0], fat.shape[2]
    montage = np.ones((len(channels) * height + (len(channels) - 1) * gap, n_slices * (width + gap) - gap), np.float32)
    for band, (_, image) in enumerate(channels):
        low, high = display_range(image[:, n_slices // 2, :])
        top = band * (height + gap)
        for index in range(n_slices):
            view = coronal_view(image[:, index, :]).astype(np.float32)
            left = index * (width + gap)
            montage[top : top + height, left : left + width] = np.clip((view - low) / (high - low), 0, 1)
    axes.imshow(montage, cmap="gray", vmin=0, vmax=1, aspect=spacing[2] / spacing[0], interpolation="antialiased")
    for index, row in enumerate(window_rows):
        left = index * (width + gap)
        colour = "crimson" if row == centre else "0.35"
        axes.text(left + width / 2, -8, f"row {row}", ha="center", va="bottom", fontsize=7, color=colour)
        if row == centre:
            box = Rectangle((left - 1.5, -1.5), width + 2, montage.shape[0] + 2, fill=False, ec="crimson", lw=1.2)
            axes.add_patch(box)
    names = " / ".join(f"{name} ({'top' if band == 0 else 'bottom'})" for band, (name, _) in enumerate(channels))
    axes.set_title(f"slab slices: {names}; head at the top, patient's right on the left", fontsize=10, pad=16)
    axes.set_axis_off()


def contact_sheet(
    path: Path,
    tiles: Sequence[SheetTile],
    *,
    title: str,
    scratch_dir: Path,
    columns: int = 10,
    tile_size: tuple[int, int] = (120, 260),
    dpi: float = 100,
) -> Path:
    """A grid of subjects' centre slices (fat magenta, water green) with labels; flagged subjects framed in red.

    ``tile_size`` is the (width, height) box in pixels each slice is fitted into at its true aspect. The subjects'
    labels are also written into the PNG's metadata, so that a withdrawal finds every sheet that shows one.
    """
    columns = max(1, min(columns, len(tiles)))
    n_rows = max(1, math.ceil(len(tiles) / columns))
    box_w, box_h = tile_size
    cell_w, cell_h = box_w + TILE_GAP, box_h + LABEL_HEIGHT + TILE_GAP
    canvas = np.full((n_rows * cell_h + TILE_GAP, columns * cell_w + TILE_GAP, 3), 255, np.uint8)
    labels = []
    for number, tile in enumerate(tiles):
        row, column = divmod(number, columns)
        left, top = TILE_GAP + column * cell_w, TILE_GAP + row * cell_h + LABEL_HEIGHT
        canvas[top : top + box_h, left : left + box_w] = 0
        if tile.fat is not None:
            picture = _fit(composite(tile.fat, tile.water), tile.spacing_xz, box_w, box_h)
            y0, x0 = top + (box_h - picture.shape[0]) // 2, left + (box_w - picture.shape[1]) // 2
            canvas[y0 : y0 + picture.shape[0], x0 : x0 + picture.shape[1]] = picture
        else:
            canvas[top : top + box_h, left : left + box_w] = FAILED_GREY
        flagged = bool(tile.flags) or bool(tile.failed)
        if flagged:
            _frame(canvas, top=top - LABEL_HEIGHT, left=left, height=box_h + LABEL_HEIGHT, width=box_w)
        labels.append((left, top, tile, flagged))

    height, width = canvas.shape[:2]
    title_lines = [line for part in title.split("\n") for line in textwrap.wrap(part, width=max(30, int(width / 7)))]
    total = height + TITLE_LINE * len(title_lines) + 10
    figure = Figure(figsize=(width / dpi, total / dpi), dpi=dpi)
    axes = figure.add_axes((0, 0, 1, height / total))
    axes.imshow(canvas, interpolation="nearest")
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.set_axis_off()
    characters = max(12, int(box_w / 4.6))  # what fits across a tile at 6.5 pt
    for left, top, tile, flagged in labels:
        colour = "#c00000" if flagged else "black"
        axes.text(left + 2, top - LABEL_HEIGHT + 1, tile.label, va="top", fontsize=7.5, color=colour, weight="bold")
        if tile.flags:
            lines = textwrap.wrap("; ".join(tile.flags), width=characters)
            text = "\n".join(lines[:2]) + (" ..." if len(lines) > 2 else "")
            axes.text(left + 2, top - 2, text, va="bottom", fontsize=6.5, color=colour, linespacing=1.0)
        if tile.failed:
            reason = "\n".join(textwrap.wrap("failed: " + tile.failed, width=characters)[:12])
            axes.text(left + 4, top + 6, reason, va="top", fontsize=6.5, color="white")
    figure.text(0.005, 1 - 4 / total, "\n".join(title_lines), fontsize=10, va="top", linespacing=1.2)
    subjects = "subjects: " + ", ".join(tile.label for tile in tiles)
    return save_figure(figure, path, scratch_dir=scratch_dir, dpi=dpi, description=subjects)


def _fit(picture: np.ndarray, spacing_xz: tuple[float, float], box_w: int, box_h: int) -> np.ndarray:
    """Resample an RGB ``(z, x, 3)`` picture to fit ``box_w`` x ``box_h`` at its true millimetre aspect."""
    sx, sz = spacing_xz
    height_mm, width_mm = picture.shape[0] * sz, picture.shape[1] * sx
    scale = min(box_w / width_mm, box_h / height_mm)
    out_h = max(1, min(box_h, round(height_mm * scale)))
    out_w = max(1, min(box_w, round(width_mm * scale)))
    factors = (out_h / picture.shape[0], out_w / picture.shape[1], 1)
    resized = ndimage.zoom(picture.astype(np.float32), factors, order=1, grid_mode=True, mode="nearest")
    return np.clip(resized[:out_h, :out_w], 0, 255).astype(np.uint8)


def _frame(canvas: np.ndarray, *, top: int, left: int, height: int, width: int, thickness: int = 3) -> None:
    """Draw a red frame just outside the box (it lies in the gap between tiles)."""
    colour = np.array(FLAG_COLOUR, np.uint8)
    top, left = max(0, top - thickness), max(0, left - thickness)
    bottom, right = top + height + 2 * thickness, left + width + 2 * thickness
    canvas[top : top + thickness, left:right] = colour
    canvas[bottom - thickness : bottom, left:right] = colour
    canvas[top:bottom, left : left + thickness] = colour
    canvas[top:bottom, right - thickness : right] = colour
