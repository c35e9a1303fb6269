"""The common output grid of a stitched volume, and linear resampling of a series onto it.

The grid covers the union of the stations in x and y (no crop to the smallest one) at the in-plane spacing, and runs
from the top of the highest station down to the bottom of the lowest at the chosen z spacing. Working arrays are
(z, y, x) with z running head to feet: voxel [k, j, i] lies at LPS (x0 + i*sx, y0 + j*sy, z0 - k*sz).

A series is resampled by gather and lerp along each axis (fifty times faster than spline zooming, and no ringing),
from its real slice positions, so a missing slice is bridged from its true neighbours. In-plane resampling is skipped
when a series already lies on the grid (the usual case: one pixel spacing, FOVs offset by whole pixels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ukbb_pipeline.mri.series import Series
from ukbb_pipeline.mri.tolerance import VOXEL_FRACTION

ON_GRID = VOXEL_FRACTION  # voxels: closer than this to a grid line counts as on it (see tolerance.py)
EDGE_TOLERANCE = VOXEL_FRACTION  # voxels of slack when deciding whether a grid point lies inside a series


@dataclass(frozen=True)
class Grid:
    """The output grid: LPS origin of voxel [0, 0, 0], spacing and shape, in (x, y, z) order."""

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]

    @property
    def zyx_shape(self) -> tuple[int, int, int]:
        return self.shape[2], self.shape[1], self.shape[0]

    @property
    def x(self) -> np.ndarray:
        return self.origin[0] + np.arange(self.shape[0]) * self.spacing[0]

    @property
    def y(self) -> np.ndarray:
        return self.origin[1] + np.arange(self.shape[1]) * self.spacing[1]

    @property
    def z(self) -> np.ndarray:
        return self.origin[2] - np.arange(self.shape[2]) * self.spacing[2]

    def slices_within(self, top: float, bottom: float) -> slice:
        """The output slices whose z lies in [bottom, top] (an empty slice when none)."""
        sz = self.spacing[2]
        first = int(np.ceil((self.origin[2] - top) / sz - EDGE_TOLERANCE))
        last = int(np.floor((self.origin[2] - bottom) / sz + EDGE_TOLERANCE))
        first, last = max(first, 0), min(last, self.shape[2] - 1)
        return slice(first, max(first, last + 1))


def union_grid(
    boxes: Sequence[tuple[float, float, float, float, float, float]],
    *,
    in_plane: tuple[float, float],
    z_spacing: float,
) -> Grid:
    """The grid covering every box (x_lo, x_hi, y_lo, y_hi, z_bottom, z_top) at the given spacings."""
    sx, sy = in_plane
    x_lo, y_lo = min(b[0] for b in boxes), min(b[2] for b in boxes)
    x_hi, y_hi = max(b[1] for b in boxes), max(b[3] for b in boxes)
    z_bottom, z_top = min(b[4] for b in boxes), max(b[5] for b in boxes)
    nx = int(np.floor((x_hi - x_lo) / sx + EDGE_TOLERANCE)) + 1
    ny = int(np.floor((y_hi - y_lo) / sy + EDGE_TOLERANCE)) + 1
    nz = int(np.floor((z_top - z_bottom) / z_spacing + EDGE_TOLERANCE)) + 1
    return Grid(origin=(x_lo, y_lo, z_top), spacing=(sx, sy, z_spacing), shape=(nx, ny, nz))


@dataclass(frozen=True)
class AxisMap:
    """Where one axis of a series lands on the grid: the output range, and for each output index the series index
    below it and the fraction towards the next (``fraction`` None when the series lies on the grid there)."""

    out: slice
    index: np.ndarray | slice
    fraction: np.ndarray | None


@dataclass(frozen=True)
class Placement:
    """Where a series lands on the grid, between z ``top`` and ``bottom``; empty when it does not."""

    z: AxisMap
    y: AxisMap
    x: AxisMap

    @property
    def empty(self) -> bool:
        return any(axis.out.stop <= axis.out.start for axis in (self.z, self.y, self.x))


def place(
    series: Series, grid: Grid, *, top: float, bottom: float, hold: tuple[float, float] | None = None
) -> Placement:
    """How to resample ``series`` onto ``grid`` for the output slices between z ``top`` and ``bottom``.

    With ``hold`` = (high, low), output slices beyond that z range take the series at its edge (the slice at
    ``high`` or ``low``, interpolated if need be), which bridges a gap to a neighbouring station.
    """
    if hold is None:
        ks = grid.slices_within(min(top, series.z_top), max(bottom, series.z_bottom))
        targets = grid.z[ks]
    else:
        ks = grid.slices_within(top, bottom)
        targets = np.clip(grid.z[ks], max(hold[1], series.z_bottom), min(hold[0], series.z_top))
    z_map = _z_map(series.z, targets, ks)
    y_map = _regular_map(grid.y, start=series.y0, step=series.sy, n=series.volume.shape[1])
    x_map = _regular_map(grid.x, start=series.x0, step=series.sx, n=series.volume.shape[2])
    return Placement(z=z_map, y=y_map, x=x_map)


def sample(series: Series, placement: Placement, *, ks: slice | None = None) -> np.ndarray:
    """``series`` resampled onto the placement's output voxels (float32, (z, y, x)); ``ks`` limits the output
    slices to a sub-range of ``placement.z.out`` (in grid slice numbers)."""
    z_map = placement.z
    if ks is not None:
        start = max(ks.start, z_map.out.start) - z_map.out.start
        stop = min(ks.stop, z_map.out.stop) - z_map.out.start
        z_map = AxisMap(
            out=slice(z_map.out.start + start, z_map.out.start + max(start, stop)),
            index=z_map.index[start:stop],  # type: ignore[index]
            fraction=None if z_map.fraction is None else z_map.fraction[start:stop],
        )
    # In-plane cropping first (a view when on the grid), so that the z gather copies only what is needed.
    volume = series.volume
    if isinstance(placement.y.index, slice):
        volume = volume[:, placement.y.index, :]
    if isinstance(placement.x.index, slice):
        volume = volume[:, :, placement.x.index]
    out = _lerp(volume, z_map.index, z_map.fraction, axis=0)  # type: ignore[arg-type]
    if not isinstance(placement.y.index, slice):
        out = _lerp(out, placement.y.index, placement.y.fraction, axis=1)
    if not isinstance(placement.x.index, slice):
        out = _lerp(out, placement.x.index, placement.x.fraction, axis=2)
    return out


def resample_into(
    target: np.ndarray, series: Series, placement: Placement, *, start: int, stop: int, weights: np.ndarray,
    add: bool,
) -> None:
    """``target`` (set, or ``add``-ed to) = ``weights`` (per slice) times ``series`` resampled onto the output
    slices ``start:stop`` of ``placement`` (counted from its first slice). Without a temporary block when the
    series lies on the grid in-plane."""
    z_map = placement.z
    index = z_map.index[start:stop]  # type: ignore[index]
    fraction = None if z_map.fraction is None else z_map.fraction[start:stop]
    weights = weights.astype(np.float32).reshape(-1, 1, 1)
    if not (isinstance(placement.y.index, slice) and isinstance(placement.x.index, slice)):
        block = sample(series, placement, ks=slice(z_map.out.start + start, z_map.out.start + stop))
        block *= weights
        if add:
            target += block
        else:
            target[...] = block
        return
    # One output slice at a time: each step works on two planes that stay in cache (4x faster than gathering).
    volume = series.volume[:, placement.y.index, placement.x.index]
    low_weights = weights.ravel() * (1 - (0 if fraction is None else fraction.astype(np.float32)))
    high_weights = None if fraction is None else weights.ravel() * fraction.astype(np.float32)
    scratch = np.empty(target.shape[1:], dtype=np.float32)
    last = volume.shape[0] - 1
    for k, j in enumerate(index):
        if add:
            np.multiply(volume[j], low_weights[k], out=scratch)
            target[k] += scratch
        else:
            np.multiply(volume[j], low_weights[k], out=target[k])
        if high_weights is not None and high_weights[k] != 0:
            np.multiply(volume[min(j + 1, last)], high_weights[k], out=scratch)
            target[k] += scratch


def _lerp(volume: np.ndarray, index: np.ndarray, fraction: np.ndarray | None, *, axis: int) -> np.ndarray:
    """``volume`` gathered at ``index`` and blended towards ``index + 1`` by ``fraction`` along ``axis`` (float32)."""
    low = np.take(volume, index, axis=axis)
    out = low.astype(np.float32, copy=low.dtype != np.float32)
    if fraction is None:
        return out
    shape = [1, 1, 1]
    shape[axis] = -1
    weights = fraction.astype(np.float32).reshape(shape)
    moving = fraction > 0
    if not moving.any():
        return out
    high = np.take(volume, np.minimum(index + 1, volume.shape[axis] - 1), axis=axis)
    out += (high.astype(np.float32) - out) * weights  # float32 throughout: (high - low) * t + low
    return out


def _z_map(positions: np.ndarray, targets: np.ndarray, ks: slice) -> AxisMap:
    """Series slice index below (towards the feet of) each target z is ``index + 1``; ``positions`` decrease."""
    if targets.size == 0:
        return AxisMap(out=slice(ks.start, ks.start), index=np.zeros(0, dtype=np.intp), fraction=None)
    ascending = -positions  # increasing
    wanted = -targets
    index = np.searchsorted(ascending, wanted, side="right") - 1
    index = np.clip(index, 0, positions.size - 2)
    low, high = ascending[index], ascending[index + 1]
    fraction = np.clip((wanted - low) / (high - low), 0.0, 1.0)
    snap_low, snap_high = fraction < ON_GRID, fraction > 1 - ON_GRID
    index = np.where(snap_high, index + 1, index)
    fraction = np.where(snap_low | snap_high, 0.0, fraction)
    return AxisMap(out=ks, index=index, fraction=None if not fraction.any() else fraction)


def _regular_map(grid_coordinates: np.ndarray, *, start: float, step: float, n: int) -> AxisMap:
    """Map grid coordinates onto a regular series axis (start, step, n); a slice when the series lies on the grid."""
    position = (grid_coordinates - start) / step
    inside = np.flatnonzero((position >= -EDGE_TOLERANCE) & (position <= n - 1 + EDGE_TOLERANCE))
    if inside.size == 0:
        return AxisMap(out=slice(0, 0), index=slice(0, 0), fraction=None)
    out = slice(int(inside[0]), int(inside[-1]) + 1)
    position = np.clip(position[out], 0.0, n - 1)
    nearest = np.rint(position)
    if np.abs(position - nearest).max() < ON_GRID and (inside.size == 1 or np.all(np.diff(nearest) == 1)):
        return AxisMap(out=out, index=slice(int(nearest[0]), int(nearest[-1]) + 1), fraction=None)
    index = np.minimum(np.floor(position).astype(np.intp), n - 2) if n > 1 else np.zeros(position.size, np.intp)
    fraction = position - index
    return AxisMap(out=out, index=index, fraction=fraction)
