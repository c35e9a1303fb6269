"""Contact sheets come from the cohort's state: partial runs and other shard counts never lose or repeat a visit."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ukbb_pipeline.config import ExtractSlicesConfig
from ukbb_pipeline.formats import Hdf5Writer, Output
from ukbb_pipeline.qc.pictures import FLAG_COLOUR, PALETTE
from ukbb_pipeline.qc.sheets import sheet_files, sheet_visits, subject_picture_path
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.manifest import OK, SKIPPED, ManifestRow, ManifestWriter
from ukbb_pipeline.runtime.runner import RunOptions
from ukbb_pipeline.runtime.sharding import in_shard
from ukbb_pipeline.stages import extract_slices
from ukbb_pipeline.synthetic import Phantom, sample_truth

PIXEL = 2.232142925262451 * 4
GRID = {"origin": (-250.0 + PIXEL / 2, -21.5 * PIXEL, 645.25 - PIXEL / 2), "spacing": (PIXEL,) * 3,
        "shape": (56, 44, 124)}
EIDS = [1000001 + index for index in range(7)]
SWAPPED = 1000003


def stem(eid: int) -> str:
    return f"{eid}_20201_2_0"


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> Path:
    """Seven small phantom volumes as unzip_mri writes them, and its manifest (one subject with a swap)."""
    root = tmp_path_factory.mktemp("volumes")
    folders = StageFolders(output=root / "mris-processed", stage="unzip_mri")
    for seed, eid in enumerate(EIDS):
        phantom = Phantom.random(seed)
        arrays = {f"{channel}_scan": np.rint(sample_truth(phantom, **GRID, channel=channel, include_bed=True)
                                             ).astype(np.uint16) for channel in ("fat", "water")}
        output = Output(arrays=arrays, attrs={"spacing": list(GRID["spacing"]), "origin": list(GRID["origin"]),
                                              "swapped_stations": []}, spacing_attr="spacing")
        Hdf5Writer().write(folders, stem(eid), output, fingerprint="unzip-mri")
    upstream(folders, OK, name="first")
    return root


def upstream(folders: StageFolders, status: str, *, name: str, when: str = "2026-01-01T00:00:00") -> None:
    writer = ManifestWriter(folders.meta, stage="unzip_mri", shard_index=0, shard_count=1)
    writer.path = folders.meta / f"manifest-unzip_mri-{name}.csv"
    for eid in EIDS:
        qc = {"swapped_stations": [3] if eid == SWAPPED else [], "max_seam_mismatch": 0.03} if status == OK else {}
        writer.add(ManifestRow(input=f"/raw/mris/{stem(eid)}.zip", status=status, eid=eid, instance=2,
                               output=str(folders.output / f"{stem(eid)}.h5"), settings_fingerprint="fp",
                               finished_at=when, qc=qc))
    writer.flush()


@pytest.fixture
def root(tmp_path, volumes) -> Path:
    (tmp_path / "mris-processed").symlink_to(volumes / "mris-processed")
    return tmp_path


def run(root: Path, *, eids=None, shard=(0, 1), overwrite=False, sheet_size=3, **settings) -> None:
    config = ExtractSlicesConfig(input_dir=str(root / "mris-processed"), output_dir=str(root / "slices"),
                                 sheet_size=sheet_size, **settings)
    options = RunOptions(n_jobs=1, only_eids=None if eids is None else frozenset(eids), shard_index=shard[0],
                         shard_count=shard[1], overwrite=overwrite)
    extract_slices.run(config, options=options, writer=Hdf5Writer(), qc=True)


def qc(root: Path) -> Path:
    return StageFolders(output=root / "slices", stage="extract_slices").qc


def sheets(root: Path) -> dict[str, list[str]]:
    return {str(path.relative_to(qc(root))): sheet_visits(path) for path in sheet_files(qc(root))}


def every_visit(root: Path) -> Counter:
    return Counter(visit for visits in sheets(root).values() for visit in visits)


def visit(eid: int) -> str:
    return f"{eid} visit 2"


def test_a_one_eid_rerun_leaves_every_sheet_and_its_subject_count_as_it_was(root):
    run(root)
    before = sheets(root)
    assert [len(visits) for visits in before.values()] == [3, 3, 1]
    assert every_visit(root) == Counter(visit(eid) for eid in EIDS)
    times = {path.name: path.stat().st_mtime_ns for path in sheet_files(qc(root))}

    run(root, eids=[1000005], overwrite=True)
    assert sheets(root) == before
    redrawn = [path.name for path in sheet_files(qc(root)) if path.stat().st_mtime_ns != times[path.name]]
    assert redrawn == ["contact-sheet-shard0of1-002.png"]  # only the sheet holding 1000005


def test_sheets_show_the_cohort_not_the_last_run(root):
    run(root, eids=EIDS[:2])
    assert every_visit(root) == Counter(visit(eid) for eid in EIDS[:2])
    run(root, eids=EIDS[4:])  # another subset: the first two stay, the new ones are added
    assert every_visit(root) == Counter(visit(eid) for eid in EIDS[:2] + EIDS[4:])
    assert all(len(visits) <= 3 for visits in sheets(root).values())


def test_sheets_of_another_shard_count_are_superseded_and_no_visit_appears_twice(root):
    run(root)  # one shard: every visit on shard0of1's sheets
    first = [eid for eid in EIDS if in_shard(stem(eid), index=0, count=2)]
    run(root, shard=(0, 2))
    counts = every_visit(root)
    assert counts == Counter(visit(eid) for eid in EIDS), "every visit once, none lost"
    on_new = {v for name, visits in sheets(root).items() if name.startswith("sheets/shard0of2/") for v in visits}
    assert on_new == {visit(eid) for eid in first}
    run(root, shard=(1, 2))
    assert every_visit(root) == Counter(visit(eid) for eid in EIDS)
    assert all(name.startswith(("sheets/shard0of2/", "sheets/shard1of2/")) for name in sheets(root))


def red_frames(path: Path) -> int:
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(pixels - np.array(FLAG_COLOUR)).sum(axis=2) < 6).sum())


def test_a_flag_survives_reruns_of_both_stages(root, volumes):
    run(root, sheet_size=10)
    (sheet,) = sheet_files(qc(root))
    flagged = red_frames(sheet)
    assert flagged > 0
    # unzip_mri run again: every input skipped (no QC columns); extract_slices redoes everything
    upstream(StageFolders(output=root / "mris-processed", stage="unzip_mri"), SKIPPED, name="again",
             when="2026-01-02T00:00:00")
    try:
        run(root, sheet_size=10, overwrite=True)
        assert red_frames(sheet) == flagged
    finally:
        (volumes / "mris-processed" / "pipeline-unzip-mri" / "manifest-unzip_mri-again.csv").unlink()


def test_subject_pictures_are_nested_by_eid_prefix_and_can_be_left_out(root):
    run(root, eids=EIDS[:1])
    picture = subject_picture_path(qc(root), stem(EIDS[0]))
    assert picture.parent == qc(root) / "subjects" / "10"
    image = Image.open(picture)
    assert image.mode == "P" and np.array_equal(np.asarray(image.getpalette()[: 3 * len(PALETTE)]).reshape(-1, 3),
                                                PALETTE)
    run(root, eids=EIDS[1:2], subject_pictures=False)
    assert not subject_picture_path(qc(root), stem(EIDS[1])).exists()
    assert visit(EIDS[1]) in every_visit(root), "the contact sheets still show the subject"
