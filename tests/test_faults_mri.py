"""Bad Dixon zips: each fails with a one-line reason naming what is wrong, or is read with a note, never a crash.

Every variant starts from one clean synthetic zip and damages it the way a real download or export goes wrong
(issue 7, "Bad inputs"). The last test runs them all through main.py together: the good zip is unaffected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import zip_edits as edits

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.formats.base import Output
from ukbb_pipeline.runtime.inputs import parse_input
from ukbb_pipeline.runtime.manifest import read_manifests
from ukbb_pipeline.stages.unzip_mri import process_mri_zip
from ukbb_pipeline.synthetic import MriQuirks, MriTruth, Phantom, write_mri_zip
from ukbb_pipeline.synthetic.mri import report_member

CLEAN_EID = 1000100
STATION_3_F, STATION_3_W = 11, 12  # SeriesNumbers: in, opp, F, W of station s are 4(s-1)+1 ... 4(s-1)+4


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> MriTruth:
    folder = tmp_path_factory.mktemp("clean")
    return write_mri_zip(folder / f"{CLEAN_EID}_20201_2_0.zip", eid=CLEAN_EID, phantom=Phantom.random(100), seed=100)


@pytest.fixture(scope="module")
def members(clean) -> dict[str, bytes]:
    return edits.read_members(clean.path)


@pytest.fixture(scope="module")
def slices(members) -> list[edits.Slice]:
    return edits.index_slices(members)


@pytest.fixture(scope="module")
def reference(clean) -> Output:
    return process_mri_zip(parse_input(clean.path))


def _fat_slice(slices: list[edits.Slice], index: int = 5) -> edits.Slice:
    return edits.in_series(slices, STATION_3_F)[index]


def _not_dicom(members, slices):
    return {**members, _fat_slice(slices).name: b"<html>503 Service Unavailable</html>\n"}


def _no_pixel_data(members, slices):
    return edits.edit(members, [_fat_slice(slices).name], edits.drop_pixel_data)


def _non_image_member(members, slices):
    first = edits.parse(members[_fat_slice(slices).name])
    report = report_member(study_uid=str(first.StudyInstanceUID), patient_id=str(first.PatientID))
    return {**members, "report.dcm": report}


def _jpeg_ls(members, slices):
    return edits.edit(members, [_fat_slice(slices).name], edits.as_jpeg_ls_without_decoder)


def _jpeg2000(members, slices):
    return edits.edit(members, [s.name for s in edits.in_series(slices, STATION_3_F)], edits.as_jpeg2000)


def _same_file_twice(members, slices):
    name = _fat_slice(slices).name
    return {**members, f"copy-of-{name}": members[name]}


def _two_slices_at_one_position(members, slices):
    above, below = _fat_slice(slices, 5), _fat_slice(slices, 6)
    position = edits.parse(members[above.name]).ImagePositionPatient

    def move(dataset):
        dataset.ImagePositionPatient = position

    return edits.edit(members, [below.name], move)


def _spacing_changes_within_a_series(members, slices):
    def widen(dataset):
        dataset.PixelSpacing = [9.5, 9.5]

    return edits.edit(members, [_fat_slice(slices).name], widen)


def _station_on_another_spacing(members, slices):
    def widen(dataset):
        dataset.PixelSpacing = [9.5, 9.5]

    station = [s.name for number in (STATION_3_F, STATION_3_W) for s in edits.in_series(slices, number)]
    return edits.edit(members, station, widen)


def _hostile_names(members, slices):
    """Member names that would escape the folder if they were ever used as paths."""
    renamed = {}
    for index, (name, data) in enumerate(members.items()):
        prefix = ("../../../../", "/tmp/absolute/", "C:\\evil\\..\\")[index % 3]
        renamed[prefix + name] = data
    return renamed


VARIANTS: dict[str, tuple[int, Callable]] = {
    "not-dicom": (1000101, _not_dicom),
    "no-pixel-data": (1000102, _no_pixel_data),
    "jpeg-ls-no-decoder": (1000103, _jpeg_ls),
    "jpeg2000": (1000104, _jpeg2000),
    "same-file-twice": (1000105, _same_file_twice),
    "two-slices-one-position": (1000106, _two_slices_at_one_position),
    "spacing-changes-in-series": (1000107, _spacing_changes_within_a_series),
    "station-on-other-spacing": (1000108, _station_on_another_spacing),
    "hostile-names": (1000109, _hostile_names),
    "non-image-member": (1000113, _non_image_member),
}


@pytest.fixture(scope="module")
def variants(tmp_path_factory, members, slices) -> dict[str, Path]:
    """Each variant as ``raw/mris/<eid>_20201_2_0.zip`` in one folder (made on first use)."""
    folder = tmp_path_factory.mktemp("variants") / "raw" / "mris"
    made: dict[str, Path] = {}
    for name, (eid, make) in VARIANTS.items():
        if name == "jpeg2000" and not edits.pillow_encodes_jpeg2000():
            continue
        made[name] = edits.write_members(folder / f"{eid}_20201_2_0.zip", make(members, slices))
    return made


def _fails(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        process_mri_zip(parse_input(path))
    reason = str(caught.value)
    assert "\n" not in reason, "reasons are one line"
    return reason


def test_a_member_that_is_not_dicom_fails_the_zip_naming_it(variants, slices):
    assert _fails(variants["not-dicom"]) == f"member {_fat_slice(slices).name!r} is not a DICOM file"


def test_a_slice_without_pixel_data_fails_the_zip_naming_it(variants, slices):
    assert _fails(variants["no-pixel-data"]) == f"member {_fat_slice(slices).name!r} has no pixel data"


def test_a_non_image_member_is_passed_over_with_a_note_naming_it(variants, reference):
    output = process_mri_zip(parse_input(variants["non-image-member"]))
    assert "passed over 1 non-image DICOM member(s): 'report.dcm' (Encapsulated PDF Storage, 'Patient Protocol')" \
        in output.notes
    np.testing.assert_array_equal(output.arrays["fat_scan"], reference.arrays["fat_scan"])


def test_a_compressed_syntax_without_a_decoder_is_a_one_line_reason(variants, slices):
    reason = _fails(variants["jpeg-ls-no-decoder"])
    assert reason.startswith(f"member {_fat_slice(slices).name!r}: cannot decode transfer syntax JPEG-LS Lossless")


def test_jpeg2000_slices_are_decoded_to_the_same_volume(variants, reference):
    if "jpeg2000" not in variants:
        pytest.skip("Pillow was built without JPEG 2000")
    output = process_mri_zip(parse_input(variants["jpeg2000"]))
    np.testing.assert_array_equal(output.arrays["fat_scan"], reference.arrays["fat_scan"])


def test_the_same_slice_twice_is_read_once_with_a_note(variants, reference):
    output = process_mri_zip(parse_input(variants["same-file-twice"]))
    assert any("1 duplicate slice position(s) dropped" in note for note in output.notes)
    np.testing.assert_array_equal(output.arrays["fat_scan"], reference.arrays["fat_scan"])


def test_two_different_slices_at_one_position_fail_the_zip_naming_both(variants, slices):
    reason = _fails(variants["two-slices-one-position"])
    assert "two different slices at one position" in reason
    for victim in (_fat_slice(slices, 5), _fat_slice(slices, 6)):
        assert repr(victim.name) in reason


def test_a_pixel_spacing_that_changes_within_a_series_fails_it(variants):
    assert re.fullmatch(r"series 11 \(.*_F\) mixes pixel spacings", _fails(variants["spacing-changes-in-series"]))


def test_a_station_on_another_pixel_spacing_is_resampled_onto_the_common_grid(variants, reference):
    output = process_mri_zip(parse_input(variants["station-on-other-spacing"]))
    assert any("station 3 F: pixel spacing differs" in note for note in output.notes)
    assert output.attrs["spacing"] == reference.attrs["spacing"]  # station 1's
    wider, usual = output.arrays["fat_scan"].shape, reference.arrays["fat_scan"].shape
    assert wider[0] > usual[0], "the grid covers station 3's wider field of view"


def test_hostile_member_names_are_only_labels(variants, reference):
    def listings() -> dict[Path, list[str]]:  # where ../../ names would land: the zip's and the cwd's ancestors
        folders = [*variants["hostile-names"].parents[:4], Path.cwd(), *Path.cwd().parents[:4]]
        return {folder: sorted(os.listdir(folder)) for folder in folders}

    before = listings()
    output = process_mri_zip(parse_input(variants["hostile-names"]))
    np.testing.assert_array_equal(output.arrays["fat_scan"], reference.arrays["fat_scan"])
    assert listings() == before
    assert not Path("/tmp/absolute").exists()


@pytest.mark.slow
def test_bad_zips_beside_a_good_one_through_main(variants, clean, run_main):
    raw = next(iter(variants.values())).parent
    good = raw / clean.path.name
    good.write_bytes(clean.path.read_bytes())
    whole = clean.path.read_bytes()
    (raw / "1000110_20201_2_0.zip").write_bytes(whole[: len(whole) // 3])  # a truncated download
    (raw / "1000111_20201_2_0.zip").write_text("<html>Bad Gateway</html>")  # not a zip
    write_mri_zip(raw / "1000112_20201_2_0.zip", eid=1000112, phantom=Phantom.random(112),
                  quirks=MriQuirks(missing_station=6))
    root = raw.parents[1]

    result = run_main("stage=unzip_mri", f"paths.root={root}", "n_jobs=2")
    assert result.returncode != 0, "failed inputs make the run exit non-zero"
    rows = {int(row["eid"]): row for row in read_manifests(root / "mris-processed")}
    assert len(rows) == len(variants) + 4
    assert rows[1000113]["status"] == "ok" and "non-image DICOM member" in rows[1000113]["reason"]
    expected_failures = {
        1000101: "is not a DICOM file",
        1000102: "has no pixel data",
        1000103: "cannot decode transfer syntax JPEG-LS",
        1000106: "two different slices at one position",
        1000107: "mixes pixel spacings",
        1000110: "not a zip file",
        1000111: "not a zip file",
        1000112: "station 6 missing",
    }
    for eid, row in rows.items():
        assert "\n" not in row["reason"]
        if eid in expected_failures:
            assert row["status"] == "failed", eid
            assert expected_failures[eid] in row["reason"], (eid, row["reason"])
            assert not (root / "mris-processed" / f"{eid}_20201_2_0.h5").exists()
        else:
            assert row["status"] == "ok", (eid, row["reason"])
    with h5py.File(root / "mris-processed" / f"{CLEAN_EID}_20201_2_0.h5") as handle:
        reference = process_mri_zip(parse_input(good))
        np.testing.assert_array_equal(handle["fat_scan"][()], reference.arrays["fat_scan"])
    assert "1 duplicate slice position(s) dropped" in rows[1000105]["reason"]
    assert "pixel spacing differs" in rows[1000108]["reason"]
