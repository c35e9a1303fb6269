"""Which series were acquired together, so that F, W, in and opp of a station are never mixed.

An *acquisition* is one scan of a slab. Its channel series image the same slab: the same in-plane grid (pixel
spacing, origins a whole number of pixels apart, overlapping) and the same slice positions (the same step, aligned,
sharing ``SAME_GEOMETRY_SHARE`` of the shorter z extent), all within the project's one tolerance
(:mod:`~ukbb_pipeline.mri.tolerance`), and, where the headers have it, the same AcquisitionNumber. Times never group:
real scanners give each series, slice and echo its own AcquisitionTime, and some files have none (ukbb-format.md 1.7;
docs/reference/real-headers.md).

A slab imaged more than once (a repeat at the same place) has a channel twice. Its series are then split in time
order (AcquisitionTime, else SeriesTime, else SeriesNumber): a channel already taken starts the next acquisition. A
series with the channel and the AcquisitionTime of one already placed is a *reconstruction* of that acquisition (the
same raw data made into series again later), not a new one. A slab whose series carry no time at all is split by
SeriesNumber, and a note says so.

An acquisition with several reconstructions uses one: the one with the most channels, the latest of those (its
channels' SeriesTimes within ``RECONSTRUCTION_WINDOW_S``); a channel it lacks is taken from the latest other
reconstruction of the same acquisition (never from another acquisition).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ukbb_pipeline.mri.series import Series
from ukbb_pipeline.mri.tolerance import tolerance

RECONSTRUCTION_WINDOW_S = 60.0  # channels of one reconstruction have SeriesTimes this close
SAME_GEOMETRY_SHARE = 0.9  # series of one slab share at least this much of the shorter z extent


@dataclass(eq=False)
class Acquisition:
    """One slab acquisition, as the series used from it (one per channel)."""

    channels: dict[str, Series]
    unused: list[Series] = field(default_factory=list)  # other reconstructions of it

    @property
    def z_top(self) -> float:
        return min(s.z_top for s in self.channels.values())

    @property
    def z_bottom(self) -> float:
        return max(s.z_bottom for s in self.channels.values())

    @property
    def z_step(self) -> float:
        return max(s.z_step for s in self.channels.values())

    @property
    def acquired(self) -> str:
        """When it was acquired (sortable text): its earliest AcquisitionTime, else its latest SeriesTime."""
        times = [s.acquisition_time for s in self.channels.values() if s.acquisition_time]
        return min(times) if times else max(s.acquired for s in self.channels.values())

    @property
    def order(self) -> tuple[str, int]:
        """Sorts acquisitions oldest first: by time, then (for files without times) by SeriesNumber."""
        return self.acquired, max((s.number for s in self.channels.values() if s.number is not None), default=-1)

    @property
    def label(self) -> str:
        return f"series {numbers_text(s.number for s in self.channels.values())}"


def numbers_text(numbers) -> str:
    known = sorted({n for n in numbers if n is not None})
    return "/".join(map(str, known)) if known else "?"


def seconds(acquired: str) -> float:
    """Seconds of a sortable date-time text (see header.py: 8 date characters, then seconds since midnight)."""
    try:
        date = acquired[:8].strip()
        day = float(np.datetime64(f"{date[:4]}-{date[4:6]}-{date[6:8]}").astype("datetime64[D]").astype(np.int64))
    except (ValueError, IndexError):
        day = 0.0
    try:
        return day * 86400.0 + float(acquired[8:] or 0.0)
    except ValueError:
        return day * 86400.0


def group_acquisitions(series: Sequence[Series]) -> tuple[list[Acquisition], list[str]]:
    """The acquisitions among ``series``, each with the reconstruction used from it, and notes on the choices."""
    acquisitions, notes = [], []
    for slab in _slabs(series):
        by_number: dict[int | None, list[Series]] = {}
        for item in slab:
            by_number.setdefault(item.acquisition_number, []).append(item)
        for group in by_number.values():
            parts = _split(group)
            if len(parts) > 1 and not any(s.acquisition_time or s.acquired for s in group):
                notes.append(f"series {numbers_text(s.number for s in group)} hold one slab more than once "
                             f"(repeats or reconstructions) and carry no acquisition times: told apart by their "
                             f"series numbers")
            for part in parts:
                acquisition, note = _one_reconstruction(part)
                acquisitions.append(acquisition)
                notes.extend(note)
    return acquisitions, notes


def same_slab(a: Series, b: Series) -> bool:
    """Whether two series image the same slab (see the module text), whatever their times."""
    if abs(a.sx - b.sx) > tolerance(a.sx) or abs(a.sy - b.sy) > tolerance(a.sy):
        return False
    if a.z.size > 1 and b.z.size > 1 and abs(a.z_step - b.z_step) > tolerance(a.z_step):
        return False
    if not (_aligned(a.x0 - b.x0, a.sx) and _aligned(a.y0 - b.y0, a.sy)):
        return False
    if min(a.x_end, b.x_end) < max(a.x0, b.x0) or min(a.y_end, b.y_end) < max(a.y0, b.y0):
        return False
    step = max(a.z_step, b.z_step)
    if step > 0 and not _aligned(a.z_top - b.z_top, step):
        return False
    shared = min(a.z_top, b.z_top) - max(a.z_bottom, b.z_bottom)
    shorter = min(a.z_top - a.z_bottom, b.z_top - b.z_bottom)
    return shorter > 0 and shared >= SAME_GEOMETRY_SHARE * shorter


def _aligned(offset: float, step: float) -> bool:
    """Whether two grids of ``step`` whose origins are ``offset`` apart share their positions."""
    return abs(offset - round(offset / step) * step) <= tolerance(step)


def _slabs(series: Sequence[Series]) -> list[list[Series]]:
    """``series`` grouped by slab (each with the first of its group)."""
    slabs: list[list[Series]] = []
    for item in series:
        for slab in slabs:
            if same_slab(slab[0], item):
                slab.append(item)
                break
        else:
            slabs.append([item])
    return slabs


def _time_order(item: Series) -> tuple[str, str, int]:
    return item.acquisition_time or "~", item.acquired or "~", -1 if item.number is None else item.number


def _split(group: list[Series]) -> list[list[Series]]:
    """The series of one slab split into acquisitions (see the module text), each with its reconstructions."""
    parts: list[list[Series]] = []
    for item in sorted(group, key=_time_order):
        home = next((part for part in parts if any(_same_raw_data(other, item) for other in part)), None)
        if home is not None:
            home.append(item)
        elif parts and item.channel not in {other.channel for other in parts[-1]}:
            parts[-1].append(item)
        else:
            parts.append([item])
    return parts


def _same_raw_data(a: Series, b: Series) -> bool:
    """Two series of one channel made from the same acquisition (its AcquisitionTime repeated)."""
    return a.channel == b.channel and bool(a.acquisition_time) and a.acquisition_time == b.acquisition_time


def _one_reconstruction(group: list[Series]) -> tuple[Acquisition, list[str]]:
    """The acquisition of ``group`` using one reconstruction (see the module text), and a note when there were more."""
    reconstructions = _reconstructions(group)
    best = max(reconstructions, key=lambda r: (len(r), max(s.acquired for s in r.values())))
    channels = dict(best)
    for other in sorted(reconstructions, key=lambda r: max(s.acquired for s in r.values()), reverse=True):
        for channel, item in other.items():
            channels.setdefault(channel, item)
    used = {id(s) for s in channels.values()}
    unused = [s for s in group if id(s) not in used]
    acquisition = Acquisition(channels=dict(sorted(channels.items())), unused=unused)
    if not unused:
        return acquisition, []
    return acquisition, [
        f"{len(reconstructions)} reconstructions of one acquisition (z {acquisition.z_top:.1f} to "
        f"{acquisition.z_bottom:.1f} mm): used {acquisition.label}, not series {numbers_text(s.number for s in unused)}"
    ]


def _reconstructions(group: list[Series]) -> list[dict[str, Series]]:
    """The series of one acquisition split into reconstructions (SeriesTime order; a channel twice starts anew)."""
    sets: list[dict[str, Series]] = []
    starts: list[float] = []
    for item in sorted(group, key=lambda s: (s.acquired, -1 if s.number is None else s.number)):
        when = seconds(item.acquired)
        if sets and item.channel not in sets[-1] and when - starts[-1] <= RECONSTRUCTION_WINDOW_S:
            sets[-1][item.channel] = item
        else:
            sets.append({item.channel: item})
            starts.append(when)
    return sets
