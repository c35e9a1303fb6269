"""Stage extract_slices: slabs of every channel from stitched volumes, their attributes, QC pictures, bad inputs.

Inputs are the phantom's truth sampled onto unzip_mri's output grid (with the table and magnitude noise) and written
through the real writers with the contract's attributes; one test runs unzip_mri and extract_slices through main.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import matplotlib.image
import numpy as np
import pytest
from PIL import Image

from ukbb_pipeline.config import ExtractSlicesConfig
from ukbb_pipeline.errors import ConfigError
from ukbb_pipeline.formats import Hdf5Writer, Output, PickleWriter, Writer
from ukbb_pipeline.formats.pickle import safe_load
from ukbb_pipeline.formats.sidecar import read_sidecar
from ukbb_pipeline.qc.pictures import FLAG_COLOUR
from ukbb_pipeline.qc.sheets import sheet_files, upstream_flags
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile
from ukbb_pipeline.runtime.manifest import FAILED, OK, SKIPPED, ManifestRow, ManifestWriter, read_manifests
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary
from ukbb_pipeline.slices.midcoronal import auto_in_plane_step, auto_profile_stride, estimate_centre
from ukbb_pipeline.stages import extract_slices
from ukbb_pipeline.synthetic import Phantom, make_cohort, sample_truth
from ukbb_pipeline.synthetic.truth import output_axes

SMALL_PIXEL = 2.232142925262451 * 4
GRID = {  # unzip_mri's output grid for the small synthetic size: 56 x 44 columns/rows at 8.93 mm, neck to knee
    "origin": (-250.0 + SMALL_PIXEL / 2, -21.5 * SMALL_PIXEL, 645.25 - SMALL_PIXEL / 2),
    "spacing": (SMALL_PIXEL, SMALL_PIXEL, SMALL_PIXEL),
    "shape": (56, 44, 124),
}
MRI_STAGE_FOLDERS = "pipeline-unzip-mri"


@dataclass
class Volume:
    """An input volume as written, with its phantom (for the truth)."""

    stem: str
    phantom: Phantom | None
    fat: np.ndarray
    water: np.ndarray
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]


def magnitude(clean: np.ndarray, *, sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(clean.shape, dtype=np.float32) * np.float32(sigma)
    return np.rint(np.abs(clean + noise)).astype(np.uint16)


def phantom_volume(eid: int, seed: int) -> Volume:
    phantom = Phantom.random(seed)
    fat = magnitude(sample_truth(phantom, **GRID, channel="fat", include_bed=True), sigma=6.0, seed=seed)
    water = magnitude(sample_truth(phantom, **GRID, channel="water", include_bed=True), sigma=6.0, seed=seed + 99)
    return Volume(f"{eid}_20201_2_0", phantom, fat, water, GRID["origin"], GRID["spacing"])


def write_volume(folder: Path, volume: Volume, *, writer: Writer, **attrs: object) -> Path:
    """Write a volume as unzip_mri does (same writer, names and attributes)."""
    output = Output(
        arrays={"fat_scan": volume.fat, "water_scan": volume.water},
        attrs={"spacing": list(volume.spacing), "origin": list(volume.origin), "swapped_stations": [], **attrs},
        spacing_attr="spacing",
    )
    return writer.write(StageFolders(output=folder, stage="unzip_mri"), volume.stem, output, fingerprint="unzip-mri")


def write_upstream_manifest(folder: Path, flags: dict[str, dict[str, object]]) -> None:
    """An unzip_mri manifest naming each stem's zip, with its QC columns."""
    meta = StageFolders(output=folder, stage="unzip_mri").meta
    meta.mkdir(parents=True, exist_ok=True)
    manifest = ManifestWriter(meta, stage="unzip_mri", shard_index=0, shard_count=1)
    for stem, qc in flags.items():
        manifest.add(ManifestRow(input=f"/raw/mris/{stem}.zip", status=OK, eid=int(stem.split("_")[0]), instance=2,
                                 output=str(folder / f"{stem}.h5"), qc={"swapped_stations": [], **qc}))
    manifest.flush()


def truth_row(volume: Volume) -> int:
    xs, ys, zs = output_axes(origin=volume.origin, spacing=volume.spacing, shape=volume.fat.shape)
    return volume.phantom.mid_coronal_index(ys=ys, x=xs, z=zs)


def stage_config(root: Path, **settings: object) -> ExtractSlicesConfig:
    return ExtractSlicesConfig(input_dir=str(root / "mris-processed"), output_dir=str(root / "mri-mid-corr-slices"),
                               **settings)


def run_stage(root: Path, *, writer: Writer | None = None, qc: bool = True, overwrite: bool = False,
              **settings: object) -> StageSummary:
    (summary,) = extract_slices.run(stage_config(root, **settings), options=RunOptions(n_jobs=1, overwrite=overwrite),
                                    writer=writer or Hdf5Writer(), qc=qc)
    return summary


@pytest.fixture(scope="module")
def cohort() -> list[Volume]:
    return [phantom_volume(1000001 + index, seed) for index, seed in enumerate((0, 1, 2))]


@pytest.fixture(scope="module")
def hdf5_run(tmp_path_factory, cohort) -> tuple[Path, StageSummary]:
    """The cohort as unzip_mri HDF5 volumes (the second subject flagged upstream), extracted with the defaults."""
    root = tmp_path_factory.mktemp("hdf5-run")
    for volume in cohort:
        write_volume(root / "mris-processed", volume, writer=Hdf5Writer())
    write_upstream_manifest(root / "mris-processed", {
        cohort[0].stem: {"max_seam_mismatch": 0.03},
        cohort[1].stem: {"swapped_stations": [3], "max_seam_mismatch": 1.17},
        cohort[2].stem: {"max_seam_mismatch": 0.04},
    })
    return root, run_stage(root)


def read_slab(path: Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    with h5py.File(path) as handle:
        return {name: handle[name][()] for name in handle}, dict(handle.attrs)


def test_every_channel_takes_the_same_rows_of_its_own_image(hdf5_run, cohort):
    root, summary = hdf5_run
    assert summary.counts[OK] == len(cohort)
    for volume in cohort:
        arrays, attrs = read_slab(root / "mri-mid-corr-slices" / f"{volume.stem}.h5")
        rows = np.asarray(attrs["source_rows"])
        assert sorted(arrays) == ["fat_scan", "water_scan"]
        assert arrays["fat_scan"].shape == (56, 11, 124)
        assert arrays["fat_scan"].dtype == np.uint16
        np.testing.assert_array_equal(arrays["fat_scan"], volume.fat[:, rows, :])
        np.testing.assert_array_equal(arrays["water_scan"], volume.water[:, rows, :])


def test_fat_and_water_slices_differ(hdf5_run, cohort):
    """The original script wrote the fat slices into the water channel; here water is water."""
    root, _ = hdf5_run
    arrays, _ = read_slab(root / "mri-mid-corr-slices" / f"{cohort[0].stem}.h5")
    fat, water = arrays["fat_scan"].astype(float), arrays["water_scan"].astype(float)
    assert np.corrcoef(fat.ravel(), water.ravel())[0, 1] < 0.5
    assert np.abs(fat - water).mean() > 100


def test_attributes_place_the_slab_and_name_the_centre(hdf5_run, cohort):
    root, _ = hdf5_run
    for volume in cohort:
        _, attrs = read_slab(root / "mri-mid-corr-slices" / f"{volume.stem}.h5")
        centre = int(attrs["centre_index"])
        assert abs(centre - truth_row(volume)) <= 1
        assert int(attrs["window_shift"]) == 0
        assert list(attrs["source_rows"]) == list(range(centre - 10, centre + 11, 2))
        sx, sy, sz = volume.spacing
        np.testing.assert_allclose(attrs["spacing"], [sx, 2 * sy, sz])
        ox, oy, oz = volume.origin
        np.testing.assert_allclose(attrs["origin"], [ox, oy + (centre - 10) * sy, oz])
        assert "weighted median" in str(attrs["method"])
        assert attrs["settings_fingerprint"]


def test_manifest_rows_carry_the_centre_and_the_window(hdf5_run, cohort):
    root, _ = hdf5_run
    rows = {Path(row["input"]).name: row for row in read_manifests(root / "mri-mid-corr-slices")}
    for volume in cohort:
        row = rows[f"{volume.stem}.h5"]
        assert row["status"] == OK
        assert abs(int(row["centre_index"]) - truth_row(volume)) <= 1
        assert row["window_shift"] == "0"


def crop_rows(volume: Volume, start: int, stop: int, stem: str) -> Volume:
    sy = volume.spacing[1]
    origin = (volume.origin[0], volume.origin[1] + start * sy, volume.origin[2])
    return Volume(stem, None, volume.fat[:, start:stop].copy(), volume.water[:, start:stop].copy(), origin,
                  volume.spacing)


@pytest.mark.parametrize(
    ("start", "stop", "side"), [(22, 44, "first"), (8, 33, "last")], ids=["near-row-0", "near-last-row"]
)
def test_the_window_moves_inward_at_both_edges_of_the_volume(tmp_path, cohort, start, stop, side):
    """Volumes cut so that the body's centre lies within 10 rows of an edge: the window keeps 11 rows in range."""
    volume = crop_rows(cohort[0], start, stop, "1000009_20201_2_0")
    write_volume(tmp_path / "mris-processed", volume, writer=Hdf5Writer())
    summary = run_stage(tmp_path, qc=False)
    assert summary.counts[OK] == 1
    arrays, attrs = read_slab(tmp_path / "mri-mid-corr-slices" / f"{volume.stem}.h5")
    n_rows = stop - start
    centre, shift = int(attrs["centre_index"]), int(attrs["window_shift"])
    expected = estimate_centre(
        lambda rows: volume.fat[:, rows, :], n_rows=n_rows, stride=auto_profile_stride(volume.spacing[1]),
        in_plane_step=auto_in_plane_step(volume.spacing[0], volume.spacing[2]),
    ).centre
    assert centre == expected  # the chosen row, before the shift
    first = 0 if side == "first" else n_rows - 21
    assert shift == first - (centre - 10)
    assert (shift > 0) if side == "first" else (shift < 0)
    assert list(attrs["source_rows"]) == list(range(first, first + 21, 2))
    np.testing.assert_array_equal(arrays["water_scan"], volume.water[:, first : first + 21 : 2, :])
    np.testing.assert_allclose(attrs["origin"][1], volume.origin[1] + first * volume.spacing[1])
    row = read_manifests(tmp_path / "mri-mid-corr-slices")[0]
    assert f"window moved {shift:+d} rows" in row["reason"]


def test_three_neighbours_spacing_one_on_the_command_line_gives_seven_adjacent_rows(tmp_path, run_main, cohort):
    volume = cohort[2]
    write_volume(tmp_path / "mris-processed", volume, writer=Hdf5Writer())
    result = run_main("stage=extract_slices", f"paths.root={tmp_path}", "stage.n_neighbours=3", "stage.spacing=1",
                      "n_jobs=1")
    assert result.returncode == 0, result.stderr[-2000:]
    arrays, attrs = read_slab(tmp_path / "mri-mid-corr-slices" / f"{volume.stem}.h5")
    centre = int(attrs["centre_index"])
    assert list(attrs["source_rows"]) == list(range(centre - 3, centre + 4))
    assert arrays["fat_scan"].shape == (56, 7, 124)
    np.testing.assert_array_equal(arrays["fat_scan"], volume.fat[:, centre - 3 : centre + 4, :])
    np.testing.assert_allclose(attrs["spacing"], volume.spacing)


def test_pickled_volumes_give_pickled_slabs_in_the_original_layout(tmp_path, cohort):
    volume = cohort[1]
    write_volume(tmp_path / "mris-processed", volume, writer=PickleWriter())
    summary = run_stage(tmp_path, writer=PickleWriter(), qc=False)
    assert summary.counts[OK] == 1
    path = tmp_path / "mri-mid-corr-slices" / f"{volume.stem}.pkl"
    payload = safe_load(path)
    assert sorted(payload) == ["fat_scan", "pixel_spacing", "water_scan"]
    assert payload["fat_scan"].dtype == np.float32
    sidecar = read_sidecar(StageFolders(output=path.parent, stage="extract_slices"), volume.stem)["attrs"]
    rows = sidecar["source_rows"]
    np.testing.assert_array_equal(payload["fat_scan"], volume.fat[:, rows, :].astype(np.float32))
    np.testing.assert_array_equal(payload["water_scan"], volume.water[:, rows, :].astype(np.float32))
    sx, sy, sz = volume.spacing
    np.testing.assert_allclose(payload["pixel_spacing"], [sx, 2 * sy, sz])
    np.testing.assert_allclose(sidecar["origin"], [volume.origin[0], volume.origin[1] + rows[0] * sy,
                                                   volume.origin[2]])  # from unzip_mri's sidecar
    assert abs(sidecar["centre_index"] - truth_row(volume)) <= 1


def test_a_stem_with_both_hdf5_and_pickle_is_read_once_from_hdf5(tmp_path, cohort):
    folder = tmp_path / "mris-processed"
    write_volume(folder, cohort[0], writer=Hdf5Writer())
    write_volume(folder, cohort[0], writer=PickleWriter())
    write_volume(folder, cohort[1], writer=PickleWriter())
    found = extract_slices.discover_volumes(folder)
    assert [item.path.name for item in found] == [f"{cohort[0].stem}.h5", f"{cohort[1].stem}.pkl"]


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_qc_pictures_are_valid_pngs(hdf5_run, cohort):
    root, _ = hdf5_run
    qc = root / "mri-mid-corr-slices" / "pipeline-extract-slices" / "qc"
    for volume in cohort:
        picture = qc / "subjects" / volume.stem[:2] / f"{volume.stem}.png"
        assert is_png(picture)
        pixels = matplotlib.image.imread(picture)
        assert pixels.ndim == 3
        assert pixels.shape[0] > 300
        assert pixels.shape[1] > 800
    (sheet,) = sheet_files(qc)
    assert sheet.relative_to(qc).as_posix() == "sheets/shard0of1/contact-sheet-shard0of1-001.png"
    assert is_png(sheet)
    assert matplotlib.image.imread(sheet).shape[1] >= 3 * 120


def red_share(picture: np.ndarray, columns: slice) -> float:
    rgb = (picture[..., :3] * 255).round()
    red = np.all(np.abs(rgb - np.array(FLAG_COLOUR)) < 2, axis=-1)
    return float(red[:, columns].mean())


def test_the_contact_sheet_frames_the_subject_flagged_upstream(hdf5_run):
    """Tiles are in stem order; the second subject has a swapped station in unzip_mri's manifest."""
    root, _ = hdf5_run
    (sheet,) = sheet_files(root / "mri-mid-corr-slices" / "pipeline-extract-slices" / "qc")
    picture = matplotlib.image.imread(sheet)
    cell = 120 + 6
    tiles = [slice(6 + index * cell, 6 + index * cell + 120) for index in range(3)]
    assert red_share(picture, tiles[0]) == 0
    assert red_share(picture, tiles[2]) == 0
    frame = slice(tiles[1].start - 3, tiles[1].start)
    assert red_share(picture, frame) > 0.5


def test_upstream_flags_read_unzip_mri_manifest_cells():
    flags = upstream_flags
    assert flags({"swapped_stations": "", "max_seam_mismatch": "0.03"}, seam_mismatch_limit=0.2) == []
    assert flags({"swapped_stations": "2 5", "max_seam_mismatch": "nan"}, seam_mismatch_limit=0.2) == [
        "swapped station 2 5"
    ]
    assert flags({"swapped_stations": "", "max_seam_mismatch": "0.41"}, seam_mismatch_limit=0.2) == [
        "seam mismatch 0.41"
    ]
    assert flags({"max_seam_mismatch": "0.41"}, seam_mismatch_limit=None) == []
    assert flags(None, seam_mismatch_limit=0.2) == []


def test_contact_sheets_hold_sheet_size_subjects_and_stale_pages_go(tmp_path, cohort):
    for volume in cohort:
        write_volume(tmp_path / "mris-processed", volume, writer=Hdf5Writer())
    qc = tmp_path / "mri-mid-corr-slices" / "pipeline-extract-slices" / "qc"
    run_stage(tmp_path, sheet_size=2)
    assert [path.name for path in sheet_files(qc)] == [
        "contact-sheet-shard0of1-001.png", "contact-sheet-shard0of1-002.png"]
    summary = run_stage(tmp_path, sheet_size=100)  # everything skipped, still on the sheet
    assert summary.counts[SKIPPED] == 3
    assert [path.name for path in sheet_files(qc)] == ["contact-sheet-shard0of1-001.png"]


def test_qc_false_draws_nothing(tmp_path, cohort):
    write_volume(tmp_path / "mris-processed", cohort[0], writer=Hdf5Writer())
    assert run_stage(tmp_path, qc=False).counts[OK] == 1
    assert not list((tmp_path / "mri-mid-corr-slices").rglob("*.png"))


def test_rerun_skips_and_a_changed_setting_is_refused_unless_overwrite(tmp_path, cohort):
    write_volume(tmp_path / "mris-processed", cohort[0], writer=Hdf5Writer())
    assert run_stage(tmp_path, qc=False).counts[OK] == 1
    assert run_stage(tmp_path, qc=False).counts[SKIPPED] == 1
    with pytest.raises(ConfigError, match="made with other settings"):
        run_stage(tmp_path, qc=False, n_neighbours=2)
    again = run_stage(tmp_path, qc=False, n_neighbours=2, overwrite=True)
    assert again.counts[OK] == 1
    assert "overwrite=true" in again.rows[0].reason


def write_bad_inputs(folder: Path, good: Volume) -> dict[str, str]:
    """Broken inputs beside a good one; returns stem -> a word the failure reason must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "1000101_20201_2_0.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 200)
    with h5py.File(folder / "1000102_20201_2_0.h5", "w") as handle:
        handle["water_scan"] = good.water
        handle.attrs["spacing"] = list(good.spacing)
    with h5py.File(folder / "1000103_20201_2_0.h5", "w") as handle:
        handle["fat_scan"] = good.fat
        handle.attrs["spacing"] = [2.0, 0.0, 2.0]
    write_volume(folder, crop_rows(good, 10, 25, "1000104_20201_2_0"), writer=Hdf5Writer())
    blank = Volume("1000105_20201_2_0", None, magnitude(np.zeros((56, 44, 124), np.float32), sigma=6, seed=1),
                   good.water, good.origin, good.spacing)
    write_volume(folder, blank, writer=Hdf5Writer())
    (folder / "1000106_20201_2_0.pkl").write_bytes(b"\x80\x04not a pickle")
    return {
        "1000101_20201_2_0": "HDF5",
        "1000102_20201_2_0": "no fat_scan",
        "1000103_20201_2_0": "spacing",
        "1000104_20201_2_0": "15 coronal rows",
        "1000105_20201_2_0": "no body",
        "1000106_20201_2_0": "pickle",
    }


def test_bad_inputs_fail_with_a_one_line_reason_and_the_rest_go_on(tmp_path, cohort):
    folder = tmp_path / "mris-processed"
    expected = write_bad_inputs(folder, cohort[0])
    write_volume(folder, cohort[0], writer=Hdf5Writer())
    summary = run_stage(tmp_path)
    by_stem = {Path(row.input).name.split(".")[0]: row for row in summary.rows}
    assert by_stem[cohort[0].stem].status == OK
    for stem, word in expected.items():
        row = by_stem[stem]
        assert row.status == FAILED, stem
        assert word in row.reason, (stem, row.reason)
        assert "\n" not in row.reason, row.reason
        assert "unexpected" not in row.reason, row.reason
    outputs = sorted(path.name for path in (tmp_path / "mri-mid-corr-slices").iterdir())
    assert outputs == [f"{cohort[0].stem}.h5", "pipeline-extract-slices"]
    (sheet,) = sheet_files(tmp_path / "mri-mid-corr-slices" / "pipeline-extract-slices" / "qc")
    assert is_png(sheet)  # failed subjects appear as grey tiles with their reason


def test_process_volume_reads_a_fraction_of_the_rows_of_an_hdf5_volume(tmp_path, monkeypatch):
    """On 2.23 mm rows the centre comes from ~1/6 of the fat rows; water is read only at the slab's rows."""
    phantom = Phantom.random(7)
    pixel = SMALL_PIXEL / 4
    grid = {"origin": (-250 + pixel / 2, -86.5 * pixel, 640.0), "spacing": (pixel, pixel, 12.0),
            "shape": (224, 174, 92)}
    fat = magnitude(sample_truth(phantom, **grid, include_bed=True), sigma=6.0, seed=7)
    volume = Volume("1000007_20201_2_0", phantom, fat, fat[::-1].copy(), grid["origin"], grid["spacing"])
    path = write_volume(tmp_path, volume, writer=Hdf5Writer())
    reads: dict[str, int] = {}
    original = extract_slices.open_volume

    def counting_open(*args, **kwargs):
        opened = original(*args, **kwargs)
        close = opened.close

        def close_and_count():
            reads.update({channel: opened.rows_read(channel) for channel in opened.info.channels})
            close()

        opened.close = close_and_count
        return opened

    monkeypatch.setattr(extract_slices, "open_volume", counting_open)
    settings = extract_slices.SlabSettings(n_neighbours=5, spacing=2, profile_stride=None)
    output = extract_slices.process_volume(InputFile(path=path, stem=volume.stem), settings=settings)
    assert abs(output.attrs["centre_index"] - truth_row(volume)) <= 1
    assert reads["water_scan"] == 11
    assert reads["fat_scan"] <= 174 // 6 + 2 + 11


@pytest.mark.slow
def test_main_unzip_mri_then_extract_slices_end_to_end(tmp_path, run_main):
    """Synthetic zips -> unzip_mri -> extract_slices, all through main.py; the centre against the phantom."""
    subjects = make_cohort(tmp_path / "raw", n_subjects=2, size="small", seed=3)
    unzip = run_main("stage=unzip_mri", f"paths.root={tmp_path}", "n_jobs=1")
    assert unzip.returncode == 0, unzip.stderr[-2000:]
    result = run_main("stage=extract_slices", f"paths.root={tmp_path}", "n_jobs=1", "stage.n_neighbours=3",
                      "stage.spacing=1")
    assert result.returncode == 0, result.stderr[-2000:]
    for subject in subjects:
        stem = f"{subject.eid}_20201_2_0"
        with h5py.File(tmp_path / "mris-processed" / f"{stem}.h5") as handle:
            grid = {"origin": tuple(handle.attrs["origin"]), "spacing": tuple(handle.attrs["spacing"]),
                    "shape": handle["fat_scan"].shape}
            source_water = handle["water_scan"][()]
        arrays, attrs = read_slab(tmp_path / "mri-mid-corr-slices" / f"{stem}.h5")
        xs, ys, zs = output_axes(**grid)
        truth = subject.phantom.mid_coronal_index(ys=ys, x=xs, z=zs)
        centre = int(attrs["centre_index"])
        assert abs(centre - truth) <= 1
        assert arrays["water_scan"].shape == (grid["shape"][0], 7, grid["shape"][2])
        np.testing.assert_array_equal(arrays["water_scan"], source_water[:, centre - 3 : centre + 4, :])
    qc = tmp_path / "mri-mid-corr-slices" / "pipeline-extract-slices" / "qc"
    assert len(list((qc / "subjects").rglob("*.png"))) == 2
    assert len(sheet_files(qc)) == 1
    assert np.isfinite(attrs["origin"]).all()


def test_nifti_volumes_give_the_same_slab_as_hdf5_and_the_flags_travel_with_it(tmp_path, cohort):
    from ukbb_pipeline.formats.nifti import NiftiWriter

    volume = cohort[1]
    flags = {"swapped_stations": [3], "fat_water_fixed": False, "seam_mismatch_fat": [0.1, 0.4],
             "seam_mismatch_water": [0.05, float("nan")]}
    write_volume(tmp_path / "h5" / "mris-processed", volume, writer=Hdf5Writer(), **flags)
    write_volume(tmp_path / "nii" / "mris-processed", volume, writer=NiftiWriter(), **flags)
    assert run_stage(tmp_path / "h5", writer=Hdf5Writer(), qc=False).counts[OK] == 1
    assert run_stage(tmp_path / "nii", writer=NiftiWriter(), qc=False).counts[OK] == 1
    from ukbb_pipeline.formats.outputs import open_volume, read_attrs

    slabs = [tmp_path / "h5" / "mri-mid-corr-slices" / f"{volume.stem}.h5",
             tmp_path / "nii" / "mri-mid-corr-slices" / volume.stem]
    read = []
    for path in slabs:
        with open_volume(path) as slab:
            rows = np.arange(slab.info.shape[1])
            read.append((slab.rows("fat_scan", rows), slab.rows("water_scan", rows), slab.info.origin))
        attrs = read_attrs(path)
        assert list(attrs["swapped_stations"]) == [3] and not attrs["fat_water_fixed"]
        assert attrs["max_seam_mismatch"] == pytest.approx(0.4)  # the worst seam of any channel
    np.testing.assert_array_equal(read[0][0], read[1][0])
    np.testing.assert_array_equal(read[0][1], read[1][1])
    np.testing.assert_allclose(read[0][2], read[1][2])
    source_rows = read_attrs(slabs[0])["source_rows"]
    np.testing.assert_array_equal(read[0][0], volume.fat[:, source_rows, :])  # the truth: the rows of the input


SPINE_PIXEL = 2.232142925262451 * 2
SPINE_GRID = {"origin": (-250.0 + SPINE_PIXEL / 2, -43.5 * SPINE_PIXEL, 645.25 - 4.0),
              "spacing": (SPINE_PIXEL, SPINE_PIXEL, 8.0), "shape": (112, 88, 138)}


def spine_volume(eid: int, seed: int, **spine: float) -> Volume:
    """A volume at half the full resolution (the spine tracker needs vertebrae a few voxels wide)."""
    import dataclasses

    phantom = dataclasses.replace(Phantom.random(seed), **spine)
    fat = magnitude(sample_truth(phantom, **SPINE_GRID, channel="fat", include_bed=True), sigma=6.0, seed=seed)
    water = magnitude(sample_truth(phantom, **SPINE_GRID, channel="water", include_bed=True), sigma=6.0,
                      seed=seed + 99)
    return Volume(f"{eid}_20201_2_0", phantom, fat, water, SPINE_GRID["origin"], SPINE_GRID["spacing"])


@pytest.fixture(scope="module")
def spine_inputs(tmp_path_factory) -> tuple[Path, list[Volume]]:
    """Two subjects with curved spines, and one whose water image is blank (no spine can be seen)."""
    root = tmp_path_factory.mktemp("spine-inputs")
    volumes = [spine_volume(1000101, 11, lordosis=28.0, kyphosis=16.0, scoliosis=12.0),
               spine_volume(1000102, 12, lordosis=10.0, kyphosis=6.0)]
    blank = spine_volume(1000103, 13)
    volumes.append(Volume(blank.stem, blank.phantom, blank.fat, np.zeros_like(blank.water), blank.origin,
                          blank.spacing))
    for volume in volumes:
        write_volume(root / "mris-processed", volume, writer=Hdf5Writer())
    return root, volumes


def spine_truth_rows(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    _, ys, zs = output_axes(origin=volume.origin, spacing=volume.spacing, shape=volume.fat.shape)
    _, y = volume.phantom.spine_centre(zs)
    low, high = volume.phantom.trunk_spine_z()
    return (y - ys[0]) / volume.spacing[1], (zs >= low) & (zs <= high)


def test_method_spine_curves_the_slab_along_the_spine_and_writes_its_centreline(spine_inputs, tmp_path):
    source, volumes = spine_inputs
    root = tmp_path
    summary = run_spine(source, root, method="spine")
    assert summary.counts[OK] == 3
    for volume in volumes[:2]:
        arrays, attrs = read_slab(root / "mri-mid-corr-slices" / f"{volume.stem}.h5")
        centres = np.asarray(attrs["centre_rows"])
        truth, trunk = spine_truth_rows(volume)
        assert attrs["method"].startswith("spine tracker")
        assert np.median(np.abs(centres - truth)[trunk]) <= 1.0  # the slab's centre is on the spine, per z
        assert np.ptp(centres[trunk]) >= 3  # and it bends with it
        for z in (20, 60, 100):  # each z takes its own rows, the same in every channel
            rows = centres[z] + 2 * np.arange(-5, 6)
            np.testing.assert_array_equal(arrays["fat_scan"][:, :, z], volume.fat[:, rows, z])
            np.testing.assert_array_equal(arrays["water_scan"][:, :, z], volume.water[:, rows, z])
        centreline = np.asarray(attrs["spine_centreline_lps_mm"])
        assert centreline.shape == (138, 3)
        x, y = volume.phantom.spine_centre(centreline[:, 2])
        assert np.median(np.abs(centreline[trunk, 1] - y[trunk])) <= SPINE_PIXEL
        assert np.median(np.abs(centreline[trunk, 0] - x[trunk])) <= SPINE_PIXEL
        assert np.asarray(attrs["spine_tracked"])[trunk].all()
        picture = sheets_path(root, volume.stem)
        with Image.open(picture) as image:
            assert image.height >= 500 and image.width > 100
    arrays, attrs = read_slab(root / "mri-mid-corr-slices" / f"{volumes[2].stem}.h5")
    assert attrs["method"] == extract_slices.SPINE_FALLBACK
    assert "spine_rows" not in attrs
    assert len(set(np.asarray(attrs["centre_rows"]).tolist())) == 1  # a flat slab
    (row,) = [r for r in summary.rows if volumes[2].stem in r.input]
    assert "spine not tracked" in row.reason


def test_method_spine_with_a_flat_slab_keeps_one_row_the_spines_median(spine_inputs, tmp_path):
    source, volumes = spine_inputs
    root = tmp_path
    run_spine(source, root, method="spine", slab="flat", qc=False)
    arrays, attrs = read_slab(root / "mri-mid-corr-slices" / f"{volumes[0].stem}.h5")
    centres = np.asarray(attrs["centre_rows"])
    rows = np.asarray(attrs["source_rows"])
    assert set(centres.tolist()) == {rows[5]} == {attrs["centre_index"]}
    tracked = np.asarray(attrs["spine_tracked"]).astype(bool)
    assert attrs["centre_index"] == round(float(np.median(np.asarray(attrs["spine_rows"])[tracked])))
    np.testing.assert_array_equal(arrays["fat_scan"], volumes[0].fat[:, rows, :])


def test_the_default_and_the_paper_keep_the_weighted_median_row_as_a_flat_slab(hdf5_run, cohort):
    root, _ = hdf5_run
    _arrays, attrs = read_slab(root / "mri-mid-corr-slices" / f"{cohort[0].stem}.h5")
    assert attrs["method"] == extract_slices.METHOD
    assert np.asarray(attrs["centre_rows"]).tolist() == [attrs["source_rows"][5]] * 124
    assert ExtractSlicesConfig().method.value == "median"


def run_spine(source: Path, root: Path, *, qc: bool = True, **settings: object) -> StageSummary:
    config = ExtractSlicesConfig(input_dir=str(source / "mris-processed"),
                                 output_dir=str(root / "mri-mid-corr-slices"), **settings)
    (summary,) = extract_slices.run(config, options=RunOptions(n_jobs=1), writer=Hdf5Writer(), qc=qc)
    return summary


def sheets_path(root: Path, stem: str) -> Path:
    from ukbb_pipeline.qc.spine_pictures import spine_picture_path

    return spine_picture_path(StageFolders(output=root / "mri-mid-corr-slices", stage="extract_slices").qc, stem)
