"""Which series were reconstructed together from one acquisition, so that F, W, in and opp are never mixed.

An *acquisition* is one 3-D scan of a slab: its series share AcquisitionDate/AcquisitionTime and AcquisitionNumber
(when the headers have them) and their z range (in-plane the channels may differ by a few rows, ukbb-format.md 1.6.4). A
*reconstruction* is one set of series made from it at one time: the channels of a set have SeriesTimes within
``RECONSTRUCTION_WINDOW_S`` of each other and no channel twice. A re-reconstruction (the same acquisition made into
new series later) is a second set. Without AcquisitionTime and AcquisitionNumber, series of one geometry whose
SeriesTimes lie within the window are taken as one acquisition.

Each acquisition is used as one reconstruction: the one with the most channels, the latest of those; a channel it
lacks is taken from the latest other reconstruction of the same acquisition (never from another acquisition).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ukbb_pipeline.mri.series import Series

RECONSTRUCTION_WINDOW_S = 60.0  # channels of one reconstruction have SeriesTimes this close
SAME_GEOMETRY_SHARE = 0.9  # series of one acquisition share at least this much of the shorter z extent


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
        """When it was acquired (sortable text): AcquisitionTime when known, else the latest SeriesTime."""
        first = next(iter(self.channels.values()))
        return first.acquisition.split(" #")[0] or max(s.acquired for s in self.channels.values())

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
        return day * 86400.0 + float(acquired[8:].split(" #")[0] or 0.0)
    except ValueError:
        return day * 86400.0


def group_acquisitions(series: Sequence[Series]) -> tuple[list[Acquisition], list[str]]:
    """The acquisitions among ``series``, each with the reconstruction used from it, and notes on the choices."""
    groups: list[list[Series]] = []
    for item in sorted(series, key=lambda s: (s.acquired, -1 if s.number is None else s.number)):
        for group in groups:
            if _same_acquisition(group[0], item):
                group.append(item)
                break
        else:
            groups.append([item])
    acquisitions, notes = [], []
    for group in groups:
        reconstructions = _reconstructions(group)
        best = max(reconstructions, key=lambda r: (len(r), max(s.acquired for s in r.values())))
        channels = dict(best)
        for other in sorted(reconstructions, key=lambda r: max(s.acquired for s in r.values()), reverse=True):
            for channel, item in other.items():
                channels.setdefault(channel, item)
        used = {id(s) for s in channels.values()}
        unused = [s for s in group if id(s) not in used]
        acquisition = Acquisition(channels=dict(sorted(channels.items())), unused=unused)
        if unused:
            notes.append(
                f"{len(reconstructions)} reconstructions of one acquisition (z {acquisition.z_top:.1f} to "
                f"{acquisition.z_bottom:.1f} mm): used {acquisition.label}, not "
                f"series {numbers_text(s.number for s in unused)}"
            )
        acquisitions.append(acquisition)
    return acquisitions, notes


def _same_acquisition(a: Series, b: Series) -> bool:
    if a.acquisition != b.acquisition:
        return False
    if not a.acquisition and abs(seconds(a.acquired) - seconds(b.acquired)) > RECONSTRUCTION_WINDOW_S:
        return False
    shared = min(a.z_top, b.z_top) - max(a.z_bottom, b.z_bottom)
    shorter = min(a.z_top - a.z_bottom, b.z_top - b.z_bottom)
    return shorter > 0 and shared >= SAME_GEOMETRY_SHARE * shorter


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
