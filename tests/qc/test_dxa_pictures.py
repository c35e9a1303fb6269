"""unzip_dxa's QC pictures: a picture per subject and contact sheets of the cohort, only in the metadata folder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ukbb_pipeline.config import UnzipDxaConfig
from ukbb_pipeline.formats import Hdf5Writer
from ukbb_pipeline.formats.outputs import find_outputs
from ukbb_pipeline.qc import dxa_pictures
from ukbb_pipeline.qc.pictures import CRIMSON, FLAG_COLOUR, GREYS, TITLE_HEIGHT, WHITE, display_range
from ukbb_pipeline.qc.report import read_stage
from ukbb_pipeline.qc.sheets import sheet_files, sheet_visits, subject_picture_path
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.runner import RunOptions
from ukbb_pipeline.stages import unzip_dxa
from ukbb_pipeline.synthetic import DxaQuirks, Phantom, write_dxa_zip
from ukbb_pipeline.withdraw import withdraw

CLEAN = [1000011, 1000012, 1000013, 1000014]
NOTED = 1000015  # another participant's AP Spine in the zip: a note, so framed
BROKEN = 1000016  # one Total Body image: fails, shown grey and framed
EIDS = [*CLEAN, NOTED, BROKEN]


def stem(eid: int) -> str:
    return f"{eid}_20158_2_0"


def visit(eid: int) -> str:
    return f"{eid} visit 2"


@pytest.fixture(scope="module")
def zips(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("dxa") / "raw" / "dxas"
    folder.mkdir(parents=True)
    quirks = {NOTED: DxaQuirks(foreign=("AP Spine",)), BROKEN: DxaQuirks(only_one_total_body=True)}
    truths = {eid: write_dxa_zip(folder / f"{stem(eid)}.zip", eid=eid, phantom=Phantom.random(number),
                                 quirks=quirks.get(eid, DxaQuirks()), seed=number)
              for number, eid in enumerate(EIDS)}
    return folder, truths


@pytest.fixture
def root(tmp_path, zips) -> Path:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "dxas").symlink_to(zips[0])
    return tmp_path


def run(root: Path, *, eids=None, shard=(0, 1), overwrite=False, sheet_size=3, qc=True) -> None:
    config = UnzipDxaConfig(input_dir=str(root / "raw" / "dxas"), output_dir=str(root / "dxas-processed"),
                            sheet_size=sheet_size)
    options = RunOptions(n_jobs=1, shard_index=shard[0], shard_count=shard[1], overwrite=overwrite,
                         only_eids=None if eids is None else frozenset(eids))
    unzip_dxa.run(config, options=options, writer=Hdf5Writer(), qc=qc)


def qc(root: Path) -> Path:
    return StageFolders(output=root / "dxas-processed", stage="unzip_dxa").qc


def sheets(root: Path) -> dict[str, list[str]]:
    return {path.relative_to(qc(root)).as_posix(): sheet_visits(path) for path in sheet_files(qc(root))}


def red_pixels(path: Path) -> int:
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(pixels - np.array(FLAG_COLOUR)).sum(axis=2) < 6).sum())


def test_sheets_list_exactly_the_processed_visits_once_each(root):
    run(root)
    found = sheets(root)
    assert Counter(v for visits in found.values() for v in visits) == Counter(visit(eid) for eid in EIDS)
    assert [len(visits) for visits in found.values()] == [3, 3]  # sheet_size 3, in stem order
    assert next(iter(found.values())) == [visit(eid) for eid in CLEAN[:3]]
    assert all(name.startswith("sheets/shard0of1/contact-sheet-shard0of1-") for name in found)


def test_a_subject_with_a_note_or_a_failure_is_framed_and_a_clean_one_is_not(root):
    run(root, sheet_size=1)
    by_visit = {visits[0]: path for path, visits in ((p, sheet_visits(p)) for p in sheet_files(qc(root)))}
    assert set(by_visit) == {visit(eid) for eid in EIDS}
    assert red_pixels(by_visit[visit(NOTED)]) > 1000
    assert red_pixels(by_visit[visit(BROKEN)]) > 1000
    assert all(red_pixels(by_visit[visit(eid)]) == 0 for eid in CLEAN)


def test_a_one_eid_rerun_keeps_every_sheet_and_its_visits(root):
    run(root)
    before = sheets(root)
    run(root, eids=[CLEAN[1]], overwrite=True)
    assert sheets(root) == before
    run(root, eids=[CLEAN[1]])  # skipped this time: nothing to redraw, nothing lost
    assert sheets(root) == before


def test_subject_picture_shows_tissue_beside_bone_at_the_true_aspect(root, zips):
    run(root)
    truth = zips[1][CLEAN[0]]
    path = subject_picture_path(qc(root), stem(CLEAN[0]))
    with Image.open(path) as image:
        assert image.mode == "P"
        indices = np.asarray(image)
    rows, columns = truth.tissue.shape
    row_mm, column_mm = truth.pixel_spacing
    width = round(dxa_pictures.PICTURE_HEIGHT * columns * column_mm / (rows * row_mm))
    top = TITLE_HEIGHT + 14 * 0 + 14  # no notes: title, then the panel labels
    height = dxa_pictures.PICTURE_HEIGHT
    at_rows = np.minimum(((np.arange(height) + 0.5) * rows / height).astype(int), rows - 1)
    at_columns = np.minimum(((np.arange(width) + 0.5) * columns / width).astype(int), columns - 1)
    for number, image in enumerate((truth.tissue, truth.bone)):
        left = dxa_pictures.GAP + number * (width + dxa_pictures.GAP)
        panel = indices[top : top + height, left : left + width]
        sampled = image[at_rows][:, at_columns].astype(np.float32)  # nearest pixel at the true aspect
        high = display_range(image)[1]  # grey from 0 (black) to the 99.5th percentile of the body (white)
        expected = np.clip(sampled * (255.0 / high), 0, 255).astype(np.uint8).astype(int) * (GREYS - 1) // 255
        np.testing.assert_array_equal(panel, expected)
        assert (panel == 0).mean() > 0.3 and (panel > GREYS // 2).mean() > 0.05  # background and body both there
    assert indices[top : top + height, dxa_pictures.GAP + width + 2].max() == WHITE  # the gap between the panels


def test_the_notes_are_in_the_subject_picture_title(root):
    run(root)
    with Image.open(subject_picture_path(qc(root), stem(NOTED))) as image:
        crimson = (np.asarray(image)[: TITLE_HEIGHT + 14] == CRIMSON).sum()
    with Image.open(subject_picture_path(qc(root), stem(CLEAN[0]))) as image:
        plain = (np.asarray(image)[: TITLE_HEIGHT + 14] == CRIMSON).sum()
    assert crimson > 20 and plain == 0


def test_pictures_land_only_in_the_metadata_folder(root):
    run(root)
    output = root / "dxas-processed"
    pngs = list(output.rglob("*.png"))
    assert len(pngs) == len(EIDS) - 1 + 2  # a picture per exam read, two sheets
    assert all(path.is_relative_to(output / "pipeline-unzip-dxa" / "qc") for path in pngs)
    assert sorted(item.eid for item in find_outputs(output)) == sorted(EIDS[:-1])
    assert not any(path.name.endswith(".png") for path in output.iterdir())


def test_without_qc_no_picture_is_drawn(root):
    run(root, qc=False)
    assert not qc(root).exists() or not list(qc(root).rglob("*.png"))


def test_shards_draw_their_own_sheets_and_together_cover_the_cohort(root):
    run(root, shard=(0, 2))
    run(root, shard=(1, 2))
    found = sheets(root)
    assert Counter(v for visits in found.values() for v in visits) == Counter(visit(eid) for eid in EIDS)
    assert {name.split("/")[1] for name in found} <= {"shard0of2", "shard1of2"}


def test_the_report_embeds_the_sheets_and_a_withdrawal_removes_those_that_show_the_eid(root):
    run(root)
    assert [path.name for path in read_stage("unzip_dxa", root / "dxas-processed").pictures] == [
        "contact-sheet-shard0of1-001.png", "contact-sheet-shard0of1-002.png"]
    withdraw([CLEAN[0]], root=root / "dxas-processed")
    left = sheets(root)
    assert all(visit(CLEAN[0]) not in visits for visits in left.values())
    assert list(left) == ["sheets/shard0of1/contact-sheet-shard0of1-002.png"]
    assert not subject_picture_path(qc(root), stem(CLEAN[0])).exists()
    assert subject_picture_path(qc(root), stem(CLEAN[1])).exists()
