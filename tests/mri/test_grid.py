"""The union grid and linear resampling onto it, checked on volumes whose values are their own coordinates."""

from __future__ import annotations

import numpy as np
import pytest

from ukbb_pipeline.mri.grid import Grid, place, sample, union_grid
from ukbb_pipeline.mri.series import Series


def _coordinate_series(axis: str, *, z, x0=0.0, y0=0.0, sx=2.0, sy=2.0, ny=4, nx=5) -> Series:
    """A series whose voxel values are their LPS coordinate along ``axis`` (plus 1000, to stay positive)."""
    z = np.asarray(z, dtype=np.float64)
    coordinates = {
        "x": np.broadcast_to(x0 + np.arange(nx) * sx, (z.size, ny, nx)),
        "y": np.broadcast_to((y0 + np.arange(ny) * sy)[:, None], (z.size, ny, nx)),
        "z": np.broadcast_to(z[:, None, None], (z.size, ny, nx)),
    }[axis]
    return Series(uid=axis, number=1, description="t_F", channel="F", acquired="", z=z,
                  volume=np.ascontiguousarray(coordinates + 1000.0, dtype=np.float32), x0=x0, y0=y0, sx=sx, sy=sy)


def test_the_union_grid_covers_every_box_at_the_given_spacing():
    grid = union_grid([(-10, 10, -4, 4, 0, 100), (-12, 8, -6, 6, -50, 20)], in_plane=(2.0, 2.0), z_spacing=5.0)
    assert grid.origin == (-12, -6, 100)
    assert grid.shape == (12, 7, 31)
    assert grid.z[0] == 100
    assert grid.z[-1] == -50
    assert grid.zyx_shape == (31, 7, 12)


def test_z_is_resampled_linearly_from_the_real_slice_positions_even_across_a_gap():
    positions = [40.0, 37.0, 34.0, 28.0, 25.0]  # the slice at 31 is missing
    series = _coordinate_series("z", z=positions)
    grid = Grid(origin=(0.0, 0.0, 41.0), spacing=(2.0, 2.0, 1.0), shape=(5, 4, 20))
    placement = place(series, grid, top=100.0, bottom=-100.0)
    assert (placement.z.out.start, placement.z.out.stop) == (1, 17)  # z = 40 ... 25
    values = sample(series, placement)
    np.testing.assert_allclose(values[:, 0, 0] - 1000, grid.z[1:17], atol=1e-4)


def test_output_slices_beyond_the_held_range_take_the_edge_slice():
    series = _coordinate_series("z", z=[40.0, 30.0, 20.0, 10.0])
    grid = Grid(origin=(0.0, 0.0, 45.0), spacing=(2.0, 2.0, 5.0), shape=(5, 4, 9))  # z = 45 ... 5
    placement = place(series, grid, top=40.0, bottom=5.0, hold=(40.0, 20.0))
    values = sample(series, placement)[:, 0, 0] - 1000
    np.testing.assert_allclose(values, [40, 35, 30, 25, 20, 20, 20, 20], atol=1e-4)


def test_a_series_on_the_grid_is_placed_by_whole_voxels_without_interpolation():
    series = _coordinate_series("x", z=[10.0, 0.0], x0=4.0, nx=5)
    grid = Grid(origin=(0.0, 0.0, 10.0), spacing=(2.0, 2.0, 10.0), shape=(10, 4, 2))
    placement = place(series, grid, top=10.0, bottom=0.0)
    assert isinstance(placement.x.index, slice)
    assert (placement.x.out.start, placement.x.out.stop) == (2, 7)
    np.testing.assert_array_equal(sample(series, placement)[0, 0] - 1000, [4, 6, 8, 10, 12])


@pytest.mark.parametrize("axis", ["x", "y"])
def test_a_series_off_the_grid_is_interpolated_in_plane(axis):
    offset = {"x0": 0.7} if axis == "x" else {"y0": 0.7}
    series = _coordinate_series(axis, z=[10.0, 0.0], sx=1.5, sy=1.5, nx=8, ny=8, **offset)
    grid = Grid(origin=(0.0, 0.0, 10.0), spacing=(2.0, 2.0, 10.0), shape=(8, 8, 2))
    placement = place(series, grid, top=10.0, bottom=0.0)
    values = sample(series, placement)[0] - 1000
    coordinates = grid.x[placement.x.out] if axis == "x" else grid.y[placement.y.out]
    expected = coordinates[None, :] if axis == "x" else coordinates[:, None]
    np.testing.assert_allclose(values, np.broadcast_to(expected, values.shape), atol=1e-4)
    assert coordinates.min() >= 0.7 - 1e-6
    assert coordinates.max() <= 0.7 + 7 * 1.5 + 1e-6


def test_a_sub_range_of_output_slices_can_be_sampled_alone():
    series = _coordinate_series("z", z=[40.0, 30.0, 20.0, 10.0])
    grid = Grid(origin=(0.0, 0.0, 40.0), spacing=(2.0, 2.0, 2.5), shape=(5, 4, 13))
    placement = place(series, grid, top=40.0, bottom=10.0)
    whole = sample(series, placement)
    part = sample(series, placement, ks=slice(3, 7))
    np.testing.assert_array_equal(part, whole[3:7])
