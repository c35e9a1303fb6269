"""The mid-coronal slab: where the body's fat is split in half front to back, and the rows kept around it.

The centre is the coronal row (axis 1 of an (x, y, z) volume) at which the cumulative fat signal reaches half of the
total, the original scripts' "centre of mass of the coronal intensity histogram" (a weighted median of y). Two
things that are not the body would pull it: background noise, spread over every row, and the scanner table, a plate
under the body's back that shows in the fat image. So the profile sums only fat above a noise threshold, after
removing each (x, y) line's z-invariant background: along z the table is the same in every axial slice, whereas the
body changes (neck, trunk, legs with air between them), so a low quantile along z that is close to the median along
z is table (or a constant offset), and a low quantile far below it is air under a body part.

Everything here takes arrays and returns numbers; the profile can be built from a subset of rows (every k-th row,
plus a dense stretch around the centre), so that an HDF5 reader decompresses only a fraction of the volume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ukbb_pipeline.errors import InputError

# Robust standard deviation of a difference of two Gaussian samples, from its median absolute value.
_MAD_TO_SIGMA = 1.0 / (0.6745 * np.sqrt(2.0))


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

    The noise is the robust spread of neighbour differences along z (exact zeros, e.g. padding, left out): most
    voxels lie in smooth regions, so edges barely move the median. The body threshold is the larger of
    ``noise_multiple`` noise deviations and ``fat_fraction`` of the fat-tissue level.
    """
    values = np.asarray(fat, dtype=np.float32)
    left, right = values[..., 1:], values[..., :-1]
    differences = np.abs(left - right)[(left != 0) | (right != 0)]
    noise_sigma = float(np.median(differences)) * _MAD_TO_SIGMA if differences.size else 0.0
    fat_level = float(np.percentile(values, fat_percentile)) if values.size else 0.0
    if not fat_level > 0:
        raise InputError("the fat image holds no signal")
    threshold = max(noise_multiple * noise_sigma, fat_fraction * fat_level)
    return SignalLevels(noise_sigma=float(noise_sigma), fat_level=fat_level, threshold=float(threshold))


def table_background(fat: np.ndarray, *, low_quantile: float = 0.05, flatness: float = 0.5) -> np.ndarray:
    """The z-invariant background of each (x, row) line of a block ``(x, rows, z)``, shape ``(x, rows, 1)``.

    A line's background is its ``low_quantile`` along z when that is at least ``flatness`` times its median along
    z (the line is flat: table, coil or offset), and 0 otherwise (air under some body part, or noise).
    """
    n_z = fat.shape[-1]
    low_k = min(n_z - 1, int(low_quantile * n_z))
    mid_k = n_z // 2
    parted = np.partition(np.asarray(fat, dtype=np.float32), sorted({low_k, mid_k}), axis=-1)
    low, mid = parted[..., low_k : low_k + 1], parted[..., mid_k : mid_k + 1]
    return np.where((low > 0) & (low >= flatness * mid), low, np.float32(0))


def body_fat(fat: np.ndarray, *, levels: SignalLevels, low_quantile: float = 0.05, flatness: float = 0.5) -> np.ndarray:
    """Fat above the table background where that exceeds the body threshold, else 0 (float32, same shape)."""
    above = np.asarray(fat, dtype=np.float32) - table_background(fat, low_quantile=low_quantile, flatness=flatness)
    return np.where(above > levels.threshold, above, np.float32(0))


def coronal_profile(
    fat: np.ndarray,
    *,
    levels: SignalLevels,
    in_plane_step: int = 4,
    low_quantile: float = 0.05,
    flatness: float = 0.5,
) -> np.ndarray:
    """Body fat summed over x and z for each row of a block ``(x, rows, z)`` (float64, one value per row).

    ``in_plane_step`` sums every step-th x and z only (scaled back up): a body's fat per row changes smoothly
    with x and z, so sampling every ~9 mm moves the centre by far less than a row and cuts the work 16-fold.
    """
    block = fat[::in_plane_step, :, ::in_plane_step]
    kept = body_fat(block, levels=levels, low_quantile=low_quantile, flatness=flatness)
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
    """The centre plus ``n_neighbours`` rows each side, every ``spacing``-th row, moved inward to fit the volume."""
    if n_neighbours < 0 or spacing < 1:
        raise ValueError(f"need n_neighbours >= 0 and spacing >= 1, got {n_neighbours} and {spacing}")
    span = 2 * n_neighbours * spacing
    if span >= n_rows:
        raise InputError(
            f"the volume has {n_rows} coronal rows; {2 * n_neighbours + 1} rows {spacing} apart need {span + 1}"
        )
    start = centre - n_neighbours * spacing
    fitted = min(max(start, 0), n_rows - 1 - span)
    rows = fitted + spacing * np.arange(2 * n_neighbours + 1)
    return SlabWindow(centre=centre, rows=rows, shift=fitted - start)


def estimate_centre(
    read_fat_rows: Callable[[np.ndarray], np.ndarray],
    *,
    n_rows: int,
    stride: int = 6,
    refine_half_width: int = 4,
    refine_step: int = 2,
    in_plane_step: int = 4,
    noise_multiple: float = 5.0,
    fat_fraction: float = 0.05,
    low_quantile: float = 0.05,
    flatness: float = 0.5,
) -> CentreEstimate:
    """Find the centre row from a profile measured every ``stride`` rows, then again with more rows near it.

    ``read_fat_rows(rows)`` returns the fat image at those rows of axis 1, shape ``(x, len(rows), z)``. It is
    called twice: for the coarse rows, then for every ``refine_step``-th row within ``refine_half_width`` of the
    first answer (rows a slab centred there reads anyway when its spacing is ``refine_step``), so a reader that
    caches rows decompresses about ``n_rows / stride + refine_half_width`` rows in all. On phantoms with noise and
    table the answer is within a row of the full profile's for strides up to 8; ``stride=1`` reads every row.
    """
    coarse = profile_rows(n_rows, stride=stride)
    coarse_fat = read_fat_rows(coarse)
    levels = signal_levels(
        coarse_fat[::in_plane_step, :, ::in_plane_step], noise_multiple=noise_multiple, fat_fraction=fat_fraction
    )

    def profile_of(block: np.ndarray) -> np.ndarray:
        return coronal_profile(
            block, levels=levels, in_plane_step=in_plane_step, low_quantile=low_quantile, flatness=flatness
        )

    profile = profile_of(coarse_fat)
    del coarse_fat
    first = weighted_median_row(profile, rows=coarse, n_rows=n_rows)
    reach = refine_half_width // max(1, refine_step)
    near = first + refine_step * np.arange(-reach, reach + 1)
    extra = np.setdiff1d(near[(near >= 0) & (near < n_rows)], coarse)
    rows = coarse
    if extra.size:
        rows = np.concatenate([coarse, extra])
        profile = np.concatenate([profile, profile_of(read_fat_rows(extra))])
        order = np.argsort(rows)
        rows, profile = rows[order], profile[order]
    centre = weighted_median_row(profile, rows=rows, n_rows=n_rows)
    return CentreEstimate(centre=centre, rows=rows, profile=profile, levels=levels)
