"""collect's QC pictures: the pairs a shard file holds, MRI row beside DXA, in the metadata folder only."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from paired_inputs import Visit, write_visits
from PIL import Image

from ukbb_pipeline.config import CollectConfig
from ukbb_pipeline.formats import Hdf5Writer, collection
from ukbb_pipeline.qc import pair_pictures
from ukbb_pipeline.qc.pictures import FLAG_COLOUR, scaled
from ukbb_pipeline.qc.report import read_stage
from ukbb_pipeline.qc.sheets import sheet_files, sheet_visits
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.runner import RunOptions
from ukbb_pipeline.stages import collect
from ukbb_pipeline.withdraw import withdraw

VISITS = [Visit(1000001), Visit(1000002), Visit(1000002, 3), Visit(1000003), Visit(1000004)]
FLAGS = {
    1000001: {"swapped_stations": [3], "fat_water_fixed": False, "max_seam_mismatch": 0.05},  # unfixed swap: out
    1000002: {"swapped_stations": [2], "fat_water_fixed": True, "max_seam_mismatch": 0.05},  # fixed: in, flagged
}


def run(root: Path, *, shard=(0, 1), qc=True, **overrides):
    config = CollectConfig(input_dir=str(root / "mri-mid-corr-slices"), dxa_dir=str(root / "dxas-processed"),
                           output_dir=str(root / "collection"), **overrides)
    options = RunOptions(n_jobs=1, shard_index=shard[0], shard_count=shard[1])
    return collect.run(config, options=options, writer=Hdf5Writer(), qc=qc)[0]


def qc(root: Path) -> Path:
    return StageFolders(output=root / "collection", stage="collect").qc


def red_pixels(path: Path) -> int:
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(pixels - np.array(FLAG_COLOUR)).sum(axis=2) < 6).sum())


def test_the_sheet_lists_exactly_the_collected_pairs_and_not_the_left_out_one(tmp_path):
    write_visits(tmp_path, VISITS, flags=FLAGS)
    summary = run(tmp_path)
    assert summary.counts["skipped"] == 1  # 1000001 left out
    (sheet,) = sheet_files(qc(tmp_path))
    assert sheet.relative_to(qc(tmp_path)).as_posix() == "sheets/shard0of1/contact-sheet-shard0of1-001.png"
    assert sheet_visits(sheet) == ["1000002 visit 2", "1000002 visit 3", "1000003 visit 2", "1000004 visit 2"]
    with h5py.File(tmp_path / "collection" / "collection-shard0of1.h5") as handle:
        held = [f"{eid} visit {instance}" for eid, instance in zip(handle["eids"], handle["instances"], strict=True)]
    assert sheet_visits(sheet) == held


def test_a_pair_kept_with_flags_is_framed_and_clean_pairs_are_not(tmp_path):
    write_visits(tmp_path, VISITS, flags=FLAGS)
    run(tmp_path)
    with h5py.File(tmp_path / "collection" / "collection-shard0of1.h5") as handle:
        tiles = [pair_pictures.pair_tile(handle, row) for row in range(handle["eids"].shape[0])]
    assert [bool(tile.flags) for tile in tiles] == [True, True, False, False]  # both visits of 1000002
    assert tiles[0].flags == ["swapped station 2 (fixed)"]
    (sheet,) = sheet_files(qc(tmp_path))
    assert red_pixels(sheet) > 2000  # two frames
    clean = tmp_path / "clean"
    write_visits(clean, VISITS[3:])
    run(clean)
    assert red_pixels(sheet_files(qc(clean))[0]) == 0


def test_a_tile_is_the_mri_row_beside_the_dxa_at_the_collected_geometry(tmp_path):
    write_visits(tmp_path, VISITS[3:])
    run(tmp_path)
    with h5py.File(tmp_path / "collection" / "collection-shard0of1.h5") as handle:
        tile = pair_pictures.pair_tile(handle, 0)
        mri, dxa = handle["mri"][0], handle["dxa"][0]
        mri_channels = list(handle["mri"].attrs["channels"])
        dxa_channels = list(handle["dxa"].attrs["channels"])
        np.testing.assert_allclose(handle["dxa_pixel_spacing"][0], handle["mri_pixel_spacing"][0])  # both 2 mm
    magenta, green = tile.fat.T, tile.water.T  # display orientation: rows head -> feet
    width = mri.shape[2]
    fat, water = mri[mri_channels.index("fat_scan")], mri[mri_channels.index("water_scan")]
    tissue, bone = dxa[dxa_channels.index("tissue")], dxa[dxa_channels.index("bone")]
    np.testing.assert_allclose(magenta[: mri.shape[1], :width], scaled(fat))
    np.testing.assert_allclose(green[: mri.shape[1], :width], scaled(water))
    right = width + pair_pictures.TILE_GAP_PX
    np.testing.assert_allclose(magenta[: dxa.shape[1], right:], scaled(tissue))
    np.testing.assert_allclose(green[: dxa.shape[1], right:], scaled(bone))
    assert not magenta[:, width:right].any()  # the black gap between them
    assert tile.spacing_xz == (2.0, 2.0)


def test_an_unchanged_shard_is_not_drawn_again_and_a_changed_one_is(tmp_path):
    write_visits(tmp_path, VISITS[1:], flags=FLAGS)
    run(tmp_path)
    (sheet,) = sheet_files(qc(tmp_path))
    stamp = sheet.stat().st_mtime_ns
    run(tmp_path)
    assert sheet.stat().st_mtime_ns == stamp
    write_visits(tmp_path, [Visit(1000005)])
    run(tmp_path)
    assert sheet_visits(sheet)[-1] == "1000005 visit 2"


def test_pages_of_sheet_size_and_shards_each_their_own(tmp_path):
    write_visits(tmp_path, VISITS[1:])
    run(tmp_path, shard=(0, 2))
    run(tmp_path, shard=(1, 2))
    shown = []
    for index in (0, 1):
        shard_file = tmp_path / "collection" / f"collection-shard{index}of2.h5"
        held = collection.stored_visits(shard_file)
        drawn = pair_pictures.update_pair_sheets(shard_file, folders=StageFolders(tmp_path / "collection", "collect"),
                                                 sheet_size=1, force=True)
        assert len(drawn) == len(held)
        assert all(path.parent.name == f"shard{index}of2" for path in drawn)
        shown += [visit for path in drawn for visit in sheet_visits(path)]
    assert sorted(shown) == sorted(f"{v.eid} visit {v.instance}" for v in VISITS[1:])


def test_pictures_are_only_in_the_metadata_folder_the_report_embeds_them_and_withdraw_removes_them(tmp_path):
    write_visits(tmp_path, VISITS, flags=FLAGS)
    run(tmp_path)
    output = tmp_path / "collection"
    assert [path.relative_to(output).parts[:2] for path in output.rglob("*.png")] == [("pipeline-collect", "qc")]
    assert collection.collection_files(output) == [output / "collection-shard0of1.h5"]
    assert [path.name for path in read_stage("collect", output).pictures] == ["contact-sheet-shard0of1-001.png"]
    withdraw([1000003], root=tmp_path)
    assert sheet_files(qc(tmp_path)) == []
    run(tmp_path)  # drawn again from the rebuilt shard, without the withdrawn EID
    (sheet,) = sheet_files(qc(tmp_path))
    assert sheet_visits(sheet) == ["1000002 visit 2", "1000002 visit 3", "1000004 visit 2"]


def test_without_qc_no_picture(tmp_path):
    write_visits(tmp_path, VISITS[3:])
    run(tmp_path, qc=False)
    assert not list((tmp_path / "collection").rglob("*.png"))
