"""Headers as real scanners write them: every row of docs/reference/real-headers.md both ways, against the truth.

Each zip is the same subject (same phantom, same noise) written in one header style (``HeaderStyle``) of the
synthetic generator; the tidy style (one AcquisitionTime per station, one series per channel, ImageType with the
Dixon values, HFS, ...) is the reference. A property that leaves the pixels alone must give the very arrays of the
tidy zip, in all four channels; one that changes them (a rescale, feet-first acquisition order) the truth as closely.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
import zip_edits as edits

from ukbb_pipeline.api import stitch_mri_zip
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.mri.header import Echo, SliceHeader, channel_of
from ukbb_pipeline.mri.series import build_series
from ukbb_pipeline.runtime.inputs import parse_input
from ukbb_pipeline.stages.unzip_mri import process_mri_zip
from ukbb_pipeline.synthetic import MriQuirks, MriTruth, Phantom, write_mri_zip
from ukbb_pipeline.synthetic.header_style import HeaderStyle
from ukbb_pipeline.synthetic.mri import enhanced_member
from ukbb_pipeline.synthetic.truth import output_axes

ALL_CHANNELS = ("F", "W", "in", "opp")
OUTPUTS = {"F": "fat_scan", "W": "water_scan", "in": "in_scan", "opp": "opp_scan"}
TIDY = HeaderStyle()
# The non-tidy side of each row whose pixels are those of the tidy zip.
SAME_PIXELS = {
    "times per series": HeaderStyle(times="series"),
    "times per slice and echo": HeaderStyle(times="slice"),
    "no times": HeaderStyle(times="absent"),
    "no AcquisitionNumber": HeaderStyle(acquisition_numbers="absent"),
    "AcquisitionNumber counted": HeaderStyle(acquisition_numbers="counted"),
    "echoes in one series, told by EchoNumbers": HeaderStyle(echoes_in_one_series=True, image_type_tokens=False),
    "echoes in one series, told by ImageType": HeaderStyle(echoes_in_one_series=True),
    "F and W in one series, told by ImageType": HeaderStyle(fat_water_in_one_series=True),
    "ImageType without Dixon values": HeaderStyle(image_type_tokens=False),
    "scanner number text": HeaderStyle(scanner_numbers=True),
    "BitsStored 16": HeaderStyle(bits_stored=16),
    "no SpacingBetweenSlices": HeaderStyle(spacing_between_slices=False),
    "all at once": HeaderStyle(times="slice", acquisition_numbers="absent", echoes_in_one_series=True,
                               fat_water_in_one_series=True, scanner_numbers=True, bits_stored=16,
                               spacing_between_slices=False),
}


@pytest.fixture(scope="module")
def make_zip(tmp_path_factory) -> Callable[..., MriTruth]:
    folder = tmp_path_factory.mktemp("headers")
    made: dict[MriQuirks, MriTruth] = {}

    def _make(quirks: MriQuirks) -> MriTruth:
        if quirks not in made:
            eid = 1003000 + len(made)
            made[quirks] = write_mri_zip(folder / f"{eid}_20201_2_0.zip", eid=1003000, phantom=Phantom.random(30),
                                         quirks=quirks, seed=30)
        return made[quirks]

    return _make


def _read(truth: MriTruth, **settings):
    return stitch_mri_zip(truth.path, channels=ALL_CHANNELS, **settings)


def correlation_with_truth(truth: MriTruth, output, channel: str) -> float:
    """Correlation of an output channel with the phantom's truth on the output grid, inside the body."""
    shape = output.arrays[OUTPUTS[channel]].shape
    geometry = {"origin": output.attrs["origin"], "spacing": output.attrs["spacing"], "shape": shape}
    xs, ys, zs = output_axes(**geometry)
    body = truth.phantom.body_mask(xs[:, None, None], ys[None, :, None], zs[None, None, :])
    expected = truth.sample(channel=channel, **geometry)
    values = output.arrays[OUTPUTS[channel]]
    return float(np.corrcoef(values[body].astype(np.float64), expected[body].astype(np.float64))[0, 1])


@pytest.fixture(scope="module")
def tidy(make_zip):
    truth = make_zip(MriQuirks(headers=TIDY))
    return truth, _read(truth)


def test_the_tidy_zip_matches_the_truth(tidy):
    truth, output = tidy
    for channel in ALL_CHANNELS:
        assert correlation_with_truth(truth, output, channel) > 0.99, channel


@pytest.mark.parametrize("style", SAME_PIXELS.values(), ids=SAME_PIXELS.keys())
def test_a_header_style_that_keeps_the_pixels_gives_the_tidy_arrays(make_zip, tidy, style):
    output = _read(make_zip(MriQuirks(headers=style)))
    for channel in ALL_CHANNELS:
        np.testing.assert_array_equal(output.arrays[OUTPUTS[channel]], tidy[1].arrays[OUTPUTS[channel]])
    assert output.attrs["origin"] == pytest.approx(tidy[1].attrs["origin"], abs=1e-6)
    assert not any("non-standard" in note or "not Dixon" in note for note in output.notes), output.notes


@pytest.mark.parametrize("echoes_in_one_series", [False, True], ids=["own series", "echoes in one series"])
def test_phase_images_in_the_magnitude_series_are_passed_over(make_zip, tidy, echoes_in_one_series):
    """Philips keeps each echo's phase image in its series: never a channel, whatever the description says."""
    style = HeaderStyle(phase_images=True, echoes_in_one_series=echoes_in_one_series)
    output = _read(make_zip(MriQuirks(headers=style)))
    for channel in ALL_CHANNELS:
        np.testing.assert_array_equal(output.arrays[OUTPUTS[channel]], tidy[1].arrays[OUTPUTS[channel]])
    n_phase = 2 * sum(len(s.geometry.z) for s in tidy[0].stations)  # in and opp of every slice
    assert any(note.startswith(f"ignored {n_phase} slice(s) that are not Dixon magnitude images")
               for note in output.notes), output.notes


PACKAGING = {
    "no manifest": MriQuirks(manifest_name=None),
    "manifest.csv": MriQuirks(manifest_name="manifest.csv"),
    "malformed manifest": MriQuirks(manifest_malformed=True),
    "members in series order": MriQuirks(shuffle_members=False),
}


@pytest.mark.parametrize("quirks", PACKAGING.values(), ids=PACKAGING.keys())
def test_the_manifest_and_the_member_order_change_nothing(make_zip, tidy, quirks):
    """The reader never opens the manifest (ukbb-format.md 1.2: misspelt, renamed, malformed or absent) and sorts
    slices by position, so neither matters."""
    output = _read(make_zip(quirks))
    for channel in ALL_CHANNELS:
        np.testing.assert_array_equal(output.arrays[OUTPUTS[channel]], tidy[1].arrays[OUTPUTS[channel]])


@pytest.mark.parametrize("rescale", [(1.2366, 0.0), (1.5, -50.0)], ids=["philips-slope", "slope-and-intercept"])
@pytest.mark.parametrize("dtype", ["float32", "uint16"])
def test_rescaled_pixels_are_read_in_their_real_units(make_zip, tidy, rescale, dtype):
    """Stored = round((value - intercept) / slope): the reader applies slope and intercept (float32), so the output is
    the tidy one within the stored values' rounding; uint16 output rounds again, and clips negative values to 0."""
    truth = make_zip(MriQuirks(headers=HeaderStyle(rescale=rescale)))
    output = _read(truth, dtype=dtype)
    reference = _read(make_zip(MriQuirks(headers=TIDY)), dtype=dtype)
    for channel in ALL_CHANNELS:
        values, expected = output.arrays[OUTPUTS[channel]], reference.arrays[OUTPUTS[channel]]
        assert values.dtype == np.dtype(dtype)
        difference = np.abs(values.astype(np.float64) - expected.astype(np.float64))
        assert np.median(difference) <= rescale[0], channel  # the stored values' rounding, after interpolation
        assert correlation_with_truth(truth, output, channel) > 0.99, channel


def test_feet_first_is_read_in_patient_coordinates_and_noted(make_zip, tidy):
    """FFS: the stations are acquired knees first, IPP stays in patient coordinates; the noise differs (other order),
    so the comparison is with the truth."""
    truth = make_zip(MriQuirks(headers=HeaderStyle(patient_position="FFS")))
    output = _read(truth)
    assert output.attrs["origin"] == pytest.approx(tidy[1].attrs["origin"], abs=1e-6)
    assert output.arrays["fat_scan"].shape == tidy[1].arrays["fat_scan"].shape
    for channel in ALL_CHANNELS:
        assert correlation_with_truth(truth, output, channel) > 0.99, channel
    assert any(note.startswith("patient position FFS") for note in output.notes), output.notes
    assert not any("patient position" in note for note in tidy[1].notes)


REPEATS = {
    "repeated station": MriQuirks(repeated_station=3),
    "aborted repeat": MriQuirks(partial_repeat=(3, 0.5)),
    "re-reconstruction": MriQuirks(rereconstructed_station=4),
    "re-reconstruction of W only": MriQuirks(rereconstructed_station=4, rereconstruction_channels=("W",)),
}


CASES = [(kind, times) for index, kind in enumerate(REPEATS) for times in ("series", "slice", "absent")[index % 2:][:2]]


@pytest.mark.parametrize(("kind", "times"), CASES, ids=[f"{kind}, times {times}" for kind, times in CASES])
def test_repeats_never_mix_acquisitions_whatever_the_times(make_zip, kind, times):
    """A repeat (or a re-reconstruction) at the same place: the good acquisition is used whole, F and W together,
    in every time layout; the truth says whether the motion-corrupted first acquisition or a rescaled
    re-reconstruction leaked in."""
    repeat = REPEATS[kind]
    style = HeaderStyle(times=times, echoes_in_one_series=times == "slice")
    truth = make_zip(dataclasses.replace(repeat, headers=style))
    tidy_times = make_zip(dataclasses.replace(repeat, headers=TIDY))
    output, reference = _read(truth), _read(tidy_times)
    for channel in ALL_CHANNELS:
        assert correlation_with_truth(truth, output, channel) > 0.99, channel
        if times != "absent":  # without times, a re-reconstruction is ordered by series number: the same choice
            np.testing.assert_array_equal(output.arrays[OUTPUTS[channel]], reference.arrays[OUTPUTS[channel]])


def test_an_independent_style_per_subject_is_read_like_the_tidy_one(make_zip, tidy):
    """The generator's random styles (as the demo cohort draws them): every one reads as the tidy zip does."""
    for seed in range(3):
        style = dataclasses.replace(HeaderStyle.random(np.random.default_rng(seed)), rescale=None,
                                    patient_position="HFS")
        output = _read(make_zip(MriQuirks(headers=style)))
        np.testing.assert_array_equal(output.arrays["fat_scan"], tidy[1].arrays["fat_scan"], err_msg=str(style))


def test_a_style_that_cannot_tell_fat_from_water_is_refused_by_the_generator():
    with pytest.raises(ValueError, match="needs image_type_tokens"):
        HeaderStyle(fat_water_in_one_series=True, image_type_tokens=False)



@pytest.mark.parametrize("description", ["Dixon_noBH_W", "Dixon_noBH", "t1_vibe_dixon_tra"])
def test_a_multi_frame_member_is_refused_with_its_reason(make_zip, tmp_path, description):
    """Siemens XA writes Enhanced MR (one multi-frame file per series, geometry per frame): not read, never misread."""
    truth = make_zip(MriQuirks(headers=TIDY))
    members = edits.read_members(truth.path)
    members["1.3.12.2.1107.5.2.43.enhanced.dcm"] = enhanced_member(study_uid=truth.study_uid, description=description)
    path = edits.write_members(tmp_path / "1003099_20201_2_0.zip", members)
    with pytest.raises(InputError) as caught:
        process_mri_zip(parse_input(path))
    assert str(caught.value) == ("member '1.3.12.2.1107.5.2.43.enhanced.dcm' is a multi-frame image "
                                 "(Enhanced MR Image Storage): multi-frame images are not read")


def test_the_echoes_of_one_series_are_told_apart_by_echo_number_else_by_the_fat_water_phase():
    magnitude = "ORIGINAL\\PRIMARY\\M\\ND"
    assert channel_of("Dixon_noBH", magnitude, Echo(2.39, 63.676, 1)) == "opp"
    assert channel_of("Dixon_noBH", magnitude, Echo(4.77, 63.676, 2)) == "in"
    # without EchoNumbers: fat and water are half a cycle apart at 2.39 ms and 1.5 T, a whole one at 4.77 ms
    assert channel_of("Dixon_noBH", magnitude, Echo(2.39, 63.676, None)) == "opp"
    assert channel_of("Dixon_noBH", magnitude, Echo(4.77, 63.676, None)) == "in"
    assert channel_of("Dixon_noBH", magnitude, Echo(1.15, 123.2, None)) == "opp"  # 3 T
    assert channel_of("Dixon_noBH", magnitude, Echo(3.5, 63.676, None)) is None  # neither: nothing decides
    # what an echo never decides: phase images (Philips keeps them in the series), derived F/W, other protocols
    assert channel_of("Dixon_noBH", "ORIGINAL\\PRIMARY\\PHASE MAP\\P\\FFE", Echo(2.39, 63.676, 1)) is None
    assert channel_of("Dixon_noBH", "DERIVED\\PRIMARY\\M\\ND", Echo(2.39, 63.676, 1)) is None
    assert channel_of("gre_field_mapping", magnitude, Echo(2.46, 123.25, 1)) is None
    # a suffix or ImageType value still comes first
    assert channel_of("Dixon_noBH_W", magnitude, Echo(2.39, 63.676, 1)) == "W"
    assert channel_of("Dixon_noBH", "DERIVED\\PRIMARY\\M\\DIXON\\FAT", Echo(2.39, 63.676, 1)) == "F"


def _header(z: float, rescale=None) -> SliceHeader:
    return SliceHeader(name=f"slice{z}", channel="F", series_uid="1.2", series_number=3, description="Dixon_noBH_F",
                       acquired="", position=(0.0, 0.0, z), orientation=(1.0, 4.897e-12, 0.0, -4.897e-12, 1.0, 0.0),
                       spacing=(2.0, 2.0), rows=2, columns=2, instance=1, rescale=rescale)


def test_each_slice_is_rescaled_by_its_own_slope_and_intercept_and_16_stored_bits_are_kept():
    stored = [np.full((2, 2), 40000, np.uint16), np.full((2, 2), 100, np.uint16), np.full((2, 2), 100, np.uint16)]
    series = build_series([_header(30.0), _header(20.0, (1.2366, 0.0)), _header(10.0, (2.0, -50.0))], stored)
    assert series.volume.dtype == np.float32
    np.testing.assert_allclose(series.volume[:, 0, 0], [40000.0, 123.66, 150.0], rtol=1e-6)
