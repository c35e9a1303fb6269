"""What a stitched exam tells about itself: its attributes, the QC figures of its manifest row, and its notes.

Plain values from :class:`~ukbb_pipeline.mri.assemble.Stitched` and the stations it was made of; the stage writes
them through whichever format it was given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ukbb_pipeline.mri.assemble import Stitched
from ukbb_pipeline.mri.stations import Station

ATTR_NAMES = {"F": "fat", "W": "water", "in": "in", "opp": "opp"}  # channel -> the name in per-channel attributes


def volume_attributes(stitched: Stitched, *, channels: Sequence[str]) -> dict[str, Any]:
    """The stitched volume's attributes: geometry, swaps, and per-station and per-seam QC figures."""
    grid = stitched.grid
    seams = stitched.seams
    attrs: dict[str, Any] = {
        "spacing": [float(value) for value in grid.spacing],
        "origin": [float(value) for value in grid.origin],
        "axes": "x: right->left, y: anterior->posterior, z: head->feet (LPS z decreasing)",
        "swapped_stations": list(stitched.swapped),
        "swapped_regions": list(stitched.regions),
        "fat_water_uncertain": bool(stitched.uncertain),
        "fat_water_fixed": bool(stitched.fixed),
        "stations": list(stitched.stations),
        "station_trimmed_slices": np.array([[t.top, t.bottom] for t in stitched.trims], dtype=np.int64),
        "station_fat_pattern": np.array(stitched.patterns, dtype=np.float64),
        "seam_stations": np.array([[s.upper, s.lower] for s in seams], dtype=np.int64).reshape(-1, 2),
        "seam_z_mm": np.array([s.z_mm for s in seams], dtype=np.float64),
        "seam_overlap_mm": np.array([s.overlap_mm for s in seams], dtype=np.float64),
        "seam_fat_water_agreement": np.array([s.agreement for s in seams], dtype=np.float64),
        "seam_fat_fraction_step": np.array([s.fat_fraction_step for s in seams], dtype=np.float64),
    }
    for channel in channels:
        name = ATTR_NAMES[channel]
        scales = stitched.scales[channel]
        index = {number: i for i, number in enumerate(stitched.stations)}
        attrs[f"station_scale_{name}"] = np.array(scales, dtype=np.float64)
        attrs[f"seam_scale_{name}"] = np.array(
            [scales[index[s.lower]] / scales[index[s.upper]] for s in seams], dtype=np.float64
        )
        attrs[f"seam_ratio_{name}"] = np.array([s.ratio.get(channel, math.nan) for s in seams], dtype=np.float64)
        attrs[f"seam_mismatch_{name}"] = np.array([s.mismatch.get(channel, math.nan) for s in seams], dtype=np.float64)
    return attrs


def qc_figures(stitched: Stitched, *, stations: Sequence[Station], shape: tuple[int, ...]) -> dict[str, Any]:
    """The figures a manifest row records about one stitched exam."""
    mismatches = [value for seam in stitched.seams for value in seam.mismatch.values() if not math.isnan(value)]
    agreements = [seam.agreement for seam in stitched.seams if not math.isnan(seam.agreement)]
    return {
        "n_stations": len(stitched.stations),
        "swapped_stations": list(stitched.swapped),
        "swapped_regions": "; ".join(stitched.regions),
        "fat_water_uncertain": bool(stitched.uncertain),
        "max_seam_mismatch": max(mismatches) if mismatches else math.nan,
        "min_fat_water_agreement": min(agreements) if agreements else math.nan,
        "missing_slices": sum(s.missing_slices for station in stations for s in station.channels.values()),
        "shape": "x".join(map(str, shape)),
    }


def slice_notes(stations: Sequence[Station]) -> list[str]:
    """One note per station about the slices its chosen series lacked or repeated."""
    notes = []
    for station in stations:
        missing = {s.number: s.missing_slices for s in station.channels.values() if s.missing_slices}
        if missing:
            count = max(missing.values())
            notes.append(f"station {station.number}: {count} missing slice(s) bridged from the real slice positions "
                         f"(series {'/'.join(map(str, sorted(k for k in missing if k is not None)))})")
        for series in station.channels.values():
            notes.extend(note for note in series.notes if "duplicate" in note)
    return notes


def swap_notes(stitched: Stitched) -> list[str]:
    """The note about the swaps found (say "swap"), and what was done about them."""
    if not stitched.swapped:
        return []
    stations = ", ".join(map(str, stitched.swapped))
    action = "swapped back before stitching" if stitched.fixed else "left as acquired (stage.fix_swaps=true fixes it)"
    return [f"fat and water swapped in station {stations} ({', '.join(stitched.regions)}): {action}"]
