"""Putting stations together on the output grid: trimming their edges, feathering their overlaps, blending.

Each station keeps its slices between a trimmed top and bottom. Where two stations overlap, a raised-cosine
feather of at most ``feather_mm`` centred in the overlap hands one over to the other, so no seam is a hard cut.
Stations of different in-plane size (Rows differ per station) are blended with weights normalised voxel by voxel, so
where only one station covers a voxel it is used as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ukbb_pipeline.mri.edges import EdgeTrim
from ukbb_pipeline.mri.grid import Grid, Placement

WEIGHT_FLOOR = 1e-3  # a station's weight never drops below this where it covers a voxel (see the module text)


@dataclass(frozen=True)
class Extent:
    """The z range a station contributes, after trimming, and the slices trimmed at each end."""

    top: float
    bottom: float
    trimmed: EdgeTrim


def trim_extents(
    positions: Sequence[np.ndarray], wanted: Sequence[EdgeTrim], *, minimum: int, min_overlap: float
) -> list[Extent]:
    """The trimmed z extent of each station (``positions`` head first per station, stations head to feet).

    Ends that a neighbour overlaps lose at least ``minimum`` slices, other ends only the noisy ones ``wanted``;
    trims are then eased, the larger first, until each overlap keeps ``min_overlap`` mm (or what it had).
    """
    n = len(positions)
    overlaps_above = [i > 0 and positions[i - 1][-1] < positions[i][0] for i in range(n)]
    overlaps_below = [i < n - 1 and positions[i + 1][0] > positions[i][-1] for i in range(n)]
    top = [max(minimum, wanted[i].top) if overlaps_above[i] else wanted[i].top for i in range(n)]
    bottom = [max(minimum, wanted[i].bottom) if overlaps_below[i] else wanted[i].bottom for i in range(n)]
    for i in range(n):  # never trim a station away: keep two slices at least
        while top[i] + bottom[i] > positions[i].size - 2:
            if top[i] >= bottom[i]:
                top[i] -= 1
            else:
                bottom[i] -= 1
    for i in range(n - 1):
        if not overlaps_below[i]:
            continue
        upper, lower = positions[i], positions[i + 1]
        needed = min(min_overlap, lower[0] - upper[-1])
        while lower[top[i + 1]] - upper[-1 - bottom[i]] < needed and (bottom[i] or top[i + 1]):
            if bottom[i] >= top[i + 1]:
                bottom[i] -= 1
            else:
                top[i + 1] -= 1
    return [
        Extent(top=float(p[top[i]]), bottom=float(p[-1 - bottom[i]]), trimmed=EdgeTrim(top[i], bottom[i]))
        for i, p in enumerate(positions)
    ]


def feather_weights(z: np.ndarray, extents: Sequence[Extent], *, feather_mm: float) -> np.ndarray:
    """The weight of each station (rows) at each output slice z (columns), head to feet, summing to 1 where any
    station covers a slice (before the in-plane normalisation of :func:`blend`)."""
    tolerance = 1e-3
    weights = np.zeros((len(extents), z.size), dtype=np.float64)
    for i, extent in enumerate(extents):
        weights[i] = (z <= extent.top + tolerance) & (z >= extent.bottom - tolerance)
    for i in range(len(extents) - 1):
        upper, lower = extents[i], extents[i + 1]
        high, low = lower.top, upper.bottom
        if high <= low:
            continue
        centre, width = (high + low) / 2, min(feather_mm, high - low)
        if width > 0:
            t = np.clip((z - (centre - width / 2)) / width, 0.0, 1.0)
            ramp = 0.5 - 0.5 * np.cos(np.pi * t)  # 0 below the band, 1 above it
        else:
            ramp = (z >= centre).astype(np.float64)
        weights[i] *= np.maximum(ramp, WEIGHT_FLOOR)
        weights[i + 1] *= np.maximum(1.0 - ramp, WEIGHT_FLOOR)
    total = weights.sum(axis=0)
    np.divide(weights, total, out=weights, where=total > 0)
    return weights.astype(np.float32)


@dataclass(frozen=True)
class Piece:
    """One station's contribution to a channel: where it lands, how to resample it, and its intensity scale."""

    placement: Placement
    resample: Callable[[], np.ndarray]  # -> float32 (z, y, x) block over placement's output ranges
    scale: float = 1.0


def blend(pieces: Sequence[Piece], weights: np.ndarray, grid: Grid) -> np.ndarray:
    """The stitched channel, float32 (z, y, x): each slice a weighted mean of the stations covering it.

    Slices only one station covers are copied; in overlaps, weights are normalised voxel by voxel over the
    stations that cover each voxel. One station's block is in memory at a time.
    """
    out = np.zeros(grid.zyx_shape, dtype=np.float32)
    covered = weights > 0
    shared = covered.sum(axis=0) > 1
    shared_index = np.cumsum(shared) - 1
    total = np.zeros((int(shared.sum()), *grid.zyx_shape[1:]), dtype=np.float32)
    for piece, piece_weights in zip(pieces, weights):
        placement = piece.placement
        if placement.empty:
            continue
        block = piece.resample()
        if piece.scale != 1.0:
            block *= np.float32(piece.scale)
        k0 = placement.z.out.start
        ys, xs = placement.y.out, placement.x.out
        for start, stop, code in _runs(_state(piece_weights, shared, placement.z.out)):
            if code == 0:
                continue
            ks = slice(k0 + start, k0 + stop)
            part = block[start:stop]
            if code == 1:
                out[ks, ys, xs] = part
                continue
            w = piece_weights[ks][:, None, None]
            out[ks, ys, xs] += w * part
            shared_ks = slice(int(shared_index[ks.start]), int(shared_index[ks.stop - 1]) + 1)
            total[shared_ks, ys, xs] += w
        del block
    if total.size:
        shared_out = out[shared]
        np.divide(shared_out, total, out=shared_out, where=total > 0)
        out[shared] = shared_out
    return out


def _state(weights: np.ndarray, shared: np.ndarray, ks: slice) -> np.ndarray:
    """Per output slice of ``ks``: 0 = the station does not contribute, 1 = it alone does, 2 = shared."""
    return (weights[ks] > 0) * (1 + shared[ks].astype(np.int8))


def _runs(codes: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs of equal values, as (start, stop, value)."""
    if codes.size == 0:
        return []
    edges = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [codes.size]])
    return [(int(a), int(b), int(codes[a])) for a, b in zip(starts, stops)]
