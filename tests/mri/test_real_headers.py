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

from ukbb_pipeline.runtime.inputs import parse_input
from ukbb_pipeline.stages.unzip_mri import process_mri_zip
from ukbb_pipeline.synthetic import MriQuirks, MriTruth, Phantom, write_mri_zip
from ukbb_pipeline.synthetic.header_style import HeaderStyle
from ukbb_pipeline.synthetic.truth import output_axes

ALL_CHANNELS = ("F", "W", "in", "opp")
OUTPUTS = {"F": "fat_scan", "W": "water_scan", "in": "in_scan", "opp": "opp_scan"}
TIDY = HeaderStyle()
# The non-tidy side of each row whose pixels are those of the tidy zip.
SAME_PIXELS = {
    "times per series": HeaderStyle(times="series"),
    "times per slice and echo": HeaderStyle(times="slice"),
    "no times": HeaderStyle(times="absent"),
    "no AcquisitionNumber": HeaderStyle(acquisition_numbers=False),
    "echoes in one series, told by EchoTime": HeaderStyle(echoes_in_one_series=True, image_type_tokens=False),
    "echoes in one series, told by ImageType": HeaderStyle(echoes_in_one_series=True),
    "F and W in one series, told by ImageType": HeaderStyle(fat_water_in_one_series=True),
    "ImageType without Dixon values": HeaderStyle(image_type_tokens=False),
    "scanner number text": HeaderStyle(scanner_numbers=True),
    "BitsStored 16": HeaderStyle(bits_stored=16),
    "no SpacingBetweenSlices": HeaderStyle(spacing_between_slices=False),
    "all at once": HeaderStyle(times="slice", acquisition_numbers=False, echoes_in_one_series=True,
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
    return process_mri_zip(parse_input(truth.path), channels=ALL_CHANNELS, **settings)


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

