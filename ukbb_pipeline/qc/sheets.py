"""extract_slices' QC pictures, from the cohort's state: per-subject pictures and contact sheets.

Where they go (``<qc>`` is ``<output>/pipeline-extract-slices/qc``), nested so that no folder holds more than a few
thousand files at 100,000 subjects:

- ``<qc>/subjects/<first two digits of the stem>/<stem>.png``: one per subject (``stage.subject_pictures``);
- ``<qc>/sheets/shard<i>of<n>/contact-sheet-shard<i>of<n>-<page>.png``: about ``sheet_size`` visits per sheet.

Contact sheets show every visit of the shard that the cohort's state knows (done or failed, from any run), not only
the last run's. A sheet's PNG ``Description`` lists its visits (``<eid> visit <instance>, ...``) and is the index:
a visit keeps its sheet, new visits fill the last sheet and then new ones, and a run redraws only the sheets whose
visits it processed (or that gain or lose visits). Each shard writes only its own folder, so a SLURM array's shards
never write the same file. Sheets left by another shard count are superseded: a visit on a sheet of the count
being drawn is taken off the others (which are redrawn without it, or removed when nothing is left), so no visit
appears twice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.flags import flags_of, window_flag
from ukbb_pipeline.formats.outputs import open_volume
from ukbb_pipeline.formats.volumes import REQUIRED_CHANNEL, VolumeInfo
from ukbb_pipeline.qc import pictures
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile
from ukbb_pipeline.runtime.sharding import in_shard
from ukbb_pipeline.runtime.state import DONE, FAILED, stage_state
from ukbb_pipeline.slices.midcoronal import CentreEstimate, SlabWindow

log = logging.getLogger(__name__)

STAGE = "extract_slices"
UPSTREAM_STAGE = "unzip_mri"  # whose state flags subjects (swapped stations, seam mismatch) on the sheets
SHEETS = "sheets"
SUBJECTS = "subjects"
_SET = re.compile(r"^shard(\d+)of(\d+)$")


# ----------------------------------------------------------------------------------------------------------------
# Where things go


def subject_picture_path(qc: Path, stem: str) -> Path:
    return qc / SUBJECTS / stem[:2] / f"{stem}.png"


def sheet_folder(qc: Path, *, shard_index: int, shard_count: int) -> Path:
    return qc / SHEETS / f"shard{shard_index}of{shard_count}"


def sheet_files(qc: Path) -> list[Path]:
    """Every contact sheet under ``qc`` (and, from before sheets were nested, directly in it), by name."""
    return sorted([*qc.glob(f"{SHEETS}/*/contact-sheet-*.png"), *qc.glob("contact-sheet-*.png")],
                  key=lambda path: path.name)


def _png_text(path: Path) -> dict[str, str]:
    try:
        with Image.open(path) as image:
            return {str(key): str(value) for key, value in image.info.items() if isinstance(value, str)}
    except (OSError, ValueError):
        return {}


def sheet_visits(path: Path) -> list[str]:
    """The visits a contact sheet shows, from its PNG ``Description`` (``<eid> visit <instance>, ...``)."""
    text = _png_text(path).get("Description", "").removeprefix("subjects: ")  # (sheets from before this layout)
    return [visit for visit in (part.strip() for part in text.split(",")) if visit]


def _sheet_size_of(path: Path) -> int | None:
    match = re.fullmatch(r"sheet size (\d+)", _png_text(path).get("Comment", ""))
    return int(match.group(1)) if match else None


def visit_of(record: Mapping[str, str]) -> str:
    """``<eid> visit <instance>`` (the stem for an input named off the UK Biobank pattern)."""
    return f"{record['eid']} visit {record['instance']}" if record.get("eid") else record["stem"]


# ----------------------------------------------------------------------------------------------------------------
# Per-subject picture


def draw_subject_picture(
    item: InputFile,
    *,
    qc_dir: Path,
    scratch_dir: Path | None,
    estimate: CentreEstimate,
    window: SlabWindow,
    arrays: dict[str, np.ndarray],
    info: VolumeInfo,
) -> list[str]:
    """Draw the subject's QC picture; a picture that fails is a note, never a failed extraction."""
    rows = window.rows
    step = int(rows[1] - rows[0]) if rows.size > 1 else 1
    try:
        pictures.subject_picture(
            subject_picture_path(qc_dir, item.stem),
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
    except Exception as error:  # a picture must never fail the slab, which is good
        log.warning("%s: QC picture failed: %s", item.stem, error)
        return [f"QC picture failed: {type(error).__name__}: {error}"]
    return []


# ----------------------------------------------------------------------------------------------------------------
# Contact sheets


@dataclass(frozen=True)
class CentreSlices:
    fat: np.ndarray
    water: np.ndarray | None
    spacing_xz: tuple[float, float]
    window_shift: int


def read_centre_slices(path: Path) -> CentreSlices:
    """The slice of a written slab that the paper's loader takes (index ``shape[1] // 2``), fat and water, in
    whichever format the slab was written."""
    with open_volume(path) as volume:
        info = volume.info
        middle = np.array([info.shape[1] // 2])
        fat = volume.rows(REQUIRED_CHANNEL, middle)[:, 0, :]
        water = volume.rows("water_scan", middle)[:, 0, :] if "water_scan" in info.channels else None
        shift = int(info.attrs.get("window_shift", 0) or 0)
    return CentreSlices(fat=fat, water=water, spacing_xz=(info.spacing[0], info.spacing[2]), window_shift=shift)


def upstream_flags(record: Mapping[str, str] | None, *, seam_mismatch_limit: float | None) -> list[str]:
    """What unzip_mri's state says is worth a look: swapped stations, a high seam mismatch."""
    if not record:
        return []
    upstream = {key: value for key, value in record.items() if key != "window_shift"}  # this stage's own flag
    return flags_of(upstream, seam_mismatch_limit=seam_mismatch_limit)


def _tile(record: Mapping[str, str], upstream: Mapping[str, str] | None, *,
          seam_mismatch_limit: float | None) -> pictures.SheetTile:
    label = visit_of(record)
    flags = upstream_flags(upstream, seam_mismatch_limit=seam_mismatch_limit)
    if record["state"] != DONE or not record["output"]:
        return pictures.SheetTile(label=label, flags=flags, failed=record.get("notes") or record["status"])
    try:
        centre = read_centre_slices(Path(record["output"]))
    except (OSError, KeyError, ValueError, InputError) as error:
        return pictures.SheetTile(label=label, flags=flags, failed=f"output unreadable: {error}")
    moved = window_flag(centre.window_shift)
    if moved:
        flags.append(moved)
    return pictures.SheetTile(label=label, fat=centre.fat, water=centre.water, spacing_xz=centre.spacing_xz,
                              flags=flags)


def _safe_state(meta: Path, stage: str) -> list[dict[str, str]]:
    if not meta.is_dir():
        return []
    try:
        return stage_state(meta, stage=stage)
    except (OSError, ValueError, KeyError) as error:
        log.warning("%s: could not read the state in %s (%s)", STAGE, meta, error)
        return []


def _sheet_name(shard_index: int, shard_count: int, page: int) -> str:
    return f"contact-sheet-shard{shard_index}of{shard_count}-{page:03d}.png"


def _page_of(path: Path) -> int:
    return int(path.stem.rsplit("-", 1)[-1])


@dataclass
class _Drawer:
    """Draws pages of a stage's tiles from its state records."""

    folders: StageFolders
    stage: str
    records: dict[str, dict[str, str]]  # visit -> this stage's state record
    tile: Callable[[dict[str, str]], pictures.SheetTile]  # a state record's tile
    caption: str  # what the tiles show, under each sheet's title
    sheet_size: int
    tile_size: tuple[int, int] = (120, 260)
    columns: int = 10

    def draw(self, path: Path, visits: list[str], *, title: str) -> Path:
        tiles = [self.tile(self.records[visit]) for visit in visits]
        n_flagged = sum(bool(tile.flags or tile.failed) for tile in tiles)
        heading = f"{title}: {len(tiles)} subjects, {n_flagged} flagged (red)\n{self.caption}"
        return pictures.contact_sheet(path, tiles, title=heading, scratch_dir=self.folders.scratch,
                                      png_text={"Comment": f"sheet size {self.sheet_size}"},
                                      tile_size=self.tile_size, columns=self.columns)


def update_contact_sheets(
    *,
    folders: StageFolders,
    mri_dir: Path,
    shard_index: int,
    shard_count: int,
    processed: Iterable[str],
    sheet_size: int,
    seam_mismatch_limit: float | None,
) -> list[Path]:
    """Bring this shard's slab contact sheets up to date with the cohort's state (:func:`update_state_sheets`)."""
    upstream_meta = StageFolders(output=mri_dir, stage=UPSTREAM_STAGE).meta
    upstream = {record["stem"]: record for record in _safe_state(upstream_meta, UPSTREAM_STAGE)}
    return update_state_sheets(
        folders=folders, stage=STAGE, shard_index=shard_index, shard_count=shard_count, processed=processed,
        sheet_size=sheet_size,
        tile=lambda record: _tile(record, upstream.get(record["stem"]), seam_mismatch_limit=seam_mismatch_limit),
        caption="slab centre slice: fat magenta, water green; head up, patient's right on the left",
    )


def update_state_sheets(
    *,
    folders: StageFolders,
    stage: str,
    shard_index: int,
    shard_count: int,
    processed: Iterable[str],
    sheet_size: int,
    tile: Callable[[dict[str, str]], pictures.SheetTile],
    caption: str,
    tile_size: tuple[int, int] = (120, 260),
    columns: int = 10,
) -> list[Path]:
    """Bring this shard's contact sheets of ``stage`` up to date with the cohort's state; return those (re)drawn.

    ``processed`` are the stems this run did (ok or failed): their sheets are redrawn. Visits the state has and no
    sheet holds are added; visits the state no longer has (withdrawn) are dropped. ``tile`` makes a record's tile.
    """
    sheet_size = max(1, sheet_size)
    state = [record for record in _safe_state(folders.meta, stage) if record["state"] in (DONE, FAILED)]
    records = {visit_of(record): record for record in state}
    mine = {visit for visit, record in records.items()
            if in_shard(record["stem"], index=shard_index, count=shard_count)}
    drawer = _Drawer(folders=folders, stage=stage, records=records, tile=tile, caption=caption,
                     sheet_size=sheet_size, tile_size=tile_size, columns=columns)

    folder = sheet_folder(folders.qc, shard_index=shard_index, shard_count=shard_count)
    existing = sorted(folder.glob("contact-sheet-*.png"))
    pages = {_page_of(path): sheet_visits(path) for path in existing}
    changed: set[int] = set()
    if any(_sheet_size_of(path) != sheet_size for path in existing):
        changed.update(pages)  # another stage.sheet_size: lay the sheets out again
        pages = {}
    assigned: dict[str, int] = {}
    for page, visits in pages.items():
        kept = [visit for visit in visits if visit in mine and visit not in assigned]
        if kept != visits:
            changed.add(page)
        pages[page] = kept
        assigned.update(dict.fromkeys(kept, page))
    new = sorted((visit for visit in mine if visit not in assigned), key=lambda visit: records[visit]["stem"])
    for visit in new:
        last = max(pages, default=0)
        page = last if last and len(pages[last]) < sheet_size else last + 1
        pages.setdefault(page, []).append(visit)
        assigned[visit] = page
        changed.add(page)
    touched = set(processed)
    changed.update(page for visit, page in assigned.items() if records[visit]["stem"] in touched)

    drawn = []
    n_pages = max((page for page, visits in pages.items() if visits), default=0)
    for page in sorted(changed):
        path = folder / _sheet_name(shard_index, shard_count, page)
        if not pages.get(page):
            path.unlink(missing_ok=True)
            continue
        title = f"{stage} shard {shard_index} of {shard_count}, sheet {page} of {n_pages}"
        drawn.append(drawer.draw(path, pages[page], title=title))
    _supersede_other_counts(folders.qc, drawer, shard_count=shard_count)
    return drawn


def _supersede_other_counts(qc: Path, drawer: _Drawer, *, shard_count: int) -> None:
    """Take the visits on sheets of ``shard_count`` off the sheets of other counts (and the old flat sheets).

    Repeated until what the current count's sheets cover stops growing, so that shards finishing at the same time
    cannot leave a visit on two sheets (the last to redraw an old sheet saw every other's sheets).
    """
    covered: set[str] | None = None
    while True:
        now = _covered(qc, shard_count)
        if now == covered:
            return
        covered = now
        for path in _other_sheets(qc, shard_count):
            visits = sheet_visits(path)
            kept = [visit for visit in visits if visit not in covered and visit in drawer.records]
            if kept == visits:
                continue
            if not kept:
                path.unlink(missing_ok=True)
                continue
            drawer.draw(path, kept, title=f"{drawer.stage} (an earlier run's sheet, {path.stem})")


def _sets(qc: Path) -> list[tuple[int, Path]]:
    found = []
    for folder in (qc / SHEETS).glob("shard*of*"):
        match = _SET.match(folder.name)
        if match and folder.is_dir():
            found.append((int(match.group(2)), folder))
    return found


def _covered(qc: Path, shard_count: int) -> set[str]:
    return {visit for count, folder in _sets(qc) if count == shard_count
            for path in folder.glob("contact-sheet-*.png") for visit in sheet_visits(path)}


def _other_sheets(qc: Path, shard_count: int) -> list[Path]:
    others = [path for count, folder in _sets(qc) if count != shard_count
              for path in folder.glob("contact-sheet-*.png")]
    return sorted([*others, *qc.glob("contact-sheet-*.png")])
