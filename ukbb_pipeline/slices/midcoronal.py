"""The mid-coronal slab: where the body's fat is split in half front to back, and the rows kept around it.

The centre is the coronal row (axis 1 of an (x, y, z) volume) at which the cumulative fat signal reaches half of the
total, the original scripts' "centre of mass of the coronal intensity histogram" (a weighted median of y). Two
things that are not the body would pull it: background noise, spread over every row, and the scanner table, a plate
under the body's back that shows in the fat image. So the profile sums only fat above a noise threshold, and leaves
out the table's lines: an (x, row) line of the table has the same signal in every axial slice, and the table's rows
are flat across the whole field of view, whereas the body changes along z (neck, trunk, legs with air between them).

Everything here takes arrays and returns numbers. The profile can be measured on a subset of rows (every k-th row,
then more rows near the first answer), so that an HDF5 reader decompresses only a fraction of the volume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.slices.curved import curved_rows

# The median |difference| of two independent Rayleigh(sigma) samples (magnitude noise in air) is 0.613 sigma.
_MEDIAN_DIFFERENCE_TO_SIGMA = 1.0 / 0.613


@dataclass(frozen=True)
class SignalLevels:
    """What counts as body signal in one fat volume.

    ``noise_sigma`` is the estimated noise standard deviation, ``fat_level`` the signal of fat tissue (a high
    percentile), and ``threshold`` the signal above the table background that a voxel needs to count as body.
    """

    noise_sigma: float
    fat_level: float
    threshold: float


@dataclass(frozen=True)
class TableModel:
    """How the scanner table is told from the body (see :func:`table_background`)."""

    low_quantile: float = 0.05  # of a line's values along z: its background
    flatness: float = 0.5  # a line is flat when that background is at least this fraction of its median
    width: float = 0.6  # a row is table when at least this fraction of its columns is flat


@dataclass(frozen=True)
class SlabWindow:
    """The rows (axis 1 of the input volume) of the slab and how far the window was moved to fit the volume.

    ``shift`` is in rows of the input volume: positive when the window was moved towards higher rows (posterior)
    because the centre lies near row 0, negative near the last row, 0 when the centred window fits.
    """

    centre: int
    rows: np.ndarray
    shift: int


@dataclass(frozen=True)
class CentreEstimate:
    """The chosen centre row with the profile it came from (for QC pictures and the manifest)."""

    centre: int
    rows: np.ndarray  # rows at which the profile was measured, ascending
    profile: np.ndarray  # body fat summed over x and z at those rows
    levels: SignalLevels


# Sampling that keeps the centre within a row of the full profile's (phantoms with noise, table and station gains).
PROFILE_STEP_MM = 14.0  # between coarse profile rows: 6 rows at 2.23 mm, every row at 8.9 mm
IN_PLANE_STEP_MM = 9.5  # between the x and z samples summed per row: every 4th voxel at 2.23 mm


def auto_profile_stride(row_spacing: float) -> int:
    """Rows between coarse profile samples for rows ``row_spacing`` mm apart (about 14 mm, at least 1)."""
    return max(1, int(PROFILE_STEP_MM // row_spacing))


def auto_in_plane_step(x_spacing: float, z_spacing: float) -> int:
    """Voxels between the samples summed along x and z (about 9.5 mm on the coarser axis, at least 1)."""
    return max(1, int(IN_PLANE_STEP_MM // max(x_spacing, z_spacing)))


def profile_rows(n_rows: int, *, stride: int) -> np.ndarray:
    """Every ``stride``-th row from 0, and the last row, so that interpolation covers the whole volume."""
    if stride < 1:
        raise ValueError(f"profile stride must be >= 1, got {stride}")
    rows = np.arange(0, n_rows, stride)
    if rows[-1] != n_rows - 1:
        rows = np.append(rows, n_rows - 1)
    return rows


def signal_levels(
    fat: np.ndarray,
    *,
    noise_multiple: float = 5.0,
    fat_fraction: float = 0.05,
    fat_percentile: float = 99.5,
) -> SignalLevels:
    """Estimate the noise and fat-tissue levels of a fat image block ``(x, rows, z)``.

    The noise is the median absolute difference of neighbours along z (exact zeros, e.g. padding, left out),
    scaled for magnitude noise in air, which fills most of a neck-to-knee field of view; tissue edges barely move
    the median. The body threshold is the larger of ``noise_multiple`` noise deviations and ``fat_fraction`` of
    the fat-tissue level (the ``fat_percentile`` of the block).
    """
    values = np.asarray(fat, dtype=np.float32)
    left, right = values[..., 1:], values[..., :-1]
    differences = np.abs(left - right)[(left != 0) | (right != 0)]
    noise_sigma = float(np.median(differences)) * _MEDIAN_DIFFERENCE_TO_SIGMA if differences.size else 0.0
    fat_level = float(np.percentile(values, fat_percentile)) if values.size else 0.0
    if not fat_level > 0:
        raise InputError("the fat image holds no signal")
    threshold = max(noise_multiple * noise_sigma, fat_fraction * fat_level)
    return SignalLevels(noise_sigma=float(noise_sigma), fat_level=fat_level, threshold=float(threshold))


def table_lines(fat: np.ndarray, *, threshold: float, table: TableModel = TableModel()) -> np.ndarray:
    """Which (x, row) lines of a block ``(x, rows, z)`` are the scanner table: bool, shape ``(x, rows, 1)``.

    A line is flat when its median along z exceeds ``threshold`` and its ``table.low_quantile`` along z is at
    least ``table.flatness`` times that median: much the same signal in every axial slice (station gains, which
    step the table's signal from station to station, stay well within that). The body's back resting on the
    table is flat too, but only over the columns of the trunk and legs, whereas the table is flat across the
    field of view: so flat lines are table only in rows where at least ``table.width`` of the columns are flat.
    Axial slices that are zero throughout (padding where a station is missing) are left out.
    """
    values = np.asarray(fat, dtype=np.float32)
    acquired = np.any(values != 0, axis=(0, 1))  # all-zero axial slices are padding (a missing station)
    if not acquired.all():
        values = values[..., acquired]
    n_z = values.shape[-1]
    if n_z == 0:
        return np.zeros((*fat.shape[:2], 1), dtype=bool)
    low_k = min(n_z - 1, int(table.low_quantile * n_z))
    mid_k = n_z // 2
    parted = np.partition(values, sorted({low_k, mid_k}), axis=-1)
    low, mid = parted[..., low_k : low_k + 1], parted[..., mid_k : mid_k + 1]
    flat = (mid > threshold) & (low >= table.flatness * mid)
    return flat & (flat.mean(axis=0, keepdims=True) >= table.width)


def body_fat(fat: np.ndarray, *, levels: SignalLevels, table: TableModel = TableModel()) -> np.ndarray:
    """The fat signal where it is body: above the threshold and not on a table line; else 0 (float32)."""
    values = np.asarray(fat, dtype=np.float32)
    keep = (values > levels.threshold) & ~table_lines(values, threshold=levels.threshold, table=table)
    return np.where(keep, values, np.float32(0))


def coronal_profile(
    fat: np.ndarray,
    *,
    levels: SignalLevels,
    in_plane_step: int = 4,
    table: TableModel = TableModel(),
) -> np.ndarray:
    """Body fat summed over x and z for each row of a block ``(x, rows, z)`` (float64, one value per row).

    ``in_plane_step`` sums every step-th x and z only (scaled back up): a body's fat per row changes smoothly
    with x and z, so sampling every ~9 mm moves the centre by far less than a row and cuts the work 16-fold.
    """
    block = fat[::in_plane_step, :, ::in_plane_step]
    kept = body_fat(block, levels=levels, table=table)
    return kept.sum(axis=(0, 2), dtype=np.float64) * float(in_plane_step * in_plane_step)


def weighted_median_row(profile: np.ndarray, *, rows: np.ndarray, n_rows: int) -> int:
    """The row at which the cumulative profile reaches half of its total (the original scripts' rule).

    ``profile`` is measured at ``rows`` (ascending) and interpolated linearly to every row ``0 .. n_rows - 1``;
    the answer is ``argmin_j |C_j / C_last - 0.5|`` with C the cumulative sum, the first such row on ties.
    """
    every = np.interp(np.arange(n_rows), rows, profile)
    cumulative = np.cumsum(every)
    if not cumulative[-1] > 0:
        raise InputError("no body found in the fat image (nothing above the noise and table background)")
    return int(np.abs(cumulative / cumulative[-1] - 0.5).argmin())


def slab_window(centre: int, *, n_rows: int, n_neighbours: int, spacing: int) -> SlabWindow:
    """The centre plus ``n_neighbours`` rows each side, every ``spacing``-th row, moved inward to fit the volume
    (the curved window of :func:`~ukbb_pipeline.slices.curved.curved_rows` with one centre)."""
    _, rows, shifts = curved_rows(np.array([centre]), n_rows=n_rows, n_neighbours=n_neighbours, spacing=spacing)
    return SlabWindow(centre=centre, rows=rows[:, 0], shift=int(shifts[0]))


def estimate_centre(
    read_fat_rows: Callable[[np.ndarray], np.ndarray],
    *,
    n_rows: int,
    stride: int = 6,
    in_plane_step: int = 4,
    noise_multiple: float = 5.0,
    fat_fraction: float = 0.05,
    table: TableModel = TableModel(),
    min_body_share: float = 0.002,
) -> CentreEstimate:
    """Find the centre row from a profile measured every ``stride`` rows, then again with more rows near it.

    ``read_fat_rows(rows)`` returns the fat image at those rows of axis 1, shape ``(x, len(rows), z)``. It is
    called twice: for the coarse rows, then for the rows within ``stride - 2`` of the first answer (every second
    one when ``stride >= 4``: the rows a slab with spacing 2 reads anyway), so a reader that caches rows
    decompresses about ``n_rows / stride + 3`` rows in all. ``stride=1`` measures every row.

    A volume whose body fat is under ``min_body_share`` of (voxels x fat-tissue signal) holds no body (noise, a
    table, a blank station) and raises :class:`InputError`; a real neck-to-knee volume is at several per cent.
    """
    coarse = profile_rows(n_rows, stride=stride)
    coarse_fat = read_fat_rows(coarse)
    levels = signal_levels(
        coarse_fat[::in_plane_step, :, ::in_plane_step], noise_multiple=noise_multiple, fat_fraction=fat_fraction
    )

    def profile_of(block: np.ndarray) -> np.ndarray:
        return coronal_profile(block, levels=levels, in_plane_step=in_plane_step, table=table)

    profile = profile_of(coarse_fat)
    body_share = float(profile.sum()) / (levels.fat_level * coarse_fat.size)
    del coarse_fat
    if body_share < min_body_share:
        raise InputError(
            f"no body found in the fat image: fat above the noise and table is {body_share:.2%} of the volume's "
            f"fat-tissue signal (need {min_body_share:.1%})"
        )
    first = weighted_median_row(profile, rows=coarse, n_rows=n_rows)
    step = 2 if stride >= 4 else 1
    reach = max(1, stride - 2) // step
    near = first + step * np.arange(-reach, reach + 1)
    extra = np.setdiff1d(near[(near >= 0) & (near < n_rows)], coarse)
    rows = coarse
    if extra.size:
        rows = np.concatenate([coarse, extra])
        profile = np.concatenate([profile, profile_of(read_fat_rows(extra))])
        order = np.argsort(rows)
        rows, profile = rows[order], profile[order]
    centre = weighted_median_row(profile, rows=rows, n_rows=n_rows)
    return CentreEstimate(centre=centre, rows=rows, profile=profile, levels=levels)
