"""From stations to stitched volumes: trim, grid, overlaps, fat/water check, harmonise, blend, in that order.

Everything here works in physical coordinates: the output grid covers the union of the stations, each station is
resampled from its real slice positions, and the per-seam figures (the gain ratio found, the fat/water agreement, the
residual mismatch after harmonising) are returned for QC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ukbb_pipeline.mri.edges import REFERENCE_SLICES, EdgeTrim, noisy_edge_slices, slice_profile
from ukbb_pipeline.mri.grid import Grid, Placement, place, sample, union_grid
from ukbb_pipeline.mri.harmonise import (
    Overlap,
    fat_fraction_step,
    gain_channels,
    relative_mismatch,
    station_gains,
    station_scales,
)
from ukbb_pipeline.mri.parameters import StitchParameters
from ukbb_pipeline.mri.regions import SwapRegion, complement, find_regions
from ukbb_pipeline.mri.series import Series
from ukbb_pipeline.mri.stations import Station
from ukbb_pipeline.mri.stitch import Extent, Piece, adjacent, blend, feather_weights, trim_extents
from ukbb_pipeline.mri.swaps import find_swapped, pattern_score, seam_agreement
from ukbb_pipeline.mri.tolerance import same_positions, tolerance

FAT_WATER = ("F", "W")
DEFAULT_PARAMETERS = StitchParameters()
UNCERTAIN_AGREEMENT = 0.6  # a seam agreement below this (clear seams: about 1.8, swapped: -1.8) cannot tell
PATTERN_PIXEL_MM = 5.0  # the fat pattern of a station is judged on every other slice, at pixels of up to 5 mm


@dataclass
class SeamReport:
    """QC of one seam between adjacent stations."""

    upper: int  # station numbers
    lower: int
    z_mm: float  # LPS z of the middle of the kept overlap
    overlap_mm: float  # kept overlap (after trimming); <= 0 is a gap
    agreement: float = float("nan")  # fat/water agreement of the two stations (see swaps.py); nan if not checked
    ratio: dict[str, float] = field(default_factory=dict)  # gain ratio upper/lower found per channel (nan: none)
    mismatch: dict[str, float] = field(default_factory=dict)  # residual relative difference after harmonising
    fat_fraction_step: float = float("nan")  # median F/(F+W) of the upper minus the lower station, as output


@dataclass
class Stitched:
    """The stitched volumes as output arrays (x, y, z), on ``grid``, with what was found on the way."""

    volumes: dict[str, np.ndarray]
    grid: Grid
    stations: list[int]
    swapped: list[int]  # station numbers (any part swapped)
    fixed: bool  # whether swapped stations were swapped back
    regions: list[str]  # where (regions.py vocabulary: "3:whole", "5:left-leg z 0 to -240 mm, x 3 to 180 mm, 310 ml")
    uncertain: bool  # some seam's fat/water agreement is too weak to tell
    scales: dict[str, list[float]]  # per output channel, the scale applied to each station
    patterns: list[float]  # per station, the fat pattern score (nan: not checked)
    trims: list[EdgeTrim]
    seams: list[SeamReport]
    notes: list[str] = field(default_factory=list)


def stitch_stations(
    stations: Sequence[Station],
    *,
    channels: Sequence[str],
    params: StitchParameters = DEFAULT_PARAMETERS,
) -> Stitched:
    """Stitch ``stations`` (head to feet) into one (x, y, z) volume of ``params.dtype`` per channel of ``channels``.

    ``z_spacing`` defaults to the in-plane spacing. ``trim_slices`` are dropped at every overlapped station end,
    and up to ``max_trim_slices`` at any end whose signal drops by ``edge_drop`` (0 disables the search).
    ``feather_mm`` is the width of the blend at each seam. With ``fix_swaps``, stations found with fat and water
    swapped are swapped back before stitching.
    """
    first = stations[0].first()
    in_plane = (first.sx, first.sy)
    notes = _spacing_notes(stations, in_plane)
    sz = float(params.z_spacing) if params.z_spacing else in_plane[0]

    # Where each station contributes, and the grid covering them all.
    positions = [_station_positions(station) for station in stations]
    covered = [
        (i > 0 and adjacent(positions[i - 1], positions[i]),
         i < len(positions) - 1 and adjacent(positions[i], positions[i + 1]))
        for i in range(len(positions))
    ]
    wanted = [_noisy_edges(s, params.max_trim_slices, params.edge_drop, ends)
              for s, ends in zip(stations, covered, strict=True)]
    extents = trim_extents(positions, wanted, minimum=params.trim_slices, min_overlap=sz)
    boxes = [
        (*_in_plane_box(station), extent.bottom, extent.top)
        for station, extent in zip(stations, extents, strict=True)
    ]
    grid = union_grid(boxes, in_plane=in_plane, z_spacing=sz)
    placements = [
        {
            channel: place(series, grid, top=extent.reach_top, bottom=extent.reach_bottom,
                           hold=(extent.top, extent.bottom))
            for channel, series in station.channels.items()
        }
        for station, extent in zip(stations, extents, strict=True)
    ]
    for i in range(len(stations) - 1):
        if extents[i + 1].reach_top < extents[i].reach_bottom - tolerance(sz):
            notes.append(f"gap of {extents[i].bottom - extents[i + 1].top:.1f} mm between stations "
                         f"{stations[i].number} and {stations[i + 1].number}: left empty")

    # Regional swaps first (judged within each station); the later steps see them undone.
    shared = [c for c in dict.fromkeys([*channels, *FAT_WATER]) if all(c in s.channels for s in stations)]
    regions: list[SwapRegion] = []
    doubtful: list[SwapRegion] = []
    if all(c in shared for c in FAT_WATER):
        for i, station in enumerate(stations):
            for region in _regions(station, i):
                (regions if region.certain else doubtful).append(region)
    for region in doubtful:
        notes.append(f"fat/water uncertain in station {stations[region.index].number} "
                     f"({region.label(stations[region.index].number)}; evidence {region.evidence:.2f}): not fixed")
    undone = [_undo_regions(station, [r for r in regions if r.index == i]) for i, station in enumerate(stations)]
    source_stations = undone if params.fix_swaps else list(stations)
    stations = undone
    found = [_overlap(stations, extents, i, grid, shared) for i in range(len(stations) - 1)]
    overlaps: list[Overlap] = [overlap for overlap in found if overlap is not None]
    if all(c in shared for c in FAT_WATER):
        patterns = [_pattern(station) for station in stations]
        agreements = {
            (o.upper, o.lower): seam_agreement(o.upper_data["F"], o.upper_data["W"], o.lower_data["F"],
                                               o.lower_data["W"], o.body)
            for o in overlaps
        }
        swapped_index = find_swapped(patterns, agreements)
        weak = [(o, a) for o, a in zip(overlaps, agreements.values(), strict=True)
                if np.isfinite(a) and abs(a) < UNCERTAIN_AGREEMENT]
        for overlap, agreement in weak:
            notes.append(f"fat/water agreement uncertain at the seam of stations {stations[overlap.upper].number} and "
                         f"{stations[overlap.lower].number} ({agreement:.2f}; clear seams are about 1.8): a swap may "
                         f"be there that was not found")
    else:
        patterns, agreements, swapped_index = [float("nan")] * len(stations), {}, []
        notes.append("fat/water not checked: F and W are not both read for every station")
    mapping = _ChannelMap(swapped_index, fix=params.fix_swaps)
    corrected = [_relabel(overlap, swapped_index) for overlap in overlaps]
    true_scales, ratios = _true_scales(corrected, len(stations), mapping, channels, shared, harmonise=params.harmonise)

    # One channel at a time: blend in float32, then convert to the output layout and let the float32 go.
    scales: dict[str, list[float]] = {}
    volumes: dict[str, np.ndarray] = {}
    weights = feather_weights(grid.z, extents, feather_mm=params.feather_mm)
    for channel in channels:
        pieces = []
        for i in range(len(stations)):
            stored = mapping.source(i, channel)
            scale = float(true_scales[mapping.truth(i, stored)][i])
            pieces.append(Piece(source_stations[i].channels[stored], placements[i][stored], scale))
        scales[channel] = [piece.scale for piece in pieces]
        volumes[channel] = to_output_array(blend(pieces, weights, grid), dtype=params.dtype)

    seams = [
        _seam_report(stations, extents, overlap, corrected[index] if params.fix_swaps else overlap, index, channels,
                     shared, agreements, ratios, scales)
        for index, overlap in enumerate(overlaps)
    ]
    labels = []
    for i, station in enumerate(stations):
        own = [region for region in regions if region.index == i]
        if i in swapped_index:  # labelled swapped after its regions were undone: the rest of it was swapped
            rest = complement(own)
            labels += [region.label(station.number) for region in rest] if own else [f"{station.number}:whole"]
        else:
            labels += [region.label(station.number) for region in own]
    return Stitched(
        volumes=volumes,
        grid=grid,
        stations=[station.number for station in stations],
        swapped=sorted({stations[i].number for i in swapped_index} | {stations[r.index].number for r in regions}),
        fixed=params.fix_swaps and bool(swapped_index or regions),
        regions=labels,
        uncertain=bool(doubtful) or (bool(patterns) and any(np.isfinite(a) and abs(a) < UNCERTAIN_AGREEMENT
                                                             for a in agreements.values())),
        scales=scales,
        patterns=patterns,
        trims=[extent.trimmed for extent in extents],
        seams=seams,
        notes=notes,
    )


@dataclass(frozen=True)
class _ChannelMap:
    """Which stored series feeds each output channel, and which channel a stored series truly holds."""

    swapped: Sequence[int]  # station indices
    fix: bool

    def truth(self, i: int, stored: str) -> str:
        return _other(stored) if i in self.swapped and stored in FAT_WATER else stored

    def source(self, i: int, channel: str) -> str:
        return self.truth(i, channel) if self.fix else channel


def _true_scales(
    corrected: Sequence[Overlap], n_stations: int, mapping: _ChannelMap, channels: Sequence[str],
    shared: Sequence[str], *, harmonise: bool,
) -> tuple[dict[str, np.ndarray], dict[str, list[float | None]]]:
    """Station scales per true channel: one gain per station (harmonise.station_gains, from the summed channels) for
    every channel; and per channel, the ratio that channel alone gives at each seam (a QC figure)."""
    wanted = dict.fromkeys(mapping.truth(i, c) for i in range(n_stations) for c in channels)
    gains = np.ones(n_stations)
    if harmonise and shared:
        gains, _ = station_gains(corrected, n_stations, gain_channels(shared))
    scales: dict[str, np.ndarray] = {}
    ratios: dict[str, list[float | None]] = {}
    for channel in wanted:
        scales[channel] = gains
        ratios[channel] = (station_scales(corrected, n_stations, channel)[1] if harmonise and channel in shared
                           else [None] * len(corrected))
    return scales, ratios


def _seam_report(
    stations: Sequence[Station], extents: Sequence[Extent], overlap: Overlap, view: Overlap, index: int,
    channels: Sequence[str], shared: Sequence[str], agreements: dict[tuple[int, int], float],
    ratios: dict[str, list[float | None]], scales: dict[str, list[float]],
) -> SeamReport:
    """The QC of one seam; ``view`` is the overlap as the output shows it (swaps undone when fixed)."""
    upper, lower = overlap.upper, overlap.lower
    report = SeamReport(
        upper=stations[upper].number,
        lower=stations[lower].number,
        z_mm=overlap.z_mm,
        overlap_mm=extents[lower].top - extents[upper].bottom,
        agreement=agreements.get((upper, lower), float("nan")),
    )
    if all(c in view.upper_data for c in FAT_WATER):  # one gain per station: scaling leaves F/(F+W) as it is
        report.fat_fraction_step = fat_fraction_step(view.upper_data, view.lower_data, overlap.body)
    for channel in channels:
        if channel not in shared:
            continue
        found = ratios.get(channel, [None] * (index + 1))[index]
        report.ratio[channel] = float("nan") if found is None else found
        report.mismatch[channel] = relative_mismatch(
            view.upper_data[channel] * scales[channel][upper],
            view.lower_data[channel] * scales[channel][lower],
            overlap.body,
        )
    return report


def _spacing_notes(stations: Sequence[Station], in_plane: tuple[float, float]) -> list[str]:
    notes = []
    for station in stations:
        for channel, series in station.channels.items():
            if abs(series.sx / in_plane[0] - 1) > 1e-4 or abs(series.sy / in_plane[1] - 1) > 1e-4:
                notes.append(f"station {station.number} {channel}: pixel spacing differs from station "
                             f"{stations[0].number}'s; resampled in-plane")
    return notes


def to_output_array(volume: np.ndarray, *, dtype: str) -> np.ndarray:
    """A (z, y, x) float32 volume as the output's (x, y, z) array: uint16 rounded and clipped, or float32.

    Done one coronal plane at a time: a plane's transpose fits in cache, the whole volume's does not.
    """
    out = np.empty(volume.shape[::-1], dtype=np.dtype(dtype))
    if out.dtype != np.uint16:
        for row in range(volume.shape[1]):
            out[:, row, :] = volume[:, row, :].T
        return out
    plane = np.empty((volume.shape[0], volume.shape[2]), dtype=np.float32)
    for row in range(volume.shape[1]):
        np.clip(volume[:, row, :], 0, 65535, out=plane)
        plane += 0.5  # then the cast truncates: rounding half up (values are >= 0)
        out[:, row, :] = plane.T
    return out


def _other(channel: str) -> str:
    return "W" if channel == "F" else "F"


def _relabel(overlap: Overlap, swapped: Sequence[int]) -> Overlap:
    """``overlap`` with F and W exchanged for the swapped stations (the truth as far as it is known)."""
    if overlap.upper not in swapped and overlap.lower not in swapped:
        return overlap

    def fix(data: dict[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
        if index not in swapped or not all(c in data for c in FAT_WATER):
            return data
        return {**data, "F": data["W"], "W": data["F"]}

    return overlap.relabelled(upper_data=fix(overlap.upper_data, overlap.upper),
                              lower_data=fix(overlap.lower_data, overlap.lower))


def _station_positions(station: Station) -> np.ndarray:
    """The slice positions of a station (head first) within the region all its channels cover."""
    series = min(station.channels.values(), key=lambda s: s.z.size)
    slack = tolerance(series.z_step)
    return series.z[(series.z <= station.z_top + slack) & (series.z >= station.z_bottom - slack)]


def _in_plane_box(station: Station) -> tuple[float, float, float, float]:
    series = list(station.channels.values())
    return (max(s.x0 for s in series), min(s.x_end for s in series),
            max(s.y0 for s in series), min(s.y_end for s in series))


def _shared_slices(series: Sequence[Series]) -> list[np.ndarray] | None:
    """The volumes of ``series`` restricted to the slices they all have (same position), when they share one
    in-plane grid; None otherwise (e.g. a missing slice in one channel only is fine, another FOV is not)."""
    first = series[0]
    if any(s.volume.shape[1:] != first.volume.shape[1:] or abs(s.x0 - first.x0) > tolerance(first.sx)
           or abs(s.y0 - first.y0) > tolerance(first.sy) for s in series):
        return None
    step = first.z_step
    if all(s.z.size == first.z.size and same_positions(s.z, first.z, step=step).all() for s in series):
        return [s.volume for s in series]
    common = first.z
    for s in series[1:]:
        common = common[same_positions(common, s.z, step=step)]
    if common.size < 4:
        return None
    return [s.volume[same_positions(s.z, common, step=step)] for s in series]


def _signal_sum(station: Station, *, step: int = 1) -> np.ndarray | None:
    """F + W (else every channel) of a station on the slices they share, in-plane subsampled."""
    names = [c for c in FAT_WATER if c in station.channels] or list(station.channels)
    volumes = _shared_slices([station.channels[c] for c in names])
    if volumes is None:
        return None
    total = volumes[0][:, ::step, ::step].astype(np.float32)
    for volume in volumes[1:]:
        total += volume[:, ::step, ::step]
    return total


def _noisy_edges(station: Station, max_slices: int, drop: float, covered: tuple[bool, bool]) -> EdgeTrim:
    if max_slices <= 0:
        return EdgeTrim()
    total = _signal_sum(station, step=2)
    if total is None:
        return EdgeTrim()
    examined = max_slices + REFERENCE_SLICES
    if total.shape[0] > 2 * examined:  # only the slices near the two ends are looked at
        total = np.concatenate([total[:examined], total[-examined:]])
    return noisy_edge_slices(slice_profile(total), max_slices=max_slices, drop=drop, covered=covered)


def _regions(station: Station, index: int) -> list[SwapRegion]:
    """The regional fat/water swaps of one station (regions.py), judged at pixels of a few mm."""
    fat, water = station.channels["F"], station.channels["W"]
    volumes = _shared_slices([fat, water])
    if volumes is None:
        return []
    z = _shared_z(station)
    step = max(1, int(PATTERN_PIXEL_MM // fat.sy))
    fat_part, water_part = (v[:, ::step, ::step].astype(np.float32) for v in volumes)
    x = (fat.x0 + np.arange(fat.volume.shape[2]) * fat.sx)[::step]
    return find_regions(fat_part, water_part, x=x, z=z, row_spacing=fat.sy * step, column_spacing=fat.sx * step,
                        step=step, index=index)


def _shared_z(station: Station) -> np.ndarray:
    """The slice positions F and W of a station share."""
    fat, water = station.channels["F"], station.channels["W"]
    return fat.z[same_positions(fat.z, water.z, step=fat.z_step)]


def _undo_regions(station: Station, regions: Sequence[SwapRegion]) -> Station:
    """``station`` with F and W exchanged back in ``regions`` (copies of the two series; the others shared)."""
    if not regions:
        return station
    fat, water = station.channels["F"], station.channels["W"]
    fat_volume, water_volume = fat.volume.copy(), water.volume.copy()
    for region in regions:
        for series, own, other in ((fat, fat_volume, water), (water, water_volume, fat)):
            for k in range(series.z.size):
                mask = region.slice_mask(float(series.z[k]), series.volume.shape[1:], z_step=series.z_step)
                match = np.flatnonzero(same_positions(other.z, series.z[k:k + 1], step=series.z_step))
                if mask is not None and match.size and other.volume.shape[1:] == series.volume.shape[1:]:
                    own[k][mask] = other.volume[match[0]][mask]
    channels = {**station.channels, "F": fat.replace_volume(fat_volume, fat.z),
                "W": water.replace_volume(water_volume, water.z)}
    return Station(number=station.number, channels=channels, notes=list(station.notes))


def _pattern(station: Station) -> float:
    fat = station.channels["F"]
    volumes = _shared_slices([fat, station.channels["W"]])
    if volumes is None:
        return 0.0  # no evidence either way
    step = max(1, int(PATTERN_PIXEL_MM // fat.sy))  # in-plane: pixels of a few mm are enough
    fat_part, water_part = (v[::2, ::step, ::step].astype(np.float32) for v in volumes)
    return pattern_score(fat_part, water_part, row_spacing=fat.sy * step)


def _overlap(stations: Sequence[Station], extents: Sequence[Extent], i: int, grid: Grid,
             channels: Sequence[str]) -> Overlap | None:
    """Stations i and i+1 resampled onto the same voxels where both are kept; None when they do not overlap."""
    upper, lower = extents[i], extents[i + 1]
    if lower.reach_top <= upper.reach_bottom:
        return None
    top, bottom = max(lower.top, upper.bottom), min(lower.top, upper.bottom)  # overlap, or a bridged gap
    sz = grid.spacing[2]
    n = max(2, int(np.floor((top - bottom) / sz)) + 1)
    step = max((top - bottom) / (n - 1), 1e-3)
    local = Grid(origin=(grid.origin[0], grid.origin[1], top), spacing=(*grid.spacing[:2], step),
                 shape=(*grid.shape[:2], n))
    data: list[dict[str, np.ndarray]] = [{}, {}]
    placements: list[dict[str, Placement]] = [{}, {}]
    for side, (index, extent) in enumerate(((i, upper), (i + 1, lower))):
        for channel in channels:
            placements[side][channel] = place(stations[index].channels[channel], local, top=top,
                                              bottom=bottom - 1e-3, hold=(extent.top, extent.bottom))
    ys = _common(p.y.out for side in placements for p in side.values())
    xs = _common(p.x.out for side in placements for p in side.values())
    ks = _common(p.z.out for side in placements for p in side.values())
    if ys.stop <= ys.start or xs.stop <= xs.start or ks.stop <= ks.start:
        return None
    for side, index in enumerate((i, i + 1)):
        for channel in channels:
            placement = placements[side][channel]
            block = sample(stations[index].channels[channel], placement, ks=ks)
            y0, x0 = placement.y.out.start, placement.x.out.start
            data[side][channel] = block[:, ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    return Overlap(upper=i, lower=i + 1, z_mm=(top + bottom) / 2, upper_data=data[0], lower_data=data[1])


def _common(ranges) -> slice:
    ranges = list(ranges)
    return slice(max(r.start for r in ranges), min(r.stop for r in ranges))

