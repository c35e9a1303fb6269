"""Grouping Dixon series into stations, with the quirks of real zips (ukbb-format.md 1.6, 1.7).

Derived series are set aside (``select``), the rest grouped into acquisitions with one reconstruction each
(``acquisitions``), so that the channels of a station always come from one acquisition. A station is a position: the
acquisitions whose z extents mostly coincide (``SAME_POSITION_SHARE`` of the shorter) image it, whatever their
numbers. A repeat replaces only what it covers: the most recent acquisition is used where it reaches, earlier ones
where only they reach (a partial, aborted repeat never loses coverage; ``SPLICE_TRIM`` slices of the repeat's slab
edge are left to the earlier acquisition where that one goes on). A repeat with the table moved is a position of its
own, stitched between its neighbours, which stay. Channels of different sizes are cropped to their common physical
region; a missing station or channel is a failure unless missing stations are allowed. Stations are numbered 1-6 head
to feet from their series numbers (1-4 station 1, ..., 21-24 station 6) when they agree, so that a missing one keeps
the numbering of the others; every choice is a note naming the series.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.mri.acquisitions import Acquisition, group_acquisitions, numbers_text
from ukbb_pipeline.mri.select import select_standard
from ukbb_pipeline.mri.series import Series
from ukbb_pipeline.mri.tolerance import same_positions, tolerance

N_STATIONS = 6  # neck, upper abdomen, abdomen, pelvis, thighs, knees
SERIES_PER_STATION = 4  # in, opp, F, W
SAME_POSITION_SHARE = 0.8  # acquisitions sharing this much of the shorter z extent image the same position
SPLICE_TRIM = 2  # slices of a repeat's slab edge left to the earlier acquisition where that one goes on


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
    usable, notes = select_standard(series)
    acquisitions, reconstruction_notes = group_acquisitions(usable)
    notes.extend(reconstruction_notes)
    clusters = _positions(acquisitions)
    numbers, numbering_notes = _station_numbers(clusters, expected=expected)
    notes.extend(numbering_notes)
    stations: list[Station] = []
    for number, cluster in zip(numbers, clusters, strict=True):
        complete, reason, pairing_notes = _complete(cluster, number, required)
        if reason:
            if not allow_missing:
                raise InputError(reason)
            notes.append(f"{reason}: station left out")
            continue
        notes.extend(pairing_notes)
        chosen, repeat_note = _combine(complete, number)
        station = Station(number=number, channels=chosen)
        if repeat_note:
            station.notes.append(repeat_note)
        _crop_to_common_region(station)
        stations.append(station)
    present = {station.number for station in stations}
    distinct = sorted(set(numbers))
    if len(distinct) < expected:
        missing = [number for number in range(1, expected + 1) if number not in distinct]
        reason = f"{len(distinct)} of {expected} stations in the zip" + (
            f" (station {', '.join(map(str, missing))} missing)" if missing else ""
        )
        if not allow_missing:
            raise InputError(reason)
        notes.append(reason)
    elif len(distinct) > expected:
        notes.append(f"{len(distinct)} stations in the zip ({expected} expected); all were stitched")
    if not present:
        raise InputError("no station has every channel asked for")
    for station in stations:
        notes.extend(station.notes)
    return StationSet(stations=stations, notes=notes)


def _share(top_a: float, bottom_a: float, top_b: float, bottom_b: float) -> float:
    """The z extent two slabs share, as a fraction of the shorter one."""
    shared = min(top_a, top_b) - max(bottom_a, bottom_b)
    shorter = min(top_a - bottom_a, top_b - bottom_b)
    return shared / shorter if shorter > 0 else 0.0


def _positions(acquisitions: Sequence[Acquisition]) -> list[list[Acquisition]]:
    """Acquisitions grouped by position (slabs sharing most of the shorter z extent), head to feet."""
    ordered = sorted(acquisitions, key=lambda a: -(a.z_top + a.z_bottom) / 2)
    clusters: list[list[Acquisition]] = []
    for item in ordered:
        best, best_share = -1, SAME_POSITION_SHARE
        for index, cluster in enumerate(clusters):
            share = max(_share(a.z_top, a.z_bottom, item.z_top, item.z_bottom) for a in cluster)
            if share >= best_share:
                best, best_share = index, share
        if best < 0:
            clusters.append([item])
        else:
            clusters[best].append(item)
    centres = [max((a.z_top + a.z_bottom) / 2 for a in cluster) for cluster in clusters]
    order = np.argsort([-c for c in centres], kind="stable")
    return [clusters[index] for index in order]


def _claim(cluster: list[Acquisition], expected: int) -> int | None:
    """The station a position's series numbers say (1-4 station 1, ..., 21-24 station 6); None if they say none."""
    numbers = [s.number for a in cluster for s in a.channels.values()
               if s.number is not None and 1 <= s.number <= expected * SERIES_PER_STATION]
    return (min(numbers) - 1) // SERIES_PER_STATION + 1 if numbers else None


def _station_numbers(clusters: list[list[Acquisition]], *, expected: int) -> tuple[list[int], list[str]]:
    """1-based station numbers head to feet: from the series numbers when they agree, else by position. A position
    that no series number claims (a repeat with the table moved) takes the number of the nearest claimed one."""
    claims = [_claim(cluster, expected) for cluster in clusters]
    known = [claim for claim in claims if claim is not None]
    ordered = all(a < b for a, b in itertools.pairwise(known))
    if len(known) == len(clusters) and ordered:
        return [claim for claim in claims if claim is not None], []
    if len(clusters) == expected or not known or not ordered:
        return list(range(1, len(clusters) + 1)), []
    centres = [(c[0].z_top + c[0].z_bottom) / 2 for c in clusters]
    numbers, notes = [], []
    for index, claim in enumerate(claims):
        if claim is not None:
            numbers.append(claim)
            continue
        nearest = min((j for j, other in enumerate(claims) if other is not None),
                      key=lambda j: abs(centres[j] - centres[index]))
        number = claims[nearest]
        assert number is not None
        numbers.append(number)
        slab = clusters[index][0]
        notes.append(f"an acquisition at another position than any station ({slab.label}, z {slab.z_top:.1f} to "
                     f"{slab.z_bottom:.1f} mm, numbered {number} as the nearest): stitched as one more slab between "
                     f"its neighbours, none replaced")
    return numbers, notes


def _complete(
    cluster: list[Acquisition], number: int, required: Collection[str]
) -> tuple[list[Acquisition], str, list[str]]:
    """The acquisitions of a station position that hold every ``required`` channel, a failure reason when none
    does, and notes on those set aside.

    A position where no channel was read twice is one acquisition whatever its series' geometry (nothing can be
    mixed up there). Otherwise a channel is never taken from another acquisition than its partners: an acquisition
    lacking one is set aside, and when none has them all the reason names the channels apart.
    """
    channels = [channel for a in cluster for channel in a.channels]
    if len(cluster) > 1 and len(channels) == len(set(channels)):
        merged = Acquisition(channels=dict(sorted({c: s for a in cluster for c, s in a.channels.items()}.items())),
                             unused=[s for a in cluster for s in a.unused])
        cluster = [merged]
    complete = [a for a in cluster if set(required) <= set(a.channels)]
    if complete:
        notes = [f"station {number}: {a.label} ({'/'.join(a.channels)}) not used: an acquisition without "
                 f"{'/'.join(sorted(set(required) - set(a.channels)))}, never paired with another one's"
                 for a in cluster if a not in complete]
        return complete, "", notes
    lacking = sorted(set(required) - set(channels))
    if lacking:
        return [], f"station {number} has no {'/'.join(lacking)} series", []
    apart = sorted(set(required), key=list(required).index)
    where = "; ".join(f"{c} in series {numbers_text(a.channels[c].number for a in cluster if c in a.channels)}"
                      for c in apart)
    names = " and ".join(apart) if len(apart) == 2 else "/".join(apart)
    return [], f"{names} of station {number} come from different acquisitions ({where})", []


def _combine(cluster: list[Acquisition], number: int) -> tuple[dict[str, Series], str]:
    """The series of one station position: the most recent acquisition where it reaches, earlier ones where only
    they reach (a repeat replaces what it covers and no more), with a note when there was a choice."""
    newest_first = sorted(cluster, key=lambda a: a.order, reverse=True)
    base = newest_first[0]
    if len(newest_first) == 1:
        return dict(base.channels), ""
    if not all(_splices_with(base, a) for a in newest_first):  # cannot interleave: the widest coverage wins
        base = max(newest_first, key=lambda a: a.z_top - a.z_bottom + a.z_step)
        newest_first = [base, *[a for a in newest_first if a is not base]]
    usable = [a for a in newest_first if _splices_with(base, a)]
    unusable = [a for a in newest_first if a not in usable]
    covered: list[tuple[float, float]] = []
    parts: list[tuple[Acquisition, np.ndarray]] = []  # each acquisition and which of its slices are used
    for index, acquisition in enumerate(usable):
        z = _common_z(acquisition)
        keep = np.ones(z.size, dtype=bool)
        older = usable[index + 1:]
        step = acquisition.z_step
        margin = min(SPLICE_TRIM, max(0, (z.size - 2) // 2))
        if margin and any(o.z_top > z[0] + step / 2 for o in older):  # an earlier acquisition goes on above
            keep[:margin] = False
        if margin and any(o.z_bottom < z[-1] - step / 2 for o in older):
            keep[z.size - margin:] = False
        for high, low in covered:
            keep &= ~((z <= high + tolerance(step)) & (z >= low - tolerance(step)))
        if keep.any():
            parts.append((acquisition, keep))
            used = z[keep]
            covered.append((float(used.max()) + step / 2, float(used.min()) - step / 2))
    dropped = [a for a in usable if all(a is not p for p, _ in parts)] + unusable
    if len(parts) == 1:
        note = (f"station {number} acquired more than once: kept the most recent acquisition ({base.label}), "
                f"dropped series {'/'.join(numbers_text(s.number for s in a.channels.values()) for a in dropped)}")
        return dict(base.channels), note
    channels = {}
    for channel, series in base.channels.items():
        zs, volumes = [], []
        for acquisition, keep in parts:
            item = acquisition.channels[channel]
            inside = same_positions(item.z, _common_z(acquisition)[keep], step=acquisition.z_step)
            zs.append(item.z[inside])
            volumes.append(item.volume[inside])
        z = np.concatenate(zs)
        order = np.argsort(-z, kind="stable")
        channels[channel] = series.replace_volume(np.concatenate(volumes)[order], z[order])
    used_text = "; ".join(
        f"{a.label} for z {float(_common_z(a)[k].max()):.1f} to {float(_common_z(a)[k].min()):.1f} mm"
        for a, k in parts
    )
    note = f"station {number} acquired more than once: used {used_text} (the most recent where it reaches)"
    if dropped:
        note += f"; dropped {', '.join(a.label for a in dropped)}"
    return channels, note


def _common_z(acquisition: Acquisition) -> np.ndarray:
    """The slice positions all channels of an acquisition have (those of its first channel within the others')."""
    first = min(acquisition.channels.values(), key=lambda s: s.z.size)
    return first.z


def _splices_with(base: Acquisition, other: Acquisition) -> bool:
    """Whether ``other`` has every channel of ``base`` on the same in-plane grid (so slices can be interleaved)."""
    for channel, series in base.channels.items():
        item = other.channels.get(channel)
        if item is None or item.volume.shape[1:] != series.volume.shape[1:]:
            return False
        if abs(item.x0 - series.x0) > tolerance(series.sx) or abs(item.y0 - series.y0) > tolerance(series.sy):
            return False
        if abs(item.sx - series.sx) > tolerance(series.sx) or abs(item.sy - series.sy) > tolerance(series.sy):
            return False
    return True


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
        z_keep = _inside(item.z, z_lo, z_hi, tolerance=tolerance(item.z_step))
        y_keep = _inside(item.y0 + np.arange(item.volume.shape[1]) * item.sy, y_lo, y_hi, tolerance=tolerance(item.sy))
        x_keep = _inside(item.x0 + np.arange(item.volume.shape[2]) * item.sx, x_lo, x_hi, tolerance=tolerance(item.sx))
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
