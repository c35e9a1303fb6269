"""Noisy slab-edge slices: the outermost slices of a station, where the slab profile drops and folding shows.

Peers drop a fixed number (ML4H 4 at the top, GLOCKER 3, towl 2 per end). Here a fixed minimum is trimmed wherever a
neighbour covers the slices, and further edge slices are trimmed when their signal falls clearly below the
station's own level just inside them. The level of a slice is the mean of its brightest voxels (fat, mostly), which
does not depend on how much of the slice the body fills, so the neck and the knees are judged like the abdomen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BRIGHT_FRACTION = 0.02  # the level of a slice: the mean of its brightest 2% of voxels
REFERENCE_SLICES = 4  # the level inside a slab edge: median over this many slices beyond the examined ones


@dataclass(frozen=True)
class EdgeTrim:
    """Slices to drop at the top (head) and bottom (feet) end of a station."""

    top: int = 0
    bottom: int = 0


def slice_levels(volume: np.ndarray, *, step: int = 2) -> np.ndarray:
    """The level of each slice of ``volume`` (z, y, x): the mean of its brightest voxels (in-plane subsampled)."""
    planes = volume[:, ::step, ::step].reshape(volume.shape[0], -1)
    count = max(1, int(round(planes.shape[1] * BRIGHT_FRACTION)))
    brightest = np.partition(planes, planes.shape[1] - count, axis=1)[:, -count:]
    return brightest.mean(axis=1, dtype=np.float64)


def noisy_edge_slices(levels: np.ndarray, *, max_slices: int, drop: float) -> EdgeTrim:
    """How many slices at each end of a station lie ``drop`` (a fraction) or more below the level just inside.

    ``levels`` are the slice levels head first. Counting stops at the innermost low slice within ``max_slices``
    of the end, so a low slice between two normal ones at the very edge still takes its outer neighbours with it.
    """
    n = levels.size
    if max_slices <= 0 or n < 2 * max_slices + REFERENCE_SLICES:
        return EdgeTrim()
    return EdgeTrim(top=_count_low(levels, max_slices, drop), bottom=_count_low(levels[::-1], max_slices, drop))


def _count_low(levels: np.ndarray, max_slices: int, drop: float) -> int:
    reference = float(np.median(levels[max_slices : max_slices + REFERENCE_SLICES]))
    if reference <= 0:
        return 0
    low = np.flatnonzero(levels[:max_slices] < (1.0 - drop) * reference)
    return int(low[-1]) + 1 if low.size else 0
