"""unzip_dxa: the Total Body tissue and bone images, exactly as stored, with the spacing from ExposedArea."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import zip_edits as edits

from ukbb_pipeline.config import ZipLimits
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.runtime.inputs import parse_input
from ukbb_pipeline.runtime.manifest import read_manifests
from ukbb_pipeline.stages.unzip_dxa import process_dxa_zip
from ukbb_pipeline.synthetic import DxaQuirks, Phantom, write_dxa_zip

LIMITS = ZipLimits()


def _dxa_zip(folder: Path, eid: int, quirks: DxaQuirks | None = None, seed: int = 0):
    quirks = quirks or DxaQuirks()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{eid}_20158_2_0.zip"
    truth = write_dxa_zip(path, eid=eid, phantom=Phantom.random(seed), quirks=quirks, seed=seed)
    return path, truth


def test_tissue_and_bone_are_the_total_body_images_as_stored(tmp_path):
    path, truth = _dxa_zip(tmp_path, 1000001)
    output = process_dxa_zip(parse_input(path), limits=LIMITS)
    assert output.arrays["tissue"].dtype == np.uint8
    np.testing.assert_array_equal(output.arrays["tissue"], truth.tissue)
    np.testing.assert_array_equal(output.arrays["bone"], truth.bone)
    np.testing.assert_allclose(output.attrs["pixel_spacing"], truth.pixel_spacing)
    assert output.qc["n_total_body"] == 2


def test_a_repeated_scan_is_ambiguous_and_fails_naming_the_four_images(tmp_path):
    path, _ = _dxa_zip(tmp_path, 1000002, DxaQuirks(n_total_body_pairs=2), seed=3)
    with pytest.raises(InputError, match="4 greyscale 'Total Body' images of the exam's participant") as caught:
        process_dxa_zip(parse_input(path), limits=LIMITS)
    for number in (11, 12, 13, 14):  # time never chooses: the pair is timed at the study's start
        assert f"InstanceNumber {number}," in str(caught.value)


def test_one_total_body_image_is_a_clear_failure(tmp_path):
    path, _ = _dxa_zip(tmp_path, 1000003, DxaQuirks(only_one_total_body=True))
    with pytest.raises(InputError, match="1 greyscale 'Total Body' image"):
        process_dxa_zip(parse_input(path), limits=LIMITS)


# Real exports vary (ukbb-format.md 3.4): each variation gives exactly the exam's pair, with a note naming every
# member passed over; each fault fails the zip with a specific reason.
VARIATIONS = {
    "regional images vary, TB pair at the study's start": DxaQuirks(),
    "another participant's AP Spine (the public example)": DxaQuirks(foreign=("AP Spine",)),
    "another participant's newer Total Body pair": DxaQuirks(foreign=("Total Body",)),
    "another participant's pair beside a TB-only exam, and its AP Spine": DxaQuirks(
        regional_images=False, foreign=("AP Spine",)),
    "an RGB 'Total Body' screen capture": DxaQuirks(rgb_report=True),
    "an encapsulated PDF report": DxaQuirks(pdf_report=True),
    "MONOCHROME1": DxaQuirks(monochrome1=True),
    "tissue and bone InstanceNumbers swapped": DxaQuirks(swapped_instance_numbers=True),
    "all at once": DxaQuirks(foreign=("AP Spine", "Total Body"), rgb_report=True, pdf_report=True, monochrome1=True,
                             swapped_instance_numbers=True),
}


@pytest.mark.parametrize("name", sorted(VARIATIONS))
def test_each_variation_gives_the_exams_pair_exactly(tmp_path, name):
    quirks = VARIATIONS[name]
    path, truth = _dxa_zip(tmp_path, 1000030, quirks, seed=sorted(VARIATIONS).index(name))
    output = process_dxa_zip(parse_input(path), limits=LIMITS)
    np.testing.assert_array_equal(output.arrays["tissue"], truth.tissue)
    np.testing.assert_array_equal(output.arrays["bone"], truth.bone)
    assert output.arrays["tissue"].dtype == output.arrays["bone"].dtype == np.uint8
    np.testing.assert_allclose(output.attrs["pixel_spacing"], truth.pixel_spacing)
    assert (output.attrs["tissue_instance_number"], output.attrs["bone_instance_number"]) == truth.instance_numbers
    notes = "; ".join(output.notes)
    for member in truth.ignored:
        assert member in notes, f"{member} passed over without a note"
    assert ("another participant" in notes) == bool(quirks.foreign)
    assert ("told apart by content" in notes) == quirks.swapped_instance_numbers
    assert ("MONOCHROME1" in notes) == quirks.monochrome1
    if not truth.ignored and not quirks.swapped_instance_numbers and not quirks.monochrome1:
        assert output.notes == []


FAULTS = {
    "only_one_total_body": (DxaQuirks(only_one_total_body=True),
                            r"^1 greyscale 'Total Body' image\(s\) of the exam's participant, 2 needed"),
    "third_total_body": (DxaQuirks(third_total_body=True),
                         r"^3 greyscale 'Total Body' images of the exam's participant, 2 expected"),
    "n_total_body_pairs": (DxaQuirks(n_total_body_pairs=2),
                           r"^4 greyscale 'Total Body' images of the exam's participant, 2 expected"),
    "reversed_exposed_area": (DxaQuirks(reversed_exposed_area=True),
                              r"^implausible pixel spacing 0\.\d\d x [67]\.\d\d mm \(ExposedArea \[1920, 658\] mm"),
    "a TB-only exam beside another participant's pair": (
        DxaQuirks(regional_images=False, foreign=("Total Body",)),
        r"^the zip holds 2 greyscale image\(s\) each of 2 participants, so whose exam it is cannot be told"),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_each_fault_fails_the_zip_with_a_reason_naming_the_candidates(tmp_path, name):
    quirks, reason = FAULTS[name]
    path, truth = _dxa_zip(tmp_path, 1000040, quirks, seed=5)
    assert truth.fault == (None if " " in name else name)
    with pytest.raises(InputError, match=reason) as caught:
        process_dxa_zip(parse_input(path), limits=LIMITS)
    message = str(caught.value)
    assert "\n" not in message
    if "Total Body" in reason:  # the candidates are named
        assert truth.tissue_member in message


def test_a_pair_whose_content_cannot_be_told_apart_fails_naming_both(tmp_path):
    path, truth = _dxa_zip(tmp_path, 1000050, DxaQuirks(regional_images=False))
    members = edits.read_members(path)
    tissue_pixels = edits.parse(members[truth.tissue_member]).PixelData

    def as_tissue(dataset):
        dataset.PixelData = tissue_pixels

    edits.write_members(path, edits.edit(members, [truth.bone_member], as_tissue))
    with pytest.raises(InputError, match=r"^cannot tell the 'Total Body' tissue image from the bone image") as caught:
        process_dxa_zip(parse_input(path), limits=LIMITS)
    assert truth.tissue_member in str(caught.value) and truth.bone_member in str(caught.value)


def test_a_zip_with_a_damaged_dicom_names_the_member(tmp_path):
    path, _ = _dxa_zip(tmp_path, 1000004)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    victim = sorted(name for name in members if name.endswith(".dcm"))[0]
    members[victim] = b"\0" * 128 + b"DICM" + b"\xff" * 50
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(InputError, match=victim.split(".")[-3]):
        process_dxa_zip(parse_input(path), limits=LIMITS)


def test_end_to_end_through_main_with_bad_inputs_beside_good_ones(tmp_path, run_main):
    raw = tmp_path / "data" / "raw" / "dxas"
    truths = {eid: _dxa_zip(raw, eid, seed=eid % 7)[1] for eid in (1000011, 1000012, 1000013)}
    _dxa_zip(raw, 1000014, DxaQuirks(only_one_total_body=True))
    (raw / "1000015_20158_2_0.zip").write_bytes(b"this is not a zip file")
    good = (raw / "1000011_20158_2_0.zip").read_bytes()
    (raw / "1000016_20158_2_0.zip").write_bytes(good[: len(good) // 2])  # truncated download

    result = run_main("stage=unzip_dxa", f"paths.root={tmp_path / 'data'}", "n_jobs=2")
    assert result.returncode != 0, "failures must make the process exit non-zero"
    assert "3 input(s) failed" in result.stderr + result.stdout

    out = tmp_path / "data" / "dxas-processed"
    for eid, truth in truths.items():
        with h5py.File(out / f"{eid}_20158_2_0.h5") as handle:
            np.testing.assert_array_equal(handle["tissue"][()], truth.tissue)
            np.testing.assert_array_equal(handle["bone"][()], truth.bone)
            np.testing.assert_allclose(handle.attrs["pixel_spacing"], truth.pixel_spacing)
    rows = {row["eid"]: row for row in read_manifests(out)}
    assert {eid: row["status"] for eid, row in rows.items()} == {
        "1000011": "ok", "1000012": "ok", "1000013": "ok", "1000014": "failed", "1000015": "failed",
        "1000016": "failed",
    }
    assert "Total Body" in rows["1000014"]["reason"]
    assert "not a zip" in rows["1000015"]["reason"]
    assert "not a zip" in rows["1000016"]["reason"]
    assert all("\n" not in row["reason"] for row in rows.values())

    again = run_main("stage=unzip_dxa", f"paths.root={tmp_path / 'data'}", "allow_failures=true")
    assert again.returncode == 0, again.stderr
    statuses = [row["status"] for row in read_manifests(out) if row["eid"] in {"1000011", "1000012", "1000013"}]
    assert statuses == ["skipped"] * 3


def test_pickle_layout_is_the_original_one(tmp_path, run_main):
    raw = tmp_path / "data" / "raw" / "dxas"
    _, truth = _dxa_zip(raw, 1000021)
    result = run_main("stage=unzip_dxa", "writer=pickle", f"paths.root={tmp_path / 'data'}")
    assert result.returncode == 0, result.stderr
    path = tmp_path / "data" / "dxas-processed" / "1000021_20158_2_0" / "1000021_20158_2_0.pkl"
    with open(path, "rb") as handle:
        loaded = pickle.load(handle)
    assert set(loaded) == {"tissue", "bone", "pixel_spacing"}
    assert loaded["tissue"].dtype == np.float32
    np.testing.assert_array_equal(loaded["bone"], truth.bone.astype(np.float32))
    np.testing.assert_allclose(loaded["pixel_spacing"], truth.pixel_spacing)
