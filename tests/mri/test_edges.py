"""Noisy slab edges: found by a falling level or a rising background; anatomy alone does not trim an outer end."""

from __future__ import annotations

import numpy as np

from ukbb_pipeline.mri.edges import EdgeTrim, noisy_edge_slices, slice_profile


def _station(n: int = 30, *, kept=(), noise=5.0, seed=0) -> np.ndarray:
    """Slices of a bright disc in noisy air; the first len(kept) slices at each end keep that fraction of signal
    and get noisier the more they lose."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:40, :40]
    disc = np.where((y - 20) ** 2 + (x - 20) ** 2 < 150, 1000.0, 0.0)
    factors = np.ones(n)
    for i, factor in enumerate(kept):
        factors[i] = factors[-1 - i] = factor
    sigma = noise + 40 * (1 - factors)
    volume = disc[None] * factors[:, None, None] + rng.normal(0, 1, (n, 40, 40)) * sigma[:, None, None]
    return np.abs(volume).astype(np.float32)


def test_a_clean_station_has_no_noisy_edges():
    assert noisy_edge_slices(slice_profile(_station()), max_slices=6, drop=0.15) == EdgeTrim(0, 0)


def test_edge_slices_that_lose_signal_and_gain_noise_are_found_at_both_ends():
    profile = slice_profile(_station(kept=(0.45, 0.65, 0.8)))
    assert noisy_edge_slices(profile, max_slices=6, drop=0.15) == EdgeTrim(3, 3)
    assert noisy_edge_slices(profile, max_slices=2, drop=0.15) == EdgeTrim(2, 2)  # never more than asked
    assert noisy_edge_slices(profile, max_slices=0, drop=0.15) == EdgeTrim(0, 0)


def test_a_level_falling_without_noise_trims_only_ends_a_neighbour_covers():
    volume = _station()
    volume[:3] *= np.array([0.78, 0.8, 0.83])[:, None, None]  # anatomy thinning at the top of the neck
    profile = slice_profile(volume)
    assert noisy_edge_slices(profile, max_slices=6, drop=0.15, covered=(True, True)).top == 3
    assert noisy_edge_slices(profile, max_slices=6, drop=0.15, covered=(False, True)).top == 0


def test_short_stations_are_examined_less_deep():
    profile = slice_profile(_station(n=10, kept=(0.4,)))
    assert noisy_edge_slices(profile, max_slices=6, drop=0.15) == EdgeTrim(1, 1)
