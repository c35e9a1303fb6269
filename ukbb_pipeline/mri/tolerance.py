"""One definition of "the same place", used by every MRI step: closer than a fraction of a voxel.

Positions are decimal text (DS) in the headers, so the F and W images of one slice, or two stations, can differ in the
last digits (micrometres). Any comparison of positions (slices shared by two channels, a slice on the output grid,
a duplicate slice, the edge of a station) allows ``VOXEL_FRACTION`` of the voxel step along that axis, never a fixed
number of millimetres.
"""

from __future__ import annotations

import numpy as np

VOXEL_FRACTION = 0.05  # positions closer than 5% of a voxel are the same position


def tolerance(step: float) -> float:
    """The distance (mm) under which two positions on an axis with voxel ``step`` (mm) are the same."""
    return VOXEL_FRACTION * abs(float(step))


def same_positions(a: np.ndarray, b: np.ndarray, *, step: float) -> np.ndarray:
    """For each position of ``a``, whether some position of ``b`` is the same (within :func:`tolerance`)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return np.zeros(a.shape, dtype=bool)
    return (np.abs(a[:, None] - b[None, :]) <= tolerance(step)).any(axis=1)
