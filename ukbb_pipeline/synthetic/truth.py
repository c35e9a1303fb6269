"""The truth on the pipeline's output grid (DESIGN.md): array axes (x: right->left, y: anterior->posterior,
z: head->feet), voxel (i, j, k) at LPS ``origin + (i*sx, j*sy, -k*sz)``."""

from __future__ import annotations

import numpy as np

from ukbb_pipeline.synthetic.phantom import Phantom

CHANNEL_ALIASES = {"fat": "fat", "F": "fat", "water": "water", "W": "water", "in": "in", "opp": "opp"}


def output_axes(
    *,
    origin: tuple[float, float, float],
    spacing: tuple[float, float, float],
    shape: tuple[int, int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LPS coordinates (xs, ys, zs) of the voxel centres along each array axis; zs decreases (head to feet)."""
    nx, ny, nz = shape
    sx, sy, sz = spacing
    xs = origin[0] + np.arange(nx) * sx
    ys = origin[1] + np.arange(ny) * sy
    zs = origin[2] - np.arange(nz) * sz
    return xs, ys, zs


def sample_truth(
    phantom: Phantom,
    *,
    origin: tuple[float, float, float],
    spacing: tuple[float, float, float],
    shape: tuple[int, int, int],
    channel: str = "fat",
    include_bed: bool = False,
) -> np.ndarray:
    """The true signal on an output grid: float32 array of ``shape`` (nx, ny, nz).

    ``channel`` is "fat" (or "F"), "water" ("W"), "in" (fat + water) or "opp" (|water - fat|); the body alone unless
    ``include_bed``. No gain, noise, swap or slab-edge loss: what a perfect stitcher would output.
    """
    if channel not in CHANNEL_ALIASES:
        raise ValueError(f"channel must be one of {sorted(CHANNEL_ALIASES)}, got {channel!r}")
    xs, ys, zs = output_axes(origin=origin, spacing=spacing, shape=shape)
    fat, water = phantom.grid(xs=xs, ys=ys, zs=zs, include_bed=include_bed)
    name = CHANNEL_ALIASES[channel]
    if name == "fat":
        volume = fat
    elif name == "water":
        volume = water
    elif name == "in":
        volume = fat + water
    else:
        volume = np.abs(water - fat)
    return np.ascontiguousarray(volume.transpose(2, 1, 0))
