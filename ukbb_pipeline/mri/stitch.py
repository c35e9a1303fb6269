"""Putting stations together on the output grid: trimming their edges, feathering their overlaps, blending.

Each station keeps its slices between a trimmed top and bottom. Where two stations overlap, a raised-cosine
feather of at most ``feather_mm`` centred in the overlap hands one over to the other, so no seam is a hard cut.
Stations of different in-plane size (Rows differ per station) are blended with weights normalised voxel by voxel, so
where only one station covers a voxel it is used as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ukbb_pipeline.mri.edges import EdgeTrim
from ukbb_pipeline.mri.grid import Grid, Placement, resample_into
from ukbb_pipeline.mri.series import Series
from ukbb_pipeline.mri.tolerance import tolerance

WEIGHT_FLOOR = 1e-3  # a station's weight never drops below this where it covers a voxel (see the module text)


@dataclass(frozen=True)
class Extent:
    """The z range a station contributes: its kept slices (``top`` to ``bottom``, after trimming) and its reach,
    which goes beyond them (holding the edge slice) to bridge a gap of up to one slice to a neighbour."""

    top: float
    bottom: float
    trimmed: EdgeTrim
    reach_top: float
    reach_bottom: float


def trim_extents(
    positions: Sequence[np.ndarray], wanted: Sequence[EdgeTrim], *, minimum: int, min_overlap: float
) -> list[Extent]:
    """The trimmed z extent of each station (``positions`` head first per station, stations head to feet).

    Ends that a neighbour overlaps lose at least ``minimum`` slices, and any end the noisy slices ``wanted``. The
    fixed minimum is given back (the end with more trimmed first) where it would leave two neighbours less than
    ``min_overlap`` mm of overlap (or less than they had); noisy slices are given back only where they would leave
    a gap wider than a slice. A gap of at most a slice is bridged: both neighbours reach across it. Slabs that just
    touch (0 mm overlap: slice centres a slice apart) are :func:`adjacent`: they keep their edge slices (no neighbour
    covers them) and are bridged, so no empty gap is left where something was acquired.
    """
    n = len(positions)
    overlaps_below = [i < n - 1 and adjacent(positions[i], positions[i + 1]) for i in range(n)]
    overlaps_above = [i > 0 and overlaps_below[i - 1] for i in range(n)]
    noisy_top = [w.top for w in wanted]
    noisy_bottom = [w.bottom for w in wanted]
    top = [max(minimum, noisy_top[i]) if overlaps_above[i] else noisy_top[i] for i in range(n)]
    bottom = [max(minimum, noisy_bottom[i]) if overlaps_below[i] else noisy_bottom[i] for i in range(n)]
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

        def overlap(i: int = i, upper: np.ndarray = upper, lower: np.ndarray = lower) -> float:
            return float(lower[top[i + 1]] - upper[-1 - bottom[i]])

        needed = min(min_overlap, float(lower[0] - upper[-1]))
        while overlap() < needed and (bottom[i] > noisy_bottom[i] or top[i + 1] > noisy_top[i + 1]):
            upper_extra, lower_extra = bottom[i] - noisy_bottom[i], top[i + 1] - noisy_top[i + 1]
            if upper_extra > 0 and (lower_extra <= 0 or bottom[i] >= top[i + 1]):
                bottom[i] -= 1
            else:
                top[i + 1] -= 1
        step = max(_step(upper), _step(lower))
        while overlap() < -step * (1 + 1e-6) and (bottom[i] or top[i + 1]):
            if bottom[i] and (not top[i + 1] or bottom[i] >= top[i + 1]):
                bottom[i] -= 1
            else:
                top[i + 1] -= 1
    kept_top = [float(p[top[i]]) for i, p in enumerate(positions)]
    kept_bottom = [float(p[-1 - bottom[i]]) for i, p in enumerate(positions)]
    reach_top, reach_bottom = list(kept_top), list(kept_bottom)
    for i in range(n - 1):
        gap = kept_bottom[i] - kept_top[i + 1]
        if overlaps_below[i] and 0 < gap <= max(_step(positions[i]), _step(positions[i + 1])) * (1 + 1e-6):
            reach_bottom[i], reach_top[i + 1] = kept_top[i + 1], kept_bottom[i]
    return [
        Extent(top=kept_top[i], bottom=kept_bottom[i], trimmed=EdgeTrim(top[i], bottom[i]),
               reach_top=reach_top[i], reach_bottom=reach_bottom[i])
        for i in range(n)
    ]


def adjacent(upper: np.ndarray, lower: np.ndarray) -> bool:
    """Whether two stations' slabs (slice positions head first, each slice reaching half a step) overlap or touch:
    then nothing lies between them, and trimming or bridging decides how they meet."""
    slack = tolerance(min(_step(upper), _step(lower)))
    return bool(lower[0] + _step(lower) / 2 >= upper[-1] - _step(upper) / 2 - slack)


def _step(positions: np.ndarray) -> float:
    return float(np.median(-np.diff(positions))) if positions.size > 1 else 0.0


def feather_weights(z: np.ndarray, extents: Sequence[Extent], *, feather_mm: float) -> np.ndarray:
    """The weight of each station (rows) at each output slice z (columns), head to feet, summing to 1 where any
    station covers a slice (before the in-plane normalisation of :func:`blend`).

    In an overlap the hand-over is a raised cosine ``feather_mm`` wide (at most the overlap) centred in it; across a
    bridged gap it spans the gap, so the gap is filled by interpolating the two edge slices.
    """
    slack = tolerance(float(np.median(np.abs(np.diff(z))))) if z.size > 1 else 0.0
    weights = np.zeros((len(extents), z.size), dtype=np.float64)
    for i, extent in enumerate(extents):
        weights[i] = (z <= extent.reach_top + slack) & (z >= extent.reach_bottom - slack)
    for i in range(len(extents) - 1):
        upper, lower = extents[i], extents[i + 1]
        high, low = lower.top, upper.bottom
        if lower.reach_top <= upper.reach_bottom:  # neither overlap nor bridge
            continue
        centre = (high + low) / 2
        width = min(feather_mm, high - low) if high > low else low - high
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
    """One station's contribution to a channel: the series, where it lands, and its intensity scale."""

    series: Series
    placement: Placement
    scale: float = 1.0


CHUNK_SLICES = 16  # output slices resampled at a time (bounds the temporaries)


def blend(pieces: Sequence[Piece], weights: np.ndarray, grid: Grid) -> np.ndarray:
    """The stitched channel, float32 (z, y, x): each slice a weighted mean of the stations covering it.

    Slices that one station covers alone are resampled straight into the output; in overlaps, weights are
    normalised voxel by voxel over the stations that cover each voxel.
    """
    out = np.zeros(grid.zyx_shape, dtype=np.float32)
    shared = (weights > 0).sum(axis=0) > 1
    shared_index = np.cumsum(shared) - 1
    total = np.zeros((int(shared.sum()), *grid.zyx_shape[1:]), dtype=np.float32)
    for piece, piece_weights in zip(pieces, weights, strict=True):
        placement = piece.placement
        if placement.empty:
            continue
        k0 = placement.z.out.start
        ys, xs = placement.y.out, placement.x.out
        for start, stop, code in _runs(_state(piece_weights, shared, placement.z.out)):
            for first in range(start, stop, CHUNK_SLICES) if code else ():
                last = min(stop, first + CHUNK_SLICES)
                ks = slice(k0 + first, k0 + last)
                shares = piece_weights[ks] if code == 2 else np.ones(last - first, np.float32)
                factor = np.float32(piece.scale) * shares
                resample_into(out[ks, ys, xs], piece.series, placement, start=first, stop=last, weights=factor,
                              add=code == 2)
                if code == 2:
                    shared_ks = slice(int(shared_index[ks.start]), int(shared_index[ks.stop - 1]) + 1)
                    total[shared_ks, ys, xs] += piece_weights[ks][:, None, None]
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
    return [(int(a), int(b), int(codes[a])) for a, b in zip(starts, stops, strict=True)]
