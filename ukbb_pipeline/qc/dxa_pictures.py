"""unzip_dxa's QC pictures: a picture per subject and contact sheets of the cohort, from its state.

Where they go (``<qc>`` is ``<output>/pipeline-unzip-dxa/qc``, never among the outputs that readers scan):

- ``<qc>/subjects/<first two digits of the stem>/<stem>.png``: the tissue and bone images side by side at their
  true millimetre aspect (the pixel spacing honoured), the notes in the title; drawn with numpy into a palette PNG;
- ``<qc>/sheets/shard<i>of<n>/contact-sheet-shard<i>of<n>-<page>.png``: about ``sheet_size`` visits per sheet,
  tissue magenta and bone green, laid out and indexed by their PNG ``Description`` like extract_slices' sheets
  (:func:`ukbb_pipeline.qc.sheets.update_state_sheets`); a subject with notes or flags, or that failed, is framed red.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.flags import flags_of
from ukbb_pipeline.formats.outputs import read_dxa
from ukbb_pipeline.qc import pictures, sheets
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.state import DONE

log = logging.getLogger(__name__)

STAGE = "unzip_dxa"
CHANNELS = ("tissue", "bone")  # magenta, green on the contact sheets
PICTURE_HEIGHT = 640  # px of each image in the per-subject picture (a full-size exam is 791 rows)
GAP = 12
MAX_NOTE_LINES = 8  # of notes under the title (the manifest has them whole)
TILE_ROWS = 260  # a sheet tile's height: images are averaged down to about this before the sheet fits them
CAPTION = "Total Body: tissue magenta, bone green; head up, as stored"


def subject_picture(
    path: Path,
    *,
    tissue: np.ndarray,
    bone: np.ndarray,
    pixel_spacing: tuple[float, float],
    title: str,
    notes: Iterable[str] = (),
    scratch_dir: Path,
    height: int = PICTURE_HEIGHT,
) -> Path:
    """Tissue and bone side by side, each sampled (nearest pixel) into ``height`` rows at the true aspect.

    ``pixel_spacing`` is (row, column) in mm. Notes are printed under the title in crimson, wrapped. About 5-10 ms and
    100-200 KB for a full-size exam.
    """
    rows, columns = tissue.shape
    row_mm, column_mm = pixel_spacing
    width = max(8, round(height * (columns * column_mm) / max(rows * row_mm, 1e-6)))
    at_rows = np.minimum(((np.arange(height) + 0.5) * rows / height).astype(np.intp), rows - 1)
    at_columns = np.minimum(((np.arange(width) + 0.5) * columns / width).astype(np.intp), columns - 1)
    canvas_width = max(2 * width + 3 * GAP, 420)
    wrapped = [line for note in notes if note for line in textwrap.wrap(note, width=max(30, canvas_width // 6))]
    notes = wrapped[:MAX_NOTE_LINES] + (["..."] if len(wrapped) > MAX_NOTE_LINES else [])
    top = pictures.TITLE_HEIGHT + 14 * len(notes) + pictures.LABEL_ROW
    canvas = np.full((top + height + GAP, canvas_width), pictures.WHITE, np.uint8)
    texts: list[tuple[tuple[int, int], str, int]] = [((6, 4), title, pictures.INK)]
    texts += [((6, pictures.TITLE_HEIGHT + 14 * number), note, pictures.CRIMSON) for number, note in enumerate(notes)]
    for number, (name, image) in enumerate((("tissue", tissue), ("bone", bone))):
        left = GAP + number * (width + GAP)
        _, high = pictures.display_range(image)
        sampled = np.asarray(image)[at_rows][:, at_columns].astype(np.float32)
        grey = np.clip(sampled * (255.0 / high), 0.0, 255.0).astype(np.uint8)
        canvas[top : top + height, left : left + width] = pictures._GREY_INDEX[grey]
        texts.append(((left, top - pictures.LABEL_ROW + 1), name, pictures.DIM))
    pictures._write_text(canvas, texts)
    return pictures.write_png(path, canvas, palette=pictures.PALETTE, scratch_dir=scratch_dir)


def draw_subject_picture(stem: str, *, qc_dir: Path, scratch_dir: Path | None, tissue: np.ndarray, bone: np.ndarray,
                         pixel_spacing: tuple[float, float], notes: Iterable[str]) -> list[str]:
    """Draw the subject's picture; one that fails is a note, never a failed exam."""
    rows, columns = tissue.shape
    title = (f"{stem}: Total Body tissue and bone, {rows} x {columns} px, "
             f"{pixel_spacing[0]:.3g} x {pixel_spacing[1]:.3g} mm")
    try:
        subject_picture(sheets.subject_picture_path(qc_dir, stem), tissue=tissue, bone=bone,
                        pixel_spacing=pixel_spacing, title=title, notes=notes,
                        scratch_dir=scratch_dir or qc_dir / "tmp")
    except Exception as error:  # a picture must never fail the exam, which is good
        log.warning("%s: QC picture failed: %s", stem, error)
        return [f"QC picture failed: {type(error).__name__}: {error}"]
    return []


def dxa_tile(record: dict[str, str]) -> pictures.SheetTile:
    """A DXA subject's contact-sheet tile from its state record: tissue/bone composite; notes and flags framed."""
    label = sheets.visit_of(record)
    notes = [note for note in record.get("notes", "").split("; ") if note]
    flags = [*flags_of(record, seam_mismatch_limit=None), *notes]  # a DXA has no seams
    if record["state"] != DONE or not record["output"]:
        return pictures.SheetTile(label=label, failed=record.get("notes") or record["status"])
    try:
        images = read_dxa(Path(record["output"]), channels=CHANNELS)
    except (OSError, KeyError, ValueError, InputError) as error:
        return pictures.SheetTile(label=label, flags=flags, failed=f"output unreadable: {error}")
    factor = max(1, images.image.shape[1] // TILE_ROWS)
    tissue, bone = (block_mean(channel, factor) for channel in images.image)
    row_mm, column_mm = (spacing * factor for spacing in images.spacing)
    # The sheet draws (x, z) slices transposed (rows z, columns x): hand it the images transposed.
    return pictures.SheetTile(label=label, fat=tissue.T, water=bone.T, spacing_xz=(column_mm, row_mm), flags=flags)


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` averaged over ``factor`` x ``factor`` blocks (the edge rows and columns that do not fill one cut)."""
    if factor <= 1:
        return np.asarray(image, dtype=np.float32)
    rows, columns = (size // factor * factor for size in image.shape)
    blocks = np.asarray(image[:rows, :columns], dtype=np.float32).reshape(rows // factor, factor, -1, factor)
    return blocks.mean(axis=(1, 3))


def update_contact_sheets(*, folders: StageFolders, shard_index: int, shard_count: int, processed: Iterable[str],
                          sheet_size: int) -> list[Path]:
    """Bring this shard's DXA contact sheets up to date with unzip_dxa's state; return the sheets (re)drawn."""
    return sheets.update_state_sheets(folders=folders, stage=STAGE, shard_index=shard_index,
                                      shard_count=shard_count, processed=processed, sheet_size=sheet_size,
                                      tile=dxa_tile, caption=CAPTION, tile_size=(100, 260))
