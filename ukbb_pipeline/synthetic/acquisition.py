"""Simulated Dixon acquisition of one station: the phantom (body and table) sampled at the voxel centres.

Clean channels are F = fat + table fat, W = water + table water, in-phase = F + W, opposed-phase = |W - F|, each
times the station's gain. With slab-edge loss, edge slice k keeps factor_k of its signal and receives
(1 - factor_k) / 2 of the slice at the other end of the slab (folding). Noise is Gaussian with ``noise_sigma``,
added before taking the magnitude (so the background holds small positive values, as in real magnitude images).
Values are rounded and clipped to the 12 stored bits.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ukbb_pipeline.synthetic.phantom import BED_FAT_FACTOR, BED_WATER_FACTOR, Phantom
from ukbb_pipeline.synthetic.quirks import CHANNELS
from ukbb_pipeline.synthetic.stations import THICKNESS_FULL, StationGeometry

MAX_VALUE = 4095  # 12 bits stored
EDGE_FACTORS = (0.45, 0.65, 0.8, 0.9)  # signal kept by the outermost, second, ... slice of a slab edge
EDGE_NOISE = 40.0  # extra noise sigma at a slice keeping none of its signal
MOTION_SHIFT = (7.0, -6.0)  # mm (x, y) the body moved during a corrupted acquisition
GHOST_FRACTION = 0.3  # strength of the half-FOV ghost of a corrupted acquisition
CORRUPTED_NOISE = 3.0  # noise multiplier of a corrupted acquisition


def edge_factors(geometry: StationGeometry, *, rng: np.random.Generator) -> np.ndarray:
    """Per-slice signal factors with 2-4 full-size slices' worth of loss at both slab ends (1.0 elsewhere)."""
    factors = np.ones(geometry.n_slices)
    n_full = int(rng.integers(2, 5))
    depth_mm = n_full * THICKNESS_FULL[geometry.station - 1]
    n = int(min(max(1, round(depth_mm / geometry.thickness)), len(EDGE_FACTORS), geometry.n_slices // 4))
    for i in range(n):
        factors[i] = factors[-1 - i] = EDGE_FACTORS[i]
    return factors


def clean_channels(
    phantom: Phantom,
    geometry: StationGeometry,
    *,
    gain: float = 1.0,
    factors: np.ndarray | None = None,
    corrupted: bool = False,
) -> dict[str, np.ndarray]:
    """Noise-free float32 images (slices, rows, columns) of the four channels, table included."""
    body = phantom
    if corrupted:
        body = dataclasses.replace(
            phantom, x_shift=phantom.x_shift + MOTION_SHIFT[0], table_y=phantom.table_y + MOTION_SHIFT[1]
        )
    fat, water = body.grid(xs=geometry.xs, ys=geometry.ys, zs=geometry.zs)
    table = phantom.bed(geometry.xs[None, None, :], geometry.ys[None, :, None], geometry.zs[:1, None, None])
    fat = fat + np.float32(BED_FAT_FACTOR) * table
    water = water + np.float32(BED_WATER_FACTOR) * table
    if corrupted:  # a half-FOV ghost along the phase-encoding (column) direction
        fat = fat + np.float32(GHOST_FRACTION) * np.roll(fat, geometry.rows // 2, axis=1)
        water = water + np.float32(GHOST_FRACTION) * np.roll(water, geometry.rows // 2, axis=1)
    channels = {"F": fat, "W": water, "in": fat + water, "opp": np.abs(water - fat)}
    if factors is None:
        return {name: channels[name] * np.float32(gain) for name in CHANNELS}
    # slab edges keep a fraction of their signal, and the far end of the slab folds in (3-D aliasing)
    kept = (np.float32(gain) * factors.astype(np.float32))[:, None, None]
    folded = (np.float32(gain) * 0.5 * (1.0 - factors.astype(np.float32)))[:, None, None]
    return {name: channels[name] * kept + channels[name][::-1] * folded for name in CHANNELS}


def acquire(
    clean: dict[str, np.ndarray],
    *,
    noise_sigma: float,
    factors: np.ndarray | None,
    corrupted: bool,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Noisy uint16 magnitude images from the clean channels."""
    sigma = np.full(next(iter(clean.values())).shape[0], noise_sigma, dtype=np.float32)
    if factors is not None:
        sigma += np.float32(EDGE_NOISE) * (1.0 - factors.astype(np.float32))
    if corrupted:
        sigma *= np.float32(CORRUPTED_NOISE)
    images = {}
    for name in CHANNELS:
        image = clean[name]
        if np.any(sigma > 0):
            noise = rng.standard_normal(image.shape, dtype=np.float32) * sigma[:, None, None]
            image = np.abs(image + noise)
        images[name] = np.clip(np.rint(image), 0, MAX_VALUE).astype(np.uint16)
    return images
