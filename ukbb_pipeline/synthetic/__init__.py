"""Synthetic UK Biobank bulk zips (DXA field 20158, Dixon MRI field 20201) from a phantom whose truth is known.

No real UK Biobank data is used. The zips follow ukbb-format.md: geometry, tags, names, manifest defects and the
known quirks (repeated, missing, swapped and mismatched stations, dropped slices, slab-edge loss, gains).
"""

from __future__ import annotations

from ukbb_pipeline.synthetic.cohort import SubjectTruth, make_cohort
from ukbb_pipeline.synthetic.dxa import DxaTruth, dxa_zip_name, write_dxa_zip
from ukbb_pipeline.synthetic.mri import mri_zip_name, write_mri_zip
from ukbb_pipeline.synthetic.mri_truth import MriTruth, StationTruth
from ukbb_pipeline.synthetic.phantom import Phantom
from ukbb_pipeline.synthetic.quirks import DxaQuirks, MriQuirks, mixed_quirks
from ukbb_pipeline.synthetic.stations import StationGeometry, station_geometries
from ukbb_pipeline.synthetic.truth import sample_truth

__all__ = [
    "DxaQuirks",
    "DxaTruth",
    "MriQuirks",
    "MriTruth",
    "Phantom",
    "StationGeometry",
    "StationTruth",
    "SubjectTruth",
    "dxa_zip_name",
    "make_cohort",
    "mixed_quirks",
    "mri_zip_name",
    "sample_truth",
    "station_geometries",
    "write_dxa_zip",
    "write_mri_zip",
]
