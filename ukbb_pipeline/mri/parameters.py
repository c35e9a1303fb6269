"""How stations are stitched: the one dataclass of the stitching options, whose defaults are the pipeline's.

``unzip_mri``'s schema (:class:`ukbb_pipeline.config.UnzipMriConfig`) takes its defaults from here and its range checks
live in the config's validation; :func:`ukbb_pipeline.mri.assemble.stitch_stations` takes one of these.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StitchParameters:
    """The options that change a stitched volume (all of them part of its settings fingerprint)."""

    z_spacing: float | None = None  # mm; None = the in-plane pixel spacing
    trim_slices: int = 2  # noisy slab-edge slices dropped at each overlapped station end
    max_trim_slices: int = 6  # up to this many further edge slices dropped where their signal falls; 0: never
    edge_drop: float = 0.15  # an edge slice is noisy when its level is this fraction below the station's inside
    feather_mm: float = 24.0  # width of the smooth blend centred in each overlap (the whole overlap if narrower)
    harmonise: bool = True  # scale stations to match their neighbours' intensity in the overlaps
    fix_swaps: bool = False  # swap fat and water back in stations found swapped (else only flagged)
    dtype: str = "uint16"  # of the output arrays: uint16 (as stored) or float32
