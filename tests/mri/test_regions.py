"""Regional fat/water swaps: one side or a z-range of a station, found slice by slice and named."""

from __future__ import annotations

import numpy as np
import pytest
from mri_fakes import FakeStation, station_images

from ukbb_pipeline.mri.harmonise import body_mask
from ukbb_pipeline.mri.regions import SwapRegion, complement, find_regions, ladder_labels, slice_evidence
from ukbb_pipeline.mri.swaps import pattern_score, seam_agreement


def _station(n=16):
    station = FakeStation(number=3, rows=44, columns=56, z=tuple(np.linspace(300.0, 100.0, n)))
    images = station_images(station, noise=5.0)
    x = station.x0 + np.arange(station.columns) * station.spacing
    return images["F"].astype(np.float32), images["W"].astype(np.float32), x, np.asarray(station.z), station.spacing


def _swap(fat, water, slices, columns):
    fat, water = fat.copy(), water.copy()
    region = np.zeros(fat.shape, dtype=bool)
    region[slices][..., columns] = True
    return np.where(region, water, fat), np.where(region, fat, water)


def test_the_ladder_follows_strong_links_and_breaks_only_where_they_are_negative():
    patterns = np.full((2, 6), 0.1)
    along = np.full((2, 5), 1.8)
    along[1, 2] = -1.8  # the left half changes between slices 2 and 3
    labels = ladder_labels(patterns, along, np.full(6, 0.3), cost=0.05)
    assert labels[0].tolist() == [1] * 6
    assert labels[1].tolist() == [1, 1, 1, -1, -1, -1] or labels[1].tolist() == [-1, -1, -1, 1, 1, 1]


def test_a_normal_station_has_no_swapped_region():
    fat, water, x, z, spacing = _station()
    assert find_regions(fat, water, x=x, z=z, row_spacing=spacing, index=0) == []


def test_a_z_range_swapped_on_both_sides_is_found_and_named():
    fat, water, x, z, spacing = _station()
    fat, water = _swap(fat, water, slice(5, 10), slice(None))
    regions = find_regions(fat, water, x=x, z=z, row_spacing=spacing, index=2)
    assert len(regions) == 1
    region = regions[0]
    assert (region.side, region.z_top, region.z_bottom) == ("both", pytest.approx(z[5]), pytest.approx(z[9]))
    assert region.label(3) == f"3:z {z[5]:.0f} to {z[9]:.0f} mm"


def test_one_side_swapped_over_the_whole_station_is_that_half():
    fat, water, x, z, spacing = _station()
    fat, water = _swap(fat, water, slice(None), x > 0)
    regions = find_regions(fat, water, x=x, z=z, row_spacing=spacing, index=0)
    assert [r.label(4) for r in regions] == ["4:left-half"]


def test_a_station_swapped_everywhere_is_left_to_the_whole_station_check():
    fat, water, x, z, spacing = _station()
    assert find_regions(water, fat, x=x, z=z, row_spacing=spacing, index=0) == []


def test_the_rest_of_a_station_outside_its_regions():
    z = np.linspace(300.0, 100.0, 11)
    inner = SwapRegion(index=0, side="both", z_top=z[3], z_bottom=z[6], midline=0.0, legs=True, whole_z=False)
    rest = complement([inner], z=z)
    assert [(r.side, r.z_top, r.z_bottom) for r in rest] == [("both", z[0], z[2]), ("both", z[7], z[10])]
    left = SwapRegion(index=0, side="left", z_top=z[0], z_bottom=z[-1], midline=0.0, legs=True, whole_z=True)
    assert [r.label(5) for r in complement([left], z=z)] == ["5:right-leg"]


def test_the_slice_evidence_is_the_station_evidence_of_swaps_py_one_slice_at_a_time():
    fat, water, x, _, spacing = _station()
    columns = x > 0
    patterns, agreements = slice_evidence(fat, water, columns=columns, row_spacing=spacing)
    f, w = fat[:, :, columns], water[:, :, columns]
    body = body_mask(f + w)
    for k in (0, 7, 15):  # pattern_score finds the body per call: the same on a one-slice volume up to its mask
        assert patterns[k] == pytest.approx(pattern_score(f[k:k + 1], w[k:k + 1], row_spacing=spacing), abs=0.05)
    for k in (0, 7, 14):
        expected = seam_agreement(f[k], w[k], f[k + 1], w[k + 1], body[k] & body[k + 1])
        assert agreements[k] == pytest.approx(expected, abs=1e-9)
