"""unzip_mri against the phantom truth of the synthetic generator: accuracy, seams, position, quirks, swaps."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from ukbb_pipeline.api import stitch_mri_zip
from ukbb_pipeline.dicomio.zipread import ZipMembers
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.formats.pickle import safe_load
from ukbb_pipeline.formats.sidecar import read_sidecar
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import parse_input
from ukbb_pipeline.runtime.manifest import read_manifests
from ukbb_pipeline.stages.unzip_mri import process_mri_zip
from ukbb_pipeline.synthetic import MriQuirks, MriTruth, Phantom, write_mri_zip
from ukbb_pipeline.synthetic.truth import output_axes

GAINS = (1.0, 1.2, 0.85, 1.1, 0.8, 1.15)
HARD = MriQuirks(station_gains=GAINS, slab_edge_loss=True)  # every station at its own level, noisy slab edges


@pytest.fixture(scope="module")
def make_zip(tmp_path_factory) -> Callable[..., MriTruth]:
    """Write a small synthetic Dixon zip (once per arguments) and return its truth."""
    folder = tmp_path_factory.mktemp("mris")
    made: dict[tuple, MriTruth] = {}

    def _make(quirks: MriQuirks | None = None, *, seed: int = 0, eid: int | None = None) -> MriTruth:
        quirks = quirks or MriQuirks()
        key = (quirks, seed, eid)
        if key not in made:
            eid_ = eid or 1000000 + 100 * seed + len(made)
            made[key] = write_mri_zip(folder / f"{eid_}_20201_2_0.zip", eid=eid_, phantom=Phantom.random(seed),
                                      quirks=quirks, seed=seed)
        return made[key]

    return _make


def _process(truth: MriTruth, **settings):
    return stitch_mri_zip(truth.path, **settings)  # unzip_mri's options, flat, as the Python API takes them


def _truth_and_body(truth: MriTruth, output, channel: str = "fat") -> tuple[np.ndarray, np.ndarray]:
    """The true channel on the output's grid (read back through origin and spacing) and the body mask there."""
    geometry = {"origin": output.attrs["origin"], "spacing": output.attrs["spacing"],
                "shape": output.arrays["fat_scan" if "fat_scan" in output.arrays else next(iter(output.arrays))].shape}
    xs, ys, zs = output_axes(**geometry)
    body = truth.phantom.body_mask(xs[:, None, None], ys[None, :, None], zs[None, None, :])
    return truth.sample(channel=channel, **geometry), body


def _correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.corrcoef(a[mask].astype(np.float64), b[mask].astype(np.float64))[0, 1])


@pytest.mark.parametrize("quirks", [MriQuirks(), HARD], ids=["clean", "gains-and-noisy-edges"])
def test_fat_and_water_correlate_with_the_truth_inside_the_body(make_zip, quirks):
    truth = make_zip(quirks, seed=1)
    output = _process(truth)
    assert set(output.arrays) == {"fat_scan", "water_scan"}
    fat = output.arrays["fat_scan"]
    assert fat.dtype == np.uint16
    assert fat.shape[0] == 56
    for name, channel in (("fat_scan", "fat"), ("water_scan", "water")):
        expected, body = _truth_and_body(truth, output, channel)
        assert _correlation(output.arrays[name], expected, body) > 0.995, name
    assert output.attrs["swapped_stations"] == []
    assert output.qc["n_stations"] == 6


def _level_profile(truth: MriTruth, output) -> np.ndarray:
    """Per output slice, the median of output / truth over clearly fatty voxels: flat when no seam shows a step."""
    expected, body = _truth_and_body(truth, output, "fat")
    fat = output.arrays["fat_scan"].astype(np.float64)
    usable = body & (expected > 0.5 * truth.phantom.fat_signal)
    ratio = np.where(usable, fat / np.maximum(expected, 1.0), np.nan)
    return np.nanmedian(ratio.reshape(-1, ratio.shape[2]), axis=0)


def _seam_steps(profile: np.ndarray, output) -> list[float]:
    """The relative change of the level across each seam, between slices just outside the blend."""
    z0, sz = output.attrs["origin"][2], output.attrs["spacing"][2]
    steps = []
    for z in output.attrs["seam_z_mm"]:
        k = round((z0 - z) / sz)
        above, below = np.nanmedian(profile[k - 6 : k - 3]), np.nanmedian(profile[k + 3 : k + 6])
        steps.append(abs(below / above - 1))
    return steps


def test_no_seam_shows_an_intensity_step_beyond_noise(make_zip):
    truth = make_zip(HARD, seed=2)
    output = _process(truth)
    assert max(_seam_steps(_level_profile(truth, output), output)) < 0.03
    assert output.qc["max_seam_mismatch"] < 0.1
    # the gains were undone: the scales applied are the inverse gains, up to one common factor
    scales = output.attrs["station_scale_fat"] * np.array(GAINS)
    np.testing.assert_allclose(scales / scales.mean(), 1.0, atol=0.02)
    # and without harmonising, the same seams do show the gains
    raw = _process(truth, harmonise=False)
    assert max(_seam_steps(_level_profile(truth, raw), raw)) > 0.2


@pytest.mark.parametrize("seed", [3, 4])
def test_the_body_is_at_its_true_physical_position_within_a_voxel(make_zip, seed):
    truth = make_zip(seed=seed)
    output = _process(truth, z_spacing=5.0)
    fat = output.arrays["fat_scan"].astype(np.float64)
    expected = truth.sample(origin=output.attrs["origin"], spacing=output.attrs["spacing"], shape=fat.shape,
                            channel="fat", include_bed=True)  # the table is imaged too
    assert output.attrs["spacing"][2] == 5.0
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        found, wanted = fat.sum(axis=others), expected.sum(axis=others)
        index = np.arange(found.size)
        shift = (found @ index) / found.sum() - (wanted @ index) / wanted.sum()
        assert abs(shift) < 0.5, f"axis {axis}: centre of mass {shift:.2f} voxels off"
    # the grid covers every station: z from the top slice of station 1 to the bottom of station 6
    low, high = truth.z_range
    z = output.attrs["origin"][2] - np.arange(fat.shape[2]) * output.attrs["spacing"][2]
    assert z[0] <= high + 1e-3
    assert z[0] > high - 5 * 8.0
    assert z[-1] >= low - 1e-3
    assert z[-1] < low + 5 * 12.8


def test_x_and_y_cover_the_union_of_the_stations(make_zip):
    truth = make_zip(seed=5)
    output = _process(truth)
    xs, ys, _ = output_axes(origin=output.attrs["origin"], spacing=output.attrs["spacing"],
                            shape=output.arrays["fat_scan"].shape)
    station_ys = [s.geometry.ys for s in truth.stations]
    assert ys[0] == pytest.approx(min(y[0] for y in station_ys), abs=1e-3)
    assert ys[-1] == pytest.approx(max(y[-1] for y in station_ys), abs=1e-3)
    assert xs[0] == pytest.approx(truth.stations[0].geometry.xs[0], abs=1e-3)
    assert xs.size == 56


def test_a_repeated_station_keeps_the_newest_acquisition(make_zip):
    truth = make_zip(MriQuirks(repeated_station=3), seed=6)
    output = _process(truth)
    assert any("station 3 acquired more than once" in note for note in output.notes)
    expected, body = _truth_and_body(truth, output)
    assert _correlation(output.arrays["fat_scan"], expected, body) > 0.995  # the corrupted one left out


def test_a_missing_slice_is_bridged_and_noted(make_zip):
    truth = make_zip(MriQuirks(dropped_slice=(4, 7)), seed=7)
    output = _process(truth)
    assert any("station 4: 1 missing slice" in note for note in output.notes)
    assert output.qc["missing_slices"] >= 1
    expected, body = _truth_and_body(truth, output)
    assert _correlation(output.arrays["fat_scan"], expected, body) > 0.995


def test_a_slice_missing_from_the_fat_series_only_is_bridged_there(make_zip):
    truth = make_zip(MriQuirks(dropped_slice=(3, 4), dropped_slice_channels=("F",), slab_edge_loss=True), seed=17)
    output = _process(truth)
    assert any("station 3: 1 missing slice" in note for note in output.notes)
    assert not any("differ in size" in note for note in output.notes), "nothing was cropped: no crop note"
    assert output.attrs["swapped_stations"] == []
    for name, channel in (("fat_scan", "fat"), ("water_scan", "water")):
        expected, body = _truth_and_body(truth, output, channel)
        assert _correlation(output.arrays[name], expected, body) > 0.995, name


def test_fat_and_water_of_different_sizes_are_cropped_and_noted(make_zip):
    truth = make_zip(MriQuirks(size_mismatch_station=5), seed=8)
    output = _process(truth)
    assert any("station 5: channels differ in size" in note for note in output.notes)
    expected, body = _truth_and_body(truth, output, "water")
    assert _correlation(output.arrays["water_scan"], expected, body) > 0.995


def test_a_missing_station_is_a_clear_failure_unless_allowed(make_zip):
    truth = make_zip(MriQuirks(missing_station=2), seed=9)
    with pytest.raises(InputError, match="station 2 missing"):
        _process(truth)
    output = _process(truth, allow_missing_stations=True)
    assert output.attrs["stations"] == [1, 3, 4, 5, 6]
    assert any("station 2 missing" in note for note in output.notes)


@pytest.mark.parametrize("station", [1, 3, 6])
def test_a_swapped_station_is_reported_and_fixed_on_request(make_zip, station):
    truth = make_zip(MriQuirks(swapped_station=station, slab_edge_loss=True), seed=10 + station)
    output = _process(truth)
    assert output.attrs["swapped_stations"] == [station]
    assert output.qc["swapped_stations"] == [station]
    assert any(f"swapped in station {station}" in note for note in output.notes)
    expected, body = _truth_and_body(truth, output)
    assert _correlation(output.arrays["fat_scan"], expected, body) < 0.95  # left as acquired
    fixed = _process(truth, fix_swaps=True)
    assert fixed.attrs["swapped_stations"] == [station]
    assert fixed.attrs["fat_water_fixed"]
    for name, channel in (("fat_scan", "fat"), ("water_scan", "water")):
        expected, body = _truth_and_body(truth, fixed, channel)
        assert _correlation(fixed.arrays[name], expected, body) > 0.995, name


def test_no_swap_is_reported_on_clean_subjects(make_zip):
    for seed in range(20, 26):
        output = _process(make_zip(MriQuirks(slab_edge_loss=seed % 2 == 0), seed=seed))
        assert output.attrs["swapped_stations"] == [], f"seed {seed}"
        assert np.all(output.attrs["seam_fat_water_agreement"] > 1.0)


def test_no_field_but_swapped_stations_is_named_after_swaps(make_zip):
    output = _process(make_zip(seed=1))
    names = [*output.attrs, *output.qc, *output.arrays]
    assert [name for name in names if "swap" in name] == ["swapped_stations", "swapped_regions", "swapped_stations",
                                                          "swapped_regions"]


def test_all_four_channels_on_request_as_float32(make_zip):
    truth = make_zip(seed=1)
    output = _process(truth, channels=("F", "W", "in", "opp"), dtype="float32")
    assert set(output.arrays) == {"fat_scan", "water_scan", "in_scan", "opp_scan"}
    assert all(array.dtype == np.float32 for array in output.arrays.values())
    for name, channel in (("in_scan", "in"), ("opp_scan", "opp")):
        expected, body = _truth_and_body(truth, output, channel)
        assert _correlation(output.arrays[name], expected, body) > 0.99, name


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless],
                         ids=["implicit", "deflated", "rle"])
def test_every_transfer_syntax_gives_the_same_volume(make_zip, tmp_path, syntax):
    reference = _process(make_zip(seed=30, eid=1003000))
    other = write_mri_zip(tmp_path / "1003000_20201_2_0.zip", eid=1003000, phantom=Phantom.random(30),
                          quirks=MriQuirks(transfer_syntax=syntax), seed=30)  # the same images, encoded otherwise
    np.testing.assert_array_equal(_process(other).arrays["fat_scan"], reference.arrays["fat_scan"])


def test_every_member_is_peeked_once_and_only_the_wanted_inflated_whole_once(make_zip, monkeypatch):
    truth = make_zip(seed=1)
    peeks: list[str] = []
    reads: list[str] = []
    original_peek, original_read = ZipMembers.peek, ZipMembers.read

    def counting_peek(self, info, size):
        peeks.append(info.filename)
        return original_peek(self, info, size)

    def counting_read(self, info):
        reads.append(info.filename)
        return original_read(self, info)

    monkeypatch.setattr(ZipMembers, "peek", counting_peek)
    monkeypatch.setattr(ZipMembers, "read", counting_read)
    _process(truth)  # F and W
    dicoms = [name for name in truth.members if name.endswith(".dcm")]
    assert sorted(peeks) == sorted(dicoms)
    with zipfile.ZipFile(truth.path) as archive:
        fat_water = [name for name in dicoms
                     if pydicom.dcmread(io.BytesIO(archive.read(name))).SeriesDescription[-2:] in ("_F", "_W")]
    assert 0 < len(fat_water) < len(dicoms)
    assert sorted(reads) == sorted(fat_water)


def test_a_damaged_member_fails_the_zip_naming_it(make_zip, tmp_path):
    truth = make_zip(seed=1)
    with zipfile.ZipFile(truth.path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    victim = sorted(name for name in members if name.endswith(".dcm"))[5]
    members[victim] = b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff"  # a header cut short
    damaged = tmp_path / "1009999_20201_2_0.zip"
    with zipfile.ZipFile(damaged, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(InputError, match=re.escape(victim[-30:])):
        process_mri_zip(parse_input(damaged))


@pytest.mark.slow
def test_main_runs_the_stage_writes_hdf5_and_pickle_and_skips_on_rerun(tmp_path, run_main, make_zip):
    raw = tmp_path / "raw" / "mris"
    raw.mkdir(parents=True)
    ok = write_mri_zip(raw / "1000001_20201_2_0.zip", eid=1000001, phantom=Phantom.random(40),
                       quirks=MriQuirks(swapped_station=4))
    write_mri_zip(raw / "1000002_20201_2_0.zip", eid=1000002, phantom=Phantom.random(41),
                  quirks=MriQuirks(missing_station=5))
    result = run_main("stage=unzip_mri", f"paths.root={tmp_path}", "n_jobs=1")
    assert result.returncode != 0  # one input failed
    rows = {row["eid"]: row for row in read_manifests(tmp_path / "mris-processed")}
    assert rows["1000001"]["status"] == "ok"
    assert rows["1000001"]["swapped_stations"] == "4"
    assert float(rows["1000001"]["max_seam_mismatch"]) > 0.5  # the swap shows at its seams
    assert rows["1000002"]["status"] == "failed"
    assert "station 5 missing" in rows["1000002"]["reason"]
    with h5py.File(tmp_path / "mris-processed" / "1000001_20201_2_0.h5") as handle:
        assert list(handle.attrs["swapped_stations"]) == [4]
        assert handle["fat_scan"].chunks[1] == 1  # one coronal slice per chunk
        assert len(handle.attrs["spacing"]) == 3
        assert handle.attrs["settings_fingerprint"]

    result = run_main("stage=unzip_mri", f"paths.root={tmp_path}", "n_jobs=1", "allow_failures=true",
                      "stage.fix_swaps=true", "stage.allow_missing_stations=true", "writer=pickle",
                      f"stage.output_dir={tmp_path / 'pickles'}")
    assert result.returncode == 0, result.stderr[-2000:]
    payload = safe_load(tmp_path / "pickles" / "1000001_20201_2_0.pkl")
    assert sorted(payload) == ["fat_scan", "pixel_spacing", "water_scan"]
    assert payload["fat_scan"].dtype == np.float32
    assert len(payload["pixel_spacing"]) == 3
    expected = ok.sample(origin=_sidecar_origin(tmp_path / "pickles"), spacing=payload["pixel_spacing"],
                         shape=payload["fat_scan"].shape)
    body = expected > 100
    assert _correlation(payload["fat_scan"], expected, body) > 0.99

    again = run_main("stage=unzip_mri", f"paths.root={tmp_path}", "n_jobs=1", "allow_failures=true",
                     "stage.fix_swaps=true", "stage.allow_missing_stations=true", "writer=pickle",
                     f"stage.output_dir={tmp_path / 'pickles'}")
    assert again.returncode == 0
    latest = read_manifests(tmp_path / "pickles")
    assert {row["status"] for row in latest} == {"skipped"}


def _sidecar_origin(output_dir: Path) -> list[float]:
    return read_sidecar(StageFolders(output=output_dir, stage="unzip_mri"), "1000001_20201_2_0")["attrs"]["origin"]


# Variations real exams hold (ukbb-format.md 1.7, issue 13): each must give the true volume, with a note where a
# choice was made.
VARIATIONS = {
    "orientation-and-jitter": (MriQuirks(orientation=(True, True, True, True), position_jitter=True,
                                         slab_edge_loss=True), ""),
    "rows-flipped-only": (MriQuirks(orientation=(True, False, False, False), position_jitter=True), ""),
    "partial-repeat": (MriQuirks(partial_repeat=(3, 0.5), slab_edge_loss=True),
                       "station 3 acquired more than once: used series 27/28 for z"),
    "shifted-repeat": (MriQuirks(shifted_repeat=(3, 110.0), slab_edge_loss=True),
                       "an acquisition at another position than any station (series 27/28"),
    "re-reconstruction": (MriQuirks(rereconstructed_station=4), "used series 31/32, not series 15/16"),
    "water-re-reconstructed": (MriQuirks(rereconstructed_station=4, rereconstruction_channels=("W",)),
                               "used series 15/16, not series 32"),
    "derived-series": (MriQuirks(derived_series=("F", "W")), "ignored 12 derived or non-standard series"),
    "touching-slabs": (MriQuirks(touching_seam=4), ""),
    "non-image-member": (MriQuirks(non_image_member=True), "passed over 1 non-image DICOM member"),
}


def _centre_shift(truth: MriTruth, output) -> list[float]:
    """Per axis, how far (voxels) the output's fat centre of mass lies from the truth's."""
    fat = output.arrays["fat_scan"].astype(np.float64)
    expected = truth.sample(origin=output.attrs["origin"], spacing=output.attrs["spacing"], shape=fat.shape,
                            channel="fat", include_bed=True)
    shifts = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        found, wanted = fat.sum(axis=others), expected.sum(axis=others)
        index = np.arange(found.size)
        shifts.append(float((found @ index) / found.sum() - (wanted @ index) / wanted.sum()))
    return shifts


@pytest.mark.parametrize("name", list(VARIATIONS))
def test_each_variation_gives_the_true_volume_where_the_body_is_with_no_gap(make_zip, name):
    quirks, note = VARIATIONS[name]
    truth = make_zip(quirks, seed=40 + list(VARIATIONS).index(name))
    output = _process(truth)
    for array, channel in (("fat_scan", "fat"), ("water_scan", "water")):
        expected, body = _truth_and_body(truth, output, channel)
        assert _correlation(output.arrays[array], expected, body) > 0.995, array
    assert max(abs(shift) for shift in _centre_shift(truth, output)) < 0.5
    fat = output.arrays["fat_scan"]
    assert fat.reshape(-1, fat.shape[2]).max(axis=0).min() > 0, "no empty slice anywhere"
    assert not any("left empty" in n for n in output.notes)
    low, high = truth.z_range  # the whole acquired range is covered
    z = output.attrs["origin"][2] - np.arange(fat.shape[2]) * output.attrs["spacing"][2]
    assert z[0] > high - 5 * 8.0 and z[-1] < low + 5 * 12.8  # outer ends lose only noisy slices
    assert output.attrs["swapped_stations"] == [] and not output.qc["fat_water_uncertain"]
    assert not note or any(note in n for n in output.notes), output.notes


def test_a_partial_repeat_never_loses_coverage_and_a_shifted_one_evicts_no_neighbour(make_zip):
    partial = _process(make_zip(VARIATIONS["partial-repeat"][0], seed=42))
    assert partial.attrs["stations"] == [1, 2, 3, 4, 5, 6]
    shifted = _process(make_zip(VARIATIONS["shifted-repeat"][0], seed=43))
    assert sorted(set(shifted.attrs["stations"])) == [1, 2, 3, 4, 5, 6] and len(shifted.attrs["stations"]) == 7


def test_f_and_w_of_a_station_come_from_one_reconstruction(make_zip):
    """The re-reconstruction is scaled 1.25x: taking W from it and F from the first would show as unequal scales."""
    for name in ("re-reconstruction", "water-re-reconstructed"):
        output = _process(make_zip(VARIATIONS[name][0], seed=40 + list(VARIATIONS).index(name)))
        ratio = output.attrs["station_scale_fat"] / output.attrs["station_scale_water"]
        np.testing.assert_allclose(ratio / ratio.mean(), 1.0, atol=0.03, err_msg=name)


def test_touching_slabs_with_noisy_edges_keep_them_rather_than_leave_a_gap(make_zip):
    """No neighbour covers the edge slices where slabs touch, so they stay (their signal loss shows, no gap does)."""
    truth = make_zip(MriQuirks(touching_seam=4, slab_edge_loss=True), seed=49)
    output = _process(truth)
    seam = list(output.attrs["seam_stations"][:, 0]).index(4)
    assert output.attrs["seam_overlap_mm"][seam] < 0  # slice centres a slice apart: bridged
    assert output.attrs["station_trimmed_slices"][3][1] == 0 and output.attrs["station_trimmed_slices"][4][0] == 0
    fat = output.arrays["fat_scan"]
    assert fat.reshape(-1, fat.shape[2]).max(axis=0).min() > 0
    expected, body = _truth_and_body(truth, output)
    assert _correlation(fat, expected, body) > 0.97


REGIONAL = [
    ((5, "left", 0.0, 1.0), "5:left-leg"),
    ((6, "right", 0.0, 0.5), "6:right-leg z "),
    ((3, "both", 0.3, 0.7), "3:z "),
    ((2, "left", 0.0, 0.6), "2:left-half z "),
]


@pytest.mark.parametrize(("region", "label"), REGIONAL, ids=[label.strip() for _, label in REGIONAL])
def test_a_regional_swap_is_reported_where_and_fixed_on_request(make_zip, region, label):
    truth = make_zip(MriQuirks.varied(np.random.default_rng(region[0]), swapped_region=region, slab_edge_loss=True),
                     seed=60 + region[0])
    output = _process(truth)
    assert output.attrs["swapped_stations"] == [region[0]]
    assert len(output.attrs["swapped_regions"]) == 1 and output.attrs["swapped_regions"][0].startswith(label)
    assert output.qc["swapped_regions"] == output.attrs["swapped_regions"][0]
    assert any("swap" in note and label.strip() in note for note in output.notes)
    expected, body = _truth_and_body(truth, output)
    assert _correlation(output.arrays["fat_scan"], expected, body) < 0.99  # left as acquired
    fixed = _process(truth, fix_swaps=True)
    assert fixed.attrs["fat_water_fixed"]
    for name, channel in (("fat_scan", "fat"), ("water_scan", "water")):
        expected, body = _truth_and_body(truth, fixed, channel)
        assert _correlation(fixed.arrays[name], expected, body) > 0.995, name
