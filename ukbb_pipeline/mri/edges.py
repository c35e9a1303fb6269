"""Noisy slab-edge slices: the outermost slices of a station, where the slab profile drops and folding shows.

Peers drop a fixed number (ML4H 4 at the top, GLOCKER 3, towl 2 per end). Here a fixed minimum is trimmed wherever a
neighbour covers the slices, and further edge slices are trimmed when they look unlike the station's inside:

- their *level* (the mean of the slice's brightest voxels, mostly fat, which does not depend on how much of the slice
  the body fills) falls clearly below the level just inside, or
- their *background* (a low percentile of the slice: air, where noise and folded signal show) rises clearly above
  the background just inside.

A falling level can also be anatomy (the top of the neck), so an end that no neighbour covers, where trimming loses
data, needs the background to rise or the level to fall twice as far.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BRIGHT_FRACTION = 0.02  # the level of a slice: the mean of its brightest 2% of voxels
BACKGROUND_PERCENTILE = 10  # the background of a slice: this percentile of its voxels (air)
BACKGROUND_RISE = 1.5  # an edge slice is noisy when its background exceeds 1.5x the inside's ...
BACKGROUND_MARGIN = 0.002  # ... plus this fraction of the inside's level (for noise-free images)
REFERENCE_SLICES = 4  # the inside of a slab edge: the median over this many slices beyond the examined ones


@dataclass(frozen=True)
class EdgeTrim:
    """Slices to drop at the top (head) and bottom (feet) end of a station."""

    top: int = 0
    bottom: int = 0


@dataclass(frozen=True)
class SliceProfile:
    """Per slice of a station, head first: its level and its background."""

    level: np.ndarray
    background: np.ndarray


def slice_profile(volume: np.ndarray) -> SliceProfile:
    """The level and background of each slice of ``volume`` (z, y, x)."""
    planes = volume.reshape(volume.shape[0], -1)
    count = max(1, round(planes.shape[1] * BRIGHT_FRACTION))
    split = planes.shape[1] - count
    low = round((planes.shape[1] - 1) * BACKGROUND_PERCENTILE / 100)
    ordered = np.partition(planes, [low, split], axis=1)
    return SliceProfile(
        level=ordered[:, split:].mean(axis=1, dtype=np.float64),
        background=ordered[:, low].astype(np.float64),
    )


def noisy_edge_slices(
    profile: SliceProfile, *, max_slices: int, drop: float, covered: tuple[bool, bool] = (True, True)
) -> EdgeTrim:
    """How many slices at the top and bottom of a station look noisy (see the module text), at most ``max_slices``.

    ``drop`` is the fraction by which the level must fall; ``covered`` says whether a neighbour covers the top and
    the bottom end (an uncovered end needs stronger evidence). Counting goes to the innermost noisy slice.
    """
    max_slices = min(max_slices, (profile.level.size - REFERENCE_SLICES) // 2)  # short stations: look less far
    if max_slices <= 0:
        return EdgeTrim()
    ends = []
    for flip, is_covered in zip((False, True), covered, strict=True):
        level = profile.level[::-1] if flip else profile.level
        background = profile.background[::-1] if flip else profile.background
        ends.append(_count_noisy(level, background, max_slices, drop if is_covered else 2 * drop))
    return EdgeTrim(top=ends[0], bottom=ends[1])


def _count_noisy(level: np.ndarray, background: np.ndarray, max_slices: int, drop: float) -> int:
    inside = slice(max_slices, max_slices + REFERENCE_SLICES)
    level_inside = float(np.median(level[inside]))
    if level_inside <= 0:
        return 0
    background_inside = float(np.median(background[inside]))
    background_limit = BACKGROUND_RISE * background_inside + BACKGROUND_MARGIN * level_inside
    noisy = (level[:max_slices] < (1.0 - drop) * level_inside) | (background[:max_slices] > background_limit)
    found = np.flatnonzero(noisy)
    return int(found[-1]) + 1 if found.size else 0
