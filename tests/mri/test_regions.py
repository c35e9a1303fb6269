"""Regional fat/water swaps: regions of any shape found voxel by voxel (regions.py), and halves of the body over
z-ranges found slice by slice where pixels are coarse or brightness cannot tell fat (halves.py)."""

from __future__ import annotations

import numpy as np
import pytest
from mri_fakes import FakeStation, station_images

from ukbb_pipeline.mri.halves import HalfRegion, ladder_labels, slice_evidence
from ukbb_pipeline.mri.halves import find_half_regions as halves
from ukbb_pipeline.mri.harmonise import body_mask
from ukbb_pipeline.mri.regions import complement, find_regions, otsu_threshold, swap_evidence
from ukbb_pipeline.mri.swaps import pattern_score, seam_agreement
from ukbb_pipeline.synthetic import Phantom
from ukbb_pipeline.synthetic.swap_shapes import draw_shape


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


def test_halves_a_normal_station_has_no_swapped_region():
    fat, water, x, z, spacing = _station()
    assert halves(fat, water, x=x, z=z, row_spacing=spacing, index=0) == []


def test_a_z_range_swapped_on_both_sides_is_found_and_named():
    fat, water, x, z, spacing = _station()
    fat, water = _swap(fat, water, slice(5, 10), slice(None))
    regions = halves(fat, water, x=x, z=z, row_spacing=spacing, index=2)
    assert len(regions) == 1
    region = regions[0]
    assert (region.side, region.z_top, region.z_bottom) == ("both", pytest.approx(z[5]), pytest.approx(z[9]))
    assert region.label(3) == f"3:z {z[5]:.0f} to {z[9]:.0f} mm"


def test_one_side_swapped_over_the_whole_station_is_that_half():
    fat, water, x, z, spacing = _station()
    fat, water = _swap(fat, water, slice(None), x > 0)
    regions = halves(fat, water, x=x, z=z, row_spacing=spacing, index=0)
    assert [r.label(4) for r in regions] == ["4:left-half"]


def test_halves_a_station_swapped_everywhere_is_left_to_the_whole_station_check():
    fat, water, x, z, spacing = _station()
    assert halves(water, fat, x=x, z=z, row_spacing=spacing, index=0) == []


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


# ---- voxel by voxel, on the phantom at 4.5 mm pixels (regions.py) -------------------------------------------------

PIXEL = 2.232142925262451 * 2


def phantom_station(*, fat_signal: float = 1100.0, water_signal: float = 650.0, seed: int = 3, z_top: float = 330.0,
                    noise: float = 6.0):
    """A trunk station (z 330 to 150 mm, arms beside it) of a phantom: F and W (z, y, x) with the table and noise."""
    phantom = Phantom(fat_signal=fat_signal, water_signal=water_signal, x_shift=8.0)
    x = -250.0 + PIXEL / 2 + np.arange(112) * PIXEL
    y = -90.0 + np.arange(50) * PIXEL
    z = z_top - 10.0 * np.arange(19)
    fat, water = phantom.grid(xs=x, ys=y, zs=z, include_bed=True)
    rng = np.random.default_rng(seed)
    fat, water = (np.hypot(image + rng.normal(0, noise, image.shape), rng.normal(0, noise, image.shape))
                  .astype(np.float32) for image in (fat, water))
    return phantom, fat, water, x, y, z


def regions_of(fat, water, x, z, index=2):
    return find_regions(fat, water, x=x, z=z, row_spacing=PIXEL, column_spacing=PIXEL, step=1, index=index)


@pytest.fixture(scope="module")
def station():
    return phantom_station()


def test_otsu_splits_two_levels_between_them():
    values = np.concatenate([np.full(300, 700.0), np.full(100, 1100.0)]) + np.random.default_rng(0).normal(0, 20, 400)
    assert 750 < otsu_threshold(values) < 1050


def test_the_evidence_is_positive_for_normal_tissue_and_negative_where_swapped(station):
    _, fat, water, *_ = station
    normal = swap_evidence(fat, water)
    assert normal.contrast > 1.5
    assert np.median(normal.evidence[normal.core]) > 0.4
    swapped = swap_evidence(water, fat)
    assert np.median(swapped.evidence[swapped.core]) < -0.4


def test_a_normal_station_has_no_region(station):
    _, fat, water, x, _, z = station
    assert regions_of(fat, water, x, z) == []


@pytest.mark.parametrize(("kind", "seed"), [("strip", 1), ("arm", 2), ("blob", 3), ("irregular", 4)])
def test_a_swap_of_any_shape_is_found_and_only_its_voxels_are_marked(station, kind, seed):
    phantom, fat, water, x, y, z = station
    shape = draw_shape(kind, phantom=phantom, station=3, z_range=(z.min(), z.max()), rng=np.random.default_rng(seed))
    truth = shape.mask(x[None, None, :], y[None, :, None], z[:, None, None])
    body = body_mask(fat + water)
    regions = regions_of(np.where(truth, water, fat), np.where(truth, fat, water), x, z)
    assert regions and all(region.certain for region in regions), kind
    marked = np.zeros(truth.shape, dtype=bool)
    for region in regions:
        marked |= region.voxels
    swapped = truth & body
    assert (marked & swapped).sum() >= 0.8 * swapped.sum(), kind  # most of the swap is marked ...
    assert (marked & body & ~truth).sum() <= 0.05 * (body & ~truth).sum(), kind  # ... and little else
    assert all(region.label(3).startswith("3:") and " ml" in region.label(3) for region in regions)


def test_a_lateral_strip_is_named_by_its_side_and_extent(station):
    phantom, fat, water, x, _y, z = station
    strip = (x > phantom.x_shift + 100.0)[None, None, :] & (z[:, None, None] < 290.0)
    regions = regions_of(np.where(strip, water, fat), np.where(strip, fat, water), x, z)  # the flank, the arm
    assert len(regions) == 2 and {region.side for region in regions} == {"left"}
    for region in regions:
        assert region.label(3).startswith(f"3:left-half z {z[z < 290.0][0]:.0f} to {z[-1]:.0f} mm, x ")
        assert region.x_range[0] >= phantom.x_shift + 90.0


def test_voxels_a_station_swapped_everywhere_is_left_to_the_whole_station_check(station):
    _, fat, water, x, _, z = station
    assert regions_of(water, fat, x, z) == []


def test_without_brightness_contrast_the_halves_judge_and_their_regions_become_voxel_masks():
    phantom, fat, water, x, _, z = phantom_station(fat_signal=900.0, water_signal=820.0)
    assert swap_evidence(fat, water).contrast < 1.5
    left = (x > phantom.x_shift)[None, None, :] & np.ones((z.size, 1, 1), dtype=bool)
    (region,) = regions_of(np.where(left, water, fat), np.where(left, fat, water), x, z)
    assert region.label(3).startswith("3:left-half")
    assert region.voxels[:, :, x > phantom.x_shift + 5].all() and not region.voxels[:, :, x < phantom.x_shift].any()


def test_the_rest_of_a_station_outside_its_regions(station):
    _phantom, fat, water, x, y, z = station
    blob = ((x[None, None, :] - 150) ** 2 + (y[None, :, None] - 40) ** 2 + (z[:, None, None] - 240) ** 2) < 50**2
    regions = regions_of(np.where(blob, water, fat), np.where(blob, fat, water), x, z)
    (rest,) = complement(regions)
    assert rest.label(3) == "3:whole outside the other regions"
    assert not (rest.voxels & regions[0].voxels).any() and (rest.voxels | regions[0].voxels).all()


def test_halves_keep_their_vocabulary():
    region = HalfRegion(index=0, side="left", z_top=10.0, z_bottom=-50.0, midline=0.0, legs=True, whole_z=True)
    assert region.label(5) == "5:left-leg"
