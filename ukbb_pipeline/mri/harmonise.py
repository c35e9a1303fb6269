"""Matching the intensity of adjacent stations from what they both image, so that no seam shows a step.

Each station's receive chain has its own gain. Where two stations overlap they image the same tissue, so the ratio
of their signals there is the ratio of their gains. It is taken robustly (median of voxel log-ratios) inside the
body, on voxels clearly above noise; the per-seam ratios then give one scale per station along the chain, with the
geometric mean of each connected run of stations kept at 1 so that no station is privileged.

Fat and water (and in-phase, opposed-phase) of one station come from one acquisition, one receive chain: they share
one gain. So one gain per station is estimated, from the channels summed (F + W, the in-phase signal; see
:func:`gain_channels`), and applied to every channel. Scaling fat and water separately would let the fat fraction
F / (F + W) step at the seams wherever the two channels' robust ratios differ by chance (tissue mix, noise, a swap);
with one gain it is exactly what was acquired. The per-channel ratios are still measured, as a QC figure: they differ
from the common one only by noise and misregistration, or by a fault (a swap, a channel from another acquisition).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

BODY_FRACTION = 0.2  # body: summed channels above this fraction of their 99th percentile in the overlap
SIGNAL_FRACTION = 0.1  # a voxel counts for a channel's ratio when it is above this fraction of its 99th percentile
MIN_VOXELS = 50  # fewer usable voxels than this and a seam gives no ratio


@dataclass(eq=False)
class Overlap:
    """Two adjacent stations resampled onto the same output voxels where both are kept (after trimming)."""

    upper: int  # index of the upper (head side) station in the station list
    lower: int
    z_mm: float  # LPS z of the middle of the overlap
    upper_data: dict[str, np.ndarray]  # channel -> float32 (z, y, x)
    lower_data: dict[str, np.ndarray]
    known_body: np.ndarray | None = field(default=None, repr=False, compare=False)  # see relabelled()

    @cached_property
    def body(self) -> np.ndarray:
        """Voxels inside the body in both stations (all channels summed)."""
        if self.known_body is not None:
            return self.known_body
        return body_mask(_total(self.upper_data)) & body_mask(_total(self.lower_data))

    def relabelled(self, *, upper_data: dict[str, np.ndarray], lower_data: dict[str, np.ndarray]) -> Overlap:
        """The same voxels with the channels named anew (F and W exchanged): the summed channels, hence the body,
        do not change, so the new overlap keeps this one's body instead of computing it again."""
        return replace(self, upper_data=upper_data, lower_data=lower_data, known_body=self.body)


def _total(data: dict[str, np.ndarray]) -> np.ndarray:
    """The sum of the channels of one side of an overlap (float32)."""
    arrays = list(data.values())
    total = arrays[0].astype(np.float32)  # a copy
    for array in arrays[1:]:
        total += array
    return total


def body_mask(total: np.ndarray) -> np.ndarray:
    """Voxels whose summed signal is above a fraction of its 99th percentile (air and noise are far below it)."""
    if total.size == 0:
        return np.zeros(total.shape, dtype=bool)
    sample = total.reshape(-1)[:: max(1, total.size // 50_000)]  # a percentile needs no more voxels than that
    return total > BODY_FRACTION * float(np.percentile(sample, 99))


def seam_log_ratio(upper: np.ndarray, lower: np.ndarray, body: np.ndarray) -> float | None:
    """log(upper / lower) over the body voxels where both are well above noise (median); None if too few."""
    u, v = upper[body], lower[body]
    if u.size < MIN_VOXELS:
        return None
    step = max(1, u.size // 50_000)
    floor = SIGNAL_FRACTION * max(float(np.percentile(u[::step], 99)), float(np.percentile(v[::step], 99)))
    usable = (u > floor) & (v > floor)
    if int(usable.sum()) < MIN_VOXELS:
        return None
    return float(np.median(np.log(u[usable]) - np.log(v[usable])))


def chain_scales(n_stations: int, log_ratios: dict[tuple[int, int], float | None]) -> np.ndarray:
    """One scale per station from the log-ratios of adjacent pairs (upper, lower): after scaling, the lower
    station matches the upper one at every seam with a ratio; each run of linked stations has geometric mean 1."""
    log_scale = np.zeros(n_stations)
    run: list[int] = [0]
    runs: list[list[int]] = []
    for i in range(1, n_stations):
        ratio = log_ratios.get((i - 1, i))
        if ratio is None:
            runs.append(run)
            run = [i]
        else:
            log_scale[i] = log_scale[i - 1] + ratio
            run.append(i)
    runs.append(run)
    for members in runs:
        log_scale[members] -= log_scale[members].mean()
    return np.exp(log_scale)


def relative_mismatch(upper: np.ndarray, lower: np.ndarray, body: np.ndarray) -> float:
    """Mean absolute difference over mean signal, inside the body: 0 when two stations agree voxel for voxel.

    Noise and any misregistration between the stations (breathing) keep it above 0; a failed match raises it.
    """
    u, v = upper[body], lower[body]
    if u.size == 0:
        return float("nan")
    mean = float(np.mean(u + v)) / 2
    return float(np.mean(np.abs(u - v))) / mean if mean > 0 else float("nan")


def gain_channels(shared: Sequence[str]) -> tuple[str, ...]:
    """The channels whose sum measures a station's gain: F + W where both are read (the in-phase signal, and the same
    whether or not a region is fat/water swapped), else the in-phase image, else the first channel read."""
    if "F" in shared and "W" in shared:
        return ("F", "W")
    if "in" in shared:
        return ("in",)
    return tuple(shared[:1])


def station_gains(
    overlaps: Sequence[Overlap], n_stations: int, channels: Sequence[str]
) -> tuple[np.ndarray, list[float | None]]:
    """One scale per station from the summed ``channels`` (see :func:`gain_channels`), for every channel, and the
    ratio found at each overlap (None where none)."""
    log_ratios: dict[tuple[int, int], float | None] = {}
    found: list[float | None] = []
    for overlap in overlaps:
        ratio = seam_log_ratio(_total({c: overlap.upper_data[c] for c in channels}),
                               _total({c: overlap.lower_data[c] for c in channels}), overlap.body)
        if overlap.lower == overlap.upper + 1:
            log_ratios[(overlap.upper, overlap.lower)] = ratio
        found.append(None if ratio is None else float(np.exp(ratio)))
    return chain_scales(n_stations, log_ratios), found


def fat_fraction_step(upper: dict[str, np.ndarray], lower: dict[str, np.ndarray], body: np.ndarray) -> float:
    """Median fat fraction F / (F + W) of the upper station minus the lower one's, over the body voxels where both
    are well above noise: the step a seam shows in the fat fraction (nan when too few voxels)."""
    fractions = []
    for data in (upper, lower):
        total = data["F"][body].astype(np.float64) + data["W"][body]
        fractions.append((data["F"][body] / np.maximum(total, 1e-6), total))
    floor = SIGNAL_FRACTION * max(float(np.percentile(t, 99)) if t.size else 0.0 for _, t in fractions)
    usable = (fractions[0][1] > floor) & (fractions[1][1] > floor)
    if int(usable.sum()) < MIN_VOXELS:
        return float("nan")
    return float(np.median(fractions[0][0][usable]) - np.median(fractions[1][0][usable]))


def station_scales(
    overlaps: Sequence[Overlap], n_stations: int, channel: str
) -> tuple[np.ndarray, list[float | None]]:
    """The scale of each station for ``channel`` alone, and the ratio found at each overlap (None where none): a QC
    figure beside :func:`station_gains` (the scales applied)."""
    log_ratios: dict[tuple[int, int], float | None] = {}
    found: list[float | None] = []
    for overlap in overlaps:
        ratio = seam_log_ratio(overlap.upper_data[channel], overlap.lower_data[channel], overlap.body)
        if overlap.lower == overlap.upper + 1:
            log_ratios[(overlap.upper, overlap.lower)] = ratio
        found.append(None if ratio is None else float(np.exp(ratio)))
    return chain_scales(n_stations, log_ratios), found
