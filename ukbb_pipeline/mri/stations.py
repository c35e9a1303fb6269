"""Grouping Dixon series into stations, with the quirks of real zips (ukbb-format.md 1.6).

A station is a slab of the body: the series whose z extents mostly coincide belong to it, whatever their numbers.
Within a station each channel keeps its most recent acquisition (SeriesTime), so a repeated station keeps the repeat;
channels of different sizes are cropped to their common physical region; a missing station or channel is a failure
unless missing stations are allowed. Stations are numbered 1-6 head to feet from their series numbers (1-4 station 1,
..., 21-24 station 6) when the zip has fewer than six, so that a missing one keeps the numbering of the others.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.mri.series import Series

N_STATIONS = 6  # neck, upper abdomen, abdomen, pelvis, thighs, knees
SERIES_PER_STATION = 4  # in, opp, F, W
SAME_STATION_OVERLAP = 0.5  # series overlapping by more than half the shorter z extent image the same slab


@dataclass(eq=False)
class Station:
    """The series chosen for one station, one per channel, cropped to their common region."""

    number: int  # 1-based, head to feet
    channels: dict[str, Series]
    notes: list[str] = field(default_factory=list)

    @property
    def z_top(self) -> float:
        return min(series.z_top for series in self.channels.values())

    @property
    def z_bottom(self) -> float:
        return max(series.z_bottom for series in self.channels.values())

    @property
    def z_step(self) -> float:
        return max(series.z_step for series in self.channels.values())

    def first(self) -> Series:
        return next(iter(self.channels.values()))


@dataclass
class StationSet:
    stations: list[Station]  # head to feet
    notes: list[str] = field(default_factory=list)


def group_stations(
    series: Sequence[Series],
    *,
    required: Collection[str],
    allow_missing: bool = False,
    expected: int = N_STATIONS,
) -> StationSet:
    """Group ``series`` into stations head to feet, each with the ``required`` channels (and any others read).

    Raises :class:`InputError` when a station or a required channel is missing (unless ``allow_missing``, which
    drops a station lacking a channel and notes it) or when no station is left.
    """
    if not series:
        raise InputError(f"no Dixon series of channel(s) {', '.join(sorted(required))} in the zip")
    clusters = _clusters(series)
    numbers = _station_numbers(clusters, expected=expected)
    stations: list[Station] = []
    notes: list[str] = []
    for number, cluster in zip(numbers, clusters, strict=True):
        chosen, repeat_note = _newest_per_channel(cluster, number)
        lacking = sorted(set(required) - set(chosen))
        if lacking:
            reason = f"station {number} has no {'/'.join(lacking)} series"
            if not allow_missing:
                raise InputError(reason)
            notes.append(f"{reason}: station left out")
            continue
        station = Station(number=number, channels=chosen)
        if repeat_note:
            station.notes.append(repeat_note)
        _crop_to_common_region(station)
        stations.append(station)
    present = {station.number for station in stations}
    if len(clusters) < expected:
        missing = [number for number in range(1, expected + 1) if number not in numbers]
        reason = f"{len(clusters)} of {expected} stations in the zip" + (
            f" (station {', '.join(map(str, missing))} missing)" if missing else ""
        )
        if not allow_missing:
            raise InputError(reason)
        notes.append(reason)
    elif len(clusters) > expected:
        notes.append(f"{len(clusters)} stations in the zip ({expected} expected); all were stitched")
    if not present:
        raise InputError("no station has every channel asked for")
    for station in stations:
        notes.extend(station.notes)
    return StationSet(stations=stations, notes=notes)


def _clusters(series: Sequence[Series]) -> list[list[Series]]:
    """Series grouped by z extent (more than half of the shorter one shared), head to feet."""
    ordered = sorted(series, key=lambda s: -(s.z_top + s.z_bottom) / 2)
    clusters: list[list[Series]] = []
    extents: list[tuple[float, float]] = []
    for item in ordered:
        best, best_share = -1, SAME_STATION_OVERLAP
        for index, (top, bottom) in enumerate(extents):
            shared = min(top, item.z_top) - max(bottom, item.z_bottom)
            shorter = min(top - bottom, item.z_top - item.z_bottom)
            share = shared / shorter if shorter > 0 else 0.0
            if share > best_share:
                best, best_share = index, share
        if best < 0:
            clusters.append([item])
            extents.append((item.z_top, item.z_bottom))
        else:
            clusters[best].append(item)
            top, bottom = extents[best]
            extents[best] = (max(top, item.z_top), min(bottom, item.z_bottom))
    order = np.argsort([-(top + bottom) / 2 for top, bottom in extents], kind="stable")
    return [clusters[index] for index in order]


def _station_numbers(clusters: list[list[Series]], *, expected: int) -> list[int]:
    """1-based station numbers: by position when all are there, else from the series numbers when they agree."""
    if len(clusters) >= expected:
        return list(range(1, len(clusters) + 1))
    from_series = []
    for cluster in clusters:
        numbers = [s.number for s in cluster if s.number is not None and 1 <= s.number <= expected * SERIES_PER_STATION]
        from_series.append((min(numbers) - 1) // SERIES_PER_STATION + 1 if numbers else None)
    known = [number for number in from_series if number is not None]
    if len(known) == len(clusters) and all(a < b for a, b in itertools.pairwise(known)):
        return known
    return list(range(1, len(clusters) + 1))


def _newest_per_channel(cluster: list[Series], number: int) -> tuple[dict[str, Series], str]:
    """For each channel the most recent series (SeriesTime, then SeriesNumber), and a note when there was a choice."""
    by_channel: dict[str, list[Series]] = {}
    for item in cluster:
        by_channel.setdefault(item.channel, []).append(item)
    chosen = {}
    repeated = False
    for channel, items in by_channel.items():
        items.sort(key=lambda s: (s.acquired, -1 if s.number is None else s.number))
        chosen[channel] = items[-1]
        repeated |= len(items) > 1
    note = ""
    if repeated:
        kept = sorted({s.number for s in chosen.values() if s.number is not None})
        kept_ids = {id(s) for s in chosen.values()}
        dropped = sorted({s.number for s in cluster if id(s) not in kept_ids and s.number is not None})
        note = (
            f"station {number} acquired more than once: kept the most recent acquisition "
            f"(series {_numbers_text(kept)}), dropped series {_numbers_text(dropped)}"
        )
    return dict(sorted(chosen.items())), note


def _numbers_text(numbers: list[int]) -> str:
    return "/".join(map(str, numbers)) if numbers else "?"


def _crop_to_common_region(station: Station) -> None:
    """Crop the channels of ``station`` to the physical region they all cover (noted when any was cropped)."""
    series = list(station.channels.values())
    x_lo, x_hi = max(s.x0 for s in series), min(s.x_end for s in series)
    y_lo, y_hi = max(s.y0 for s in series), min(s.y_end for s in series)
    z_lo, z_hi = max(s.z_bottom for s in series), min(s.z_top for s in series)
    if x_hi < x_lo or y_hi < y_lo or z_hi < z_lo:
        raise InputError(f"station {station.number}: its channels do not overlap in space")
    shapes = {channel: s.volume.shape for channel, s in station.channels.items()}
    for channel, item in station.channels.items():
        z_keep = _inside(item.z, z_lo, z_hi, tolerance=0.1 * max(item.z_step, 1e-3))
        y_keep = _inside(item.y0 + np.arange(item.volume.shape[1]) * item.sy, y_lo, y_hi, tolerance=0.1 * item.sy)
        x_keep = _inside(item.x0 + np.arange(item.volume.shape[2]) * item.sx, x_lo, x_hi, tolerance=0.1 * item.sx)
        if (z_keep, y_keep, x_keep) != (slice(0, item.volume.shape[0]), slice(0, shapes[channel][1]),
                                        slice(0, shapes[channel][2])):
            station.channels[channel] = item.crop(z=z_keep, y=y_keep, x=x_keep)
    cropped = {channel: s.volume.shape for channel, s in station.channels.items()}
    in_plane = {shape[1:] for shape in shapes.values()}  # slice counts may differ by a missing slice, bridged later
    if len(in_plane) > 1 or cropped != shapes:
        before = ", ".join(f"{channel} {'x'.join(map(str, shape[::-1]))}" for channel, shape in shapes.items())
        after = "x".join(map(str, next(iter(cropped.values()))[::-1]))
        station.notes.append(
            f"station {station.number}: channels differ in size ({before}, columns x rows x slices): "
            f"cropped to their common region ({after})"
        )


def _inside(coordinates: np.ndarray, low: float, high: float, *, tolerance: float) -> slice:
    """The index range of the sorted (either way) ``coordinates`` that lie within [low, high]."""
    keep = np.flatnonzero((coordinates >= low - tolerance) & (coordinates <= high + tolerance))
    if keep.size == 0:
        raise InputError("channels of a station do not overlap")
    return slice(int(keep[0]), int(keep[-1]) + 1)
