"""Station gains recovered from overlaps: robust ratios, one scale per station along the chain."""

from __future__ import annotations

import numpy as np
import pytest

from ukbb_pipeline.mri.harmonise import Overlap, chain_scales, relative_mismatch, seam_log_ratio, station_scales


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
