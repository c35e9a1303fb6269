"""Station gains recovered from overlaps: robust ratios, one scale per station along the chain."""

from __future__ import annotations

import numpy as np
import pytest
from mri_fakes import small_layout, station_series

from ukbb_pipeline.mri.assemble import stitch_stations
from ukbb_pipeline.mri.harmonise import (
    Overlap,
    chain_scales,
    fat_fraction_step,
    gain_channels,
    relative_mismatch,
    seam_log_ratio,
    station_gains,
    station_scales,
)
from ukbb_pipeline.mri.parameters import StitchParameters
from ukbb_pipeline.mri.stations import group_stations


def _tissue(seed: int, shape=(6, 30, 40)) -> tuple[np.ndarray, np.ndarray]:
    """A body of varied tissue (200-1000) in air, and its mask."""
    rng = np.random.default_rng(seed)
    tissue = rng.uniform(200, 1000, shape).astype(np.float32)
    body = np.zeros(shape, dtype=bool)
    body[:, 5:25, 5:35] = True
    return np.where(body, tissue, rng.uniform(0, 10, shape)).astype(np.float32), body


def test_the_seam_ratio_is_the_gain_ratio_despite_noise_and_misregistered_voxels():
    truth, body = _tissue(0)
    rng = np.random.default_rng(1)
    upper = truth * 1.3 + rng.normal(0, 5, truth.shape).astype(np.float32)
    lower = truth * 0.8 + rng.normal(0, 5, truth.shape).astype(np.float32)
    lower[:, 5:9] = rng.uniform(200, 1000, lower[:, 5:9].shape)  # a fifth of the body moved (breathing)
    ratio = seam_log_ratio(upper, lower, body)
    assert np.exp(ratio) == pytest.approx(1.3 / 0.8, rel=0.02)


def test_too_few_body_voxels_give_no_ratio():
    truth, _ = _tissue(0)
    body = np.zeros(truth.shape, dtype=bool)
    body[0, 0, :10] = True
    assert seam_log_ratio(truth, truth, body) is None


def test_chain_scales_undo_station_gains_with_geometric_mean_one():
    gains = np.array([1.0, 1.2, 0.85, 1.1, 0.8, 1.15])
    log_ratios = {(i, i + 1): float(np.log(gains[i] / gains[i + 1])) for i in range(5)}
    scales = chain_scales(6, log_ratios)
    corrected = gains * scales
    np.testing.assert_allclose(corrected, corrected[0])  # every station at the same level
    assert np.prod(scales) == pytest.approx(1.0)


def test_a_seam_without_a_ratio_splits_the_chain_into_independent_runs():
    log_ratios = {(0, 1): np.log(2.0), (1, 2): None, (2, 3): np.log(0.5)}
    scales = chain_scales(4, log_ratios)
    assert scales[1] / scales[0] == pytest.approx(2.0)
    assert scales[3] / scales[2] == pytest.approx(0.5)
    assert scales[0] * scales[1] == pytest.approx(1.0)
    assert scales[2] * scales[3] == pytest.approx(1.0)


def test_station_scales_match_every_seam_and_the_mismatch_falls_to_the_noise():
    truth, _ = _tissue(2)
    gains = [1.0, 1.25, 0.9]
    rng = np.random.default_rng(3)

    def noisy(gain):
        return truth * gain + rng.normal(0, 4, truth.shape).astype(np.float32)

    overlaps = [Overlap(upper=i, lower=i + 1, z_mm=0.0, upper_data={"F": noisy(gains[i])},
                        lower_data={"F": noisy(gains[i + 1])}) for i in range(2)]
    scales, found = station_scales(overlaps, 3, "F")
    assert found[0] == pytest.approx(1.0 / 1.25, rel=0.01)
    for overlap in overlaps:
        before = relative_mismatch(overlap.upper_data["F"], overlap.lower_data["F"], overlap.body)
        after = relative_mismatch(overlap.upper_data["F"] * scales[overlap.upper],
                                  overlap.lower_data["F"] * scales[overlap.lower], overlap.body)
        assert after < 0.02 < before


def test_one_gain_per_station_from_both_channels_leaves_the_fat_fraction_as_acquired():
    fat, _ = _tissue(4)
    water, _ = _tissue(5)
    gains = [1.0, 1.3, 0.85]
    rng = np.random.default_rng(6)

    def station(gain):
        noise = rng.normal(0, 4, (2, *fat.shape)).astype(np.float32)
        return {"F": fat * gain + noise[0], "W": water * gain + noise[1]}

    data = [station(g) for g in gains]
    overlaps = [Overlap(upper=i, lower=i + 1, z_mm=0.0, upper_data=data[i], lower_data=data[i + 1])
                for i in range(2)]
    assert gain_channels(["F", "W", "in"]) == ("F", "W")
    assert gain_channels(["in", "opp"]) == ("in",)
    scales, found = station_gains(overlaps, 3, gain_channels(["F", "W"]))
    assert found[0] == pytest.approx(1.0 / 1.3, rel=0.01)
    np.testing.assert_allclose(np.array(gains) * scales, gains[0] * scales[0], rtol=0.01)
    for i, station_data in enumerate(data):  # one scale for both channels: F/(F+W) is exactly unchanged
        before = station_data["F"] / (station_data["F"] + station_data["W"])
        after = station_data["F"] * scales[i] / (station_data["F"] * scales[i] + station_data["W"] * scales[i])
        np.testing.assert_allclose(after, before, rtol=1e-5)
    for overlap in overlaps:
        assert fat_fraction_step(overlap.upper_data, overlap.lower_data, overlap.body) == pytest.approx(0, abs=0.01)


def test_the_fat_fraction_step_is_the_difference_of_the_seams_median_fat_fractions():
    fat, body = _tissue(7)
    water = np.where(body, 3 * fat, fat)
    upper = {"F": fat, "W": water}  # fat fraction 0.25 inside the body
    lower = {"F": fat * 1.1, "W": water * 0.9}  # separately scaled channels: 0.275 / 1.2 / ... steps the fraction
    step = fat_fraction_step(upper, lower, body)
    assert step == pytest.approx(0.25 - 1.1 / (1.1 + 2.7), abs=1e-4)


def test_a_stitched_exam_keeps_each_stations_fat_fraction_and_reports_a_flat_seam():
    gains = (1.0, 1.2, 0.85, 1.1, 0.8, 1.15)
    series = [s for station in small_layout() for s in station_series(station, gain=gains[station.number - 1],
                                                                       noise=5.0)]
    stations = group_stations(series, required=["F", "W"]).stations
    plain = stitch_stations(stations, channels=["F", "W", "in"],
                            params=StitchParameters(dtype="float32", harmonise=False))
    matched = stitch_stations(stations, channels=["F", "W", "in"], params=StitchParameters(dtype="float32"))
    for i in range(6):  # one scale per station, the same for every channel
        assert matched.scales["F"][i] == matched.scales["W"][i] == matched.scales["in"][i]
    np.testing.assert_allclose(np.array(gains) * matched.scales["F"], gains[0] * matched.scales["F"][0], rtol=0.02)
    body = (plain.volumes["F"] + plain.volumes["W"]) > 300
    single = np.isin(np.arange(plain.grid.shape[2]), np.flatnonzero(_covered_once(matched)))[None, None, :] & body
    fraction = {name: s.volumes["F"][single] / (s.volumes["F"][single] + s.volumes["W"][single])
                for name, s in (("plain", plain), ("matched", matched))}
    np.testing.assert_allclose(fraction["matched"], fraction["plain"], rtol=1e-4)
    assert all(abs(seam.fat_fraction_step) < 0.01 for seam in matched.seams)
    assert all(np.isfinite(seam.ratio["F"]) and np.isfinite(seam.ratio["W"]) for seam in matched.seams)


def _covered_once(stitched) -> np.ndarray:
    """Output slices (z) outside every seam's overlap band (a seam blends two stations' noise)."""
    z = stitched.grid.z
    away = np.ones(z.size, dtype=bool)
    for seam in stitched.seams:
        away &= np.abs(z - seam.z_mm) > 40.0
    return away
