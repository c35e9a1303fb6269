"""What unzip_mri found worth a look in a subject's MRI, as it travels with the slab, and which of it leaves a pair out.

Carried as slab attributes (``swapped_stations``, ``fat_water_fixed``, ``max_seam_mismatch``; see extract_slices).
A pair is left out of a collection by default when a fat/water swap was detected and not fixed, or when a seam's
mismatch is above the limit: both put wrong intensities in the training images. The words are those of
:mod:`ukbb_pipeline.flags`, as in the status, the report and the contact sheets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ukbb_pipeline.flags import seam_flag, swap_flag


@dataclass(frozen=True)
class UpstreamFlags:
    swapped_stations: tuple[int, ...] = ()
    swap_fixed: bool = False
    max_seam_mismatch: float = math.nan  # NaN: not recorded

    def problems(self, *, seam_mismatch_limit: float | None) -> list[str]:
        """Why the pair should be left out (empty: keep it): an unfixed swap, a seam mismatch above the limit."""
        problems = []
        if self.swapped_stations and not self.swap_fixed:
            problems.append(swap_flag(self.swapped_stations, fixed=False))
        seam = seam_flag(self.max_seam_mismatch, limit=seam_mismatch_limit)
        return [*problems, seam] if seam else problems

    def describe(self, *, seam_mismatch_limit: float | None) -> str:
        """Every flag in one line (a fixed swap too), empty when there is none."""
        parts = self.problems(seam_mismatch_limit=seam_mismatch_limit)
        if self.swapped_stations and self.swap_fixed:
            parts.insert(0, swap_flag(self.swapped_stations, fixed=True))
        return "; ".join(parts)


def flags_from_attrs(attrs: Mapping[str, Any]) -> UpstreamFlags:
    """The flags a slab's (or volume's) attributes record; absent ones read as "nothing found"."""
    swapped = tuple(int(value) for value in np.asarray(attrs.get("swapped_stations", []), dtype=float).ravel())
    mismatch = attrs.get("max_seam_mismatch")
    if mismatch is None:  # a volume: its per-seam mismatches
        values = [float(v) for key, array in attrs.items() if key.startswith("seam_mismatch_")
                  for v in np.asarray(array, dtype=float).ravel() if math.isfinite(float(v))]
        mismatch = max(values) if values else math.nan
    return UpstreamFlags(swapped_stations=swapped, swap_fixed=bool(attrs.get("fat_water_fixed", False)),
                         max_seam_mismatch=float(mismatch))


def flag_attrs(flags: UpstreamFlags) -> dict[str, Any]:
    """The attributes a slab carries for its flags."""
    return {"swapped_stations": list(flags.swapped_stations), "fat_water_fixed": flags.swap_fixed,
            "max_seam_mismatch": flags.max_seam_mismatch}
