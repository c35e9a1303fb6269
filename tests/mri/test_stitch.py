"""Trimming, feathering and blending stations on the output grid."""

from __future__ import annotations

import numpy as np
import pytest

from ukbb_pipeline.mri.edges import EdgeTrim
from ukbb_pipeline.mri.grid import Grid, place
from ukbb_pipeline.mri.series import Series
from ukbb_pipeline.mri.stitch import Extent, Piece, blend, feather_weights, trim_extents


def _extent(top, bottom):
    return Extent(top=top, bottom=bottom, trimmed=EdgeTrim(), reach_top=top, reach_bottom=bottom)


def test_ends_a_neighbour_covers_lose_the_minimum_and_outer_ends_only_noisy_slices():
    upper = np.arange(100.0, 40.0, -3.0)  # 100 ... 43
    lower = np.arange(70.0, -10.0, -4.0)  # 70 ... -6: 27 mm of overlap
    extents = trim_extents([upper, lower], [EdgeTrim(1, 0), EdgeTrim(0, 0)], minimum=2, min_overlap=2.0)
    assert extents[0].trimmed == EdgeTrim(1, 2)  # the top is an outer end: only the noisy slice goes
    assert extents[1].trimmed == EdgeTrim(2, 0)
    assert (extents[0].top, extents[0].bottom) == (97.0, 49.0)
    assert (extents[1].top, extents[1].bottom) == (62.0, -6.0)


def test_the_fixed_minimum_is_given_back_before_noisy_slices_when_the_overlap_is_short():
    upper = np.arange(100.0, 40.0, -10.0)  # 100 ... 50
    lower = np.arange(65.0, 0.0, -10.0)  # 65 ... 5: 15 mm of overlap
    extents = trim_extents([upper, lower], [EdgeTrim(0, 1), EdgeTrim(0, 0)], minimum=2, min_overlap=5.0)
    # the noisy bottom slice of the upper station stays trimmed; the fixed minimum is given back to keep 5 mm
    assert (extents[0].trimmed, extents[1].trimmed) == (EdgeTrim(0, 1), EdgeTrim(0, 0))
    assert extents[1].top - extents[0].bottom == 5.0


def test_noisy_slices_stay_trimmed_across_a_gap_of_one_slice_which_both_neighbours_bridge():
    upper = np.arange(100.0, 40.0, -10.0)  # 100 ... 50
    lower = np.arange(65.0, 0.0, -10.0)  # 65 ... 5
    extents = trim_extents([upper, lower], [EdgeTrim(0, 1), EdgeTrim(1, 0)], minimum=0, min_overlap=5.0)
    assert (extents[0].bottom, extents[1].top) == (60.0, 55.0)  # 5 mm apart: bridged, not given back
    assert (extents[0].reach_bottom, extents[1].reach_top) == (55.0, 60.0)
    extents = trim_extents([upper, lower], [EdgeTrim(0, 2), EdgeTrim(2, 0)], minimum=0, min_overlap=5.0)
    assert extents[0].bottom - extents[1].top <= 10.0  # never more than a slice apart


def test_feather_weights_sum_to_one_and_hand_over_smoothly_inside_the_overlap():
    z = np.arange(100.0, -1.0, -1.0)
    weights = feather_weights(z, [_extent(100, 40), _extent(60, 0)], feather_mm=10.0)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-6)
    upper = weights[0]
    assert np.all(upper[z > 55] == pytest.approx(1.0, abs=2e-3))  # above the band: the upper station only
    assert np.all(upper[z < 45] == pytest.approx(0.0, abs=2e-3))  # below: the lower station only
    band = (z <= 55) & (z >= 45)
    assert np.all(np.diff(upper[band]) <= 1e-6)  # monotone hand-over
    assert upper[z == 50][0] == pytest.approx(0.5, abs=1e-3)  # centred in the overlap


def _flat_series(value: float, *, z, y0: float, ny: int) -> Series:
    z = np.asarray(z, dtype=np.float64)
    return Series(uid=str(value), number=1, description="t_F", channel="F", acquired="", z=z,
                  volume=np.full((z.size, ny, 4), value, dtype=np.uint16), x0=0.0, y0=y0, sx=1.0, sy=1.0)


def test_blend_copies_single_coverage_and_mixes_overlaps_voxel_by_voxel():
    grid = Grid(origin=(0.0, 0.0, 9.0), spacing=(1.0, 1.0, 1.0), shape=(4, 6, 10))  # z = 9 ... 0
    upper = _flat_series(100, z=[9, 8, 7, 6, 5, 4], y0=0.0, ny=6)  # all rows
    lower = _flat_series(50, z=[5, 4, 3, 2, 1, 0], y0=1.0, ny=4)  # rows 1-4 only
    placements = [place(series, grid, top=9.0, bottom=0.0) for series in (upper, lower)]
    weights = np.zeros((2, 10), dtype=np.float32)
    weights[0, :4], weights[1, 6:] = 1, 1
    weights[:, 4:6] = [[0.75, 0.25], [0.25, 0.75]]
    pieces = [Piece(upper, placements[0]), Piece(lower, placements[1], scale=2.0)]  # harmonised to 100
    out = blend(pieces, weights, grid)
    assert out.shape == (10, 6, 4)
    np.testing.assert_allclose(out[:4], 100.0)
    np.testing.assert_allclose(out[4:6], 100.0)  # both scaled to 100: no step
    np.testing.assert_allclose(out[6:, 1:5], 100.0)
    np.testing.assert_allclose(out[6:, [0, 5]], 0.0)  # outside every station: air
    pieces[1] = Piece(_flat_series(60, z=lower.z, y0=1.0, ny=4), placements[1])
    out = blend(pieces, weights, grid)
    assert out[4, 2, 0] == pytest.approx(0.75 * 100 + 0.25 * 60)
    assert out[4, 0, 0] == pytest.approx(100.0)  # only the upper station covers row 0: it is used as it is


def test_slabs_that_just_touch_keep_their_edge_slices_and_are_bridged():
    upper = np.arange(100.0, 40.0, -10.0)  # 100 ... 50: its slab reaches down to 45
    lower = np.arange(40.0, 0.0, -10.0)  # 40 ... 10: its slab reaches up to 45, so they touch
    extents = trim_extents([upper, lower], [EdgeTrim(0, 2), EdgeTrim(1, 0)], minimum=2, min_overlap=5.0)
    assert (extents[0].bottom, extents[1].top) == (50.0, 40.0)  # no neighbour covers them: nothing trimmed
    assert (extents[0].reach_bottom, extents[1].reach_top) == (40.0, 50.0)  # the slice between is bridged
    weights = feather_weights(np.arange(100.0, 9.0, -5.0), extents, feather_mm=24.0)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-6)  # every output slice is covered
