"""QC pictures for the mid-coronal slabs (PNG, no display needed).

Two kinds: a per-subject picture (the coronal fat profile with the centre and the window marked, and every slice of
the slab in fat and water one above the other), drawn with numpy into a uint8 image and written by Pillow at a fast
compression level (about 20 ms for a full-size subject, against about 0.5 s for the matplotlib figure it replaced),
and contact sheets of about a hundred subjects' centre slices (numpy, labels by Pillow: the matplotlib figure they
replaced took about 450 MB and 19 s for a sheet of 100 failed subjects' reasons), in which a wrong centre,
a missing body part or a fat/water swap shows at a glance. Slices are drawn as a radiologist
views a coronal image: head at the top, the patient's right on the viewer's left (array axis x runs right to left),
with the true millimetre aspect. In the contact sheets fat is magenta and water green, so a station whose channels
are swapped shows green where the fat layer should be.
"""

from __future__ import annotations

import itertools
import math
import struct
import textwrap
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ukbb_pipeline.runtime.atomic import atomic_file

FLAG_COLOUR = (230, 40, 40)
FAILED_GREY = 60
LABEL_HEIGHT = 36  # px above each contact-sheet tile for its label (a name and up to two lines of flags)
TITLE_LINE = 15  # px per line of a contact sheet's title
TILE_GAP = 6  # px between tiles
CHAR_WIDTH = 6  # px per character of Pillow's built-in font
FLAG_TEXT = (192, 0, 0)


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


def png_bytes(picture: np.ndarray, *, palette: np.ndarray | None = None, text: dict[str, str] | None = None,
              level: int = 1) -> bytes:
    """A uint8 picture as PNG bytes: RGB ``(h, w, 3)``, grey ``(h, w)``, or indices into ``palette`` ``(n, 3)``.

    No row filter and zlib at ``level``: Pillow's encoder tries every row filter and takes several times longer on a
    QC picture, which can afford to compress a little worse.
    """
    picture = np.ascontiguousarray(picture, dtype=np.uint8)
    height, width = picture.shape[:2]
    colour_type = 2 if picture.ndim == 3 else (0 if palette is None else 3)
    rows = np.empty((height, 1 + picture[0].size), np.uint8)
    rows[:, 0] = 0  # filter type None
    rows[:, 1:] = picture.reshape(height, -1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))
    if palette is not None:
        header += chunk(b"PLTE", np.ascontiguousarray(palette, dtype=np.uint8).tobytes())
    texts = b"".join(chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1", "replace"))
                     for key, value in (text or {}).items())
    return (b"\x89PNG\r\n\x1a\n" + header + texts + chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
            + chunk(b"IEND", b""))


def write_png(path: Path, picture: np.ndarray, *, scratch_dir: Path, palette: np.ndarray | None = None,
              text: dict[str, str] | None = None) -> Path:
    """Write a uint8 picture as PNG (:func:`png_bytes`), atomically."""
    with atomic_file(path, scratch_dir=scratch_dir) as tmp:
        tmp.write_bytes(png_bytes(picture, palette=palette, text=text))
    return path


# The per-subject picture is drawn in palette indices: 0..GREYS-1 are grey levels, then a few colours.
GREYS = 248
WHITE = GREYS - 1
CRIMSON, ORANGE, PALE_ORANGE, INK, DIM, RULE = 248, 249, 250, 251, 252, 253
PALETTE = np.concatenate([
    np.repeat((np.arange(GREYS) * 255 // (GREYS - 1)).astype(np.uint8)[:, None], 3, axis=1),
    np.array([(220, 20, 60), (255, 150, 0), (255, 225, 170), (30, 30, 30), (100, 100, 100), (160, 160, 160),
              (0, 0, 0), (0, 0, 0)], np.uint8),
])
_GREY_INDEX = (np.arange(256) * (GREYS - 1) // 255).astype(np.uint8)  # grey level -> palette index
PROFILE_WIDTH = 400  # px of the profile panel
BLACK_BELOW = 0.04  # of the display maximum: the per-subject picture shows fainter voxels black
TITLE_HEIGHT = 24
LABEL_ROW = 14  # px above the slab for the row labels


def subject_picture(
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
    band_height: int = 160,
) -> Path:
    """One subject's QC picture: the coronal fat profile and the slab's slices, fat above water, centre framed.

    ``fat`` and ``water`` are the slab ``(x, slices, z)``; ``spacing`` the input volume's (sx, sy, sz) in mm. Each
    slice is sampled (nearest voxel) into ``band_height`` rows at its true millimetre aspect. Drawn with numpy in
    palette indices and written as an 8-bit palette PNG: about 20-40 ms and 150-250 KB for a full-size subject.
    """
    sx, _, sz = spacing
    width_x, n_slices, depth_z = fat.shape
    tile_w = max(8, round(band_height * (width_x * sx) / max(depth_z * sz, 1e-6)))
    rows_z = np.minimum(((np.arange(band_height) + 0.5) * depth_z / band_height).astype(np.intp), depth_z - 1)
    cols_x = np.minimum(((np.arange(tile_w) + 0.5) * width_x / tile_w).astype(np.intp), width_x - 1)
    channels = [fat] + ([water] if water is not None else [])
    gap = 4
    montage_w = n_slices * (tile_w + gap) - gap
    montage_h = len(channels) * band_height + (len(channels) - 1) * gap
    left0, top0 = PROFILE_WIDTH + 16, TITLE_HEIGHT + LABEL_ROW
    height = top0 + montage_h + 8
    width = max(left0 + montage_w + 8, 820)
    canvas = np.full((height, width), WHITE, np.uint8)
    montage = np.full((montage_h, n_slices, tile_w + gap), WHITE, np.uint8)
    for band, image in enumerate(channels):
        _, high = display_range(image[:, n_slices // 2, :])
        low = BLACK_BELOW * high  # background noise shown black: it is most of a PNG's bytes otherwise
        sampled = np.asarray(image)[:, :, rows_z][cols_x].astype(np.float32)  # (tile_w, slices, rows)
        grey = np.clip((sampled - low) * (255.0 / (high - low)), 0.0, 255.0).astype(np.uint8)
        top = band * (band_height + gap)
        montage[top : top + band_height, :, :tile_w] = _GREY_INDEX[grey.transpose(2, 1, 0)]
    canvas[top0 : top0 + montage_h, left0 : left0 + n_slices * (tile_w + gap)] = montage.reshape(montage_h, -1)
    window_rows = np.asarray(window_rows)
    centre_at = np.flatnonzero(window_rows == centre)
    if centre_at.size:
        left = left0 + int(centre_at[0]) * (tile_w + gap)
        _box(canvas, top=top0 - 2, left=left - 2, height=montage_h + 4, width=tile_w + 4, colour=CRIMSON)
    _profile_panel(canvas, top=top0, height=montage_h, rows=np.asarray(profile_rows),
                   profile=np.asarray(profile, dtype=np.float64), n_rows=n_rows, centre=centre,
                   window_rows=window_rows)
    names = "fat (top) / water (bottom)" if water is not None else "fat"
    texts = [((6, 2), title, INK),
             ((left0, 13), f"slab slices: {names}; head at the top, patient's right on the left", DIM),
             ((8, top0 + 4), "coronal fat profile (noise and table removed)", INK),
             ((8, top0 + 18), f"centre row {centre}", CRIMSON),
             ((8, top0 + montage_h - 14), "coronal row (anterior -> posterior)", DIM)]
    texts += [((left0 + index * (tile_w + gap) + 2, top0 - LABEL_ROW + 1), f"row {row}",
               CRIMSON if row == centre else DIM) for index, row in enumerate(window_rows)]
    if window_shift:
        texts.append(((8, top0 + 32), f"window moved {window_shift:+d} rows to fit", CRIMSON))
    _write_text(canvas, texts)
    return write_png(path, canvas, palette=PALETTE, scratch_dir=scratch_dir)


def _write_text(canvas: np.ndarray, texts: list[tuple[tuple[int, int], str, int]]) -> None:
    """Draw each (position, text, palette index) with Pillow's built-in font into the index canvas."""
    mask = Image.new("L", (canvas.shape[1], canvas.shape[0]), 0)
    draw = ImageDraw.Draw(mask)
    for position, text, colour in texts:
        draw.text(position, text, fill=255)
        left, top, right, bottom = (int(value) for value in draw.textbbox(position, text))
        region = np.asarray(mask.crop((left, top, right, bottom))) > 110
        target = canvas[top:bottom, left:right]
        target[region[: target.shape[0], : target.shape[1]]] = colour
        draw.rectangle((left, top, right, bottom), fill=0)


def _profile_panel(canvas: np.ndarray, *, top: int, height: int, rows: np.ndarray, profile: np.ndarray,
                   n_rows: int, centre: int, window_rows: np.ndarray) -> None:
    """The coronal fat profile as a line over the rows, the slab window shaded, the centre in crimson."""
    left, width = 8, PROFILE_WIDTH
    plot_top, plot_h = top + 48, max(20, height - 70)
    _box(canvas, top=plot_top, left=left, height=plot_h, width=width, colour=RULE, thickness=1)

    def column(row: float | np.integer) -> int:
        return left + round((float(row) / max(n_rows - 1, 1)) * (width - 1))

    lo, hi = column(window_rows[0] - 0.5), column(window_rows[-1] + 0.5)
    canvas[plot_top + 1 : plot_top + plot_h - 1, lo : hi + 1] = PALE_ORANGE
    peak = float(profile.max()) if profile.size and profile.max() > 0 else 1.0
    at = np.linspace(0, n_rows - 1, width)  # the row under each pixel column
    values = np.interp(at, rows, profile) / peak if rows.size else np.zeros(width)
    ys = plot_top + plot_h - 2 - np.round(np.clip(values, 0, 1.08) / 1.08 * (plot_h - 4)).astype(int)
    for offset, (y0, y1) in enumerate(itertools.pairwise(ys)):  # a connected line, column by column
        canvas[min(y0, y1) : max(y0, y1) + 1, left + offset] = INK
    for row in window_rows:
        canvas[plot_top + plot_h - 10 : plot_top + plot_h - 1, column(row)] = ORANGE
    canvas[plot_top + 1 : plot_top + plot_h - 1, column(centre)] = CRIMSON


def _box(canvas: np.ndarray, *, top: int, left: int, height: int, width: int, colour: int,
         thickness: int = 2) -> None:
    top, left = max(0, top), max(0, left)
    bottom, right = min(canvas.shape[0], top + height), min(canvas.shape[1], left + width)
    canvas[top : top + thickness, left:right] = colour
    canvas[bottom - thickness : bottom, left:right] = colour
    canvas[top:bottom, left : left + thickness] = colour
    canvas[top:bottom, right - thickness : right] = colour


def contact_sheet(
    path: Path,
    tiles: Sequence[SheetTile],
    *,
    title: str,
    scratch_dir: Path,
    png_text: dict[str, str] | None = None,
    columns: int = 10,
    tile_size: tuple[int, int] = (120, 260),
) -> Path:
    """A grid of subjects' centre slices (fat magenta, water green) with labels; flagged subjects framed in red.

    ``tile_size`` is the (width, height) box in pixels each slice is fitted into at its true aspect. The subjects'
    labels (``<eid> visit <instance>``) are the PNG's ``Description``, so that the sheets index themselves and a
    withdrawal finds every sheet that shows one; ``png_text`` adds further PNG text entries.
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
    characters = max(12, box_w // CHAR_WIDTH)  # what fits across a tile in Pillow's built-in font
    wrap = max(30, width // CHAR_WIDTH)
    title_lines = [line for part in title.split("\n") for line in textwrap.wrap(part, width=wrap)]
    header = TITLE_LINE * len(title_lines) + 10
    sheet = np.full((height + header, width, 3), 255, np.uint8)
    sheet[header:] = canvas
    del canvas
    image = Image.fromarray(sheet)
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(title_lines):
        draw.text((4, 4 + number * TITLE_LINE), line, fill=(0, 0, 0))
    for left, top, tile, flagged in labels:
        top += header
        colour = FLAG_TEXT if flagged else (0, 0, 0)
        draw.text((left + 2, top - LABEL_HEIGHT + 1), tile.label, fill=colour)
        if tile.flags:
            lines = textwrap.wrap("; ".join(tile.flags), width=characters)
            text = "\n".join(lines[:2]) + (" ..." if len(lines) > 2 else "")
            draw.multiline_text((left + 2, top - 24), text, fill=colour, spacing=1)
        if tile.failed:
            reason = "\n".join(textwrap.wrap("failed: " + tile.failed, width=characters)[:12])
            draw.multiline_text((left + 4, top + 6), reason, fill=(255, 255, 255), spacing=2)
    visits = ", ".join(tile.label for tile in tiles)
    return write_png(path, np.asarray(image), scratch_dir=scratch_dir, text={"Description": visits, **(png_text or {})})


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
