"""Choosing the whole-body DXA images of a GE Lunar iDXA exam and their pixel spacing.

A UK Biobank DXA zip (field 20158) holds one image per acquired region. The two whose ProtocolName is ``Total Body``
are the soft-tissue and the bone image: by InstanceNumber, the first is tissue and the second bone. The files carry
no PixelSpacing; the spacing follows from ExposedArea (width, height in mm) over Columns and Rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from ukbb_pipeline.errors import InputError

TOTAL_BODY = "total body"
# Every tag this module reads (for dicom.check_values).
TAGS_READ = (
    "ProtocolName", "PerformedProcedureStepDescription", "InstanceNumber", "AcquisitionDateTime", "AcquisitionDate",
    "AcquisitionTime", "ContentDate", "ContentTime", "SeriesDate", "SeriesTime", "ExposedArea", "ImagerPixelSpacing",
    "PixelSpacing",
)


@dataclass(frozen=True)
class TotalBodyPair:
    tissue: Dataset
    bone: Dataset
    n_total_body: int  # how many Total Body images the exam had (2 normally)


def is_total_body(dataset: Dataset) -> bool:
    """Whether ``dataset`` is a Total Body image (ProtocolName, or the performed-procedure description)."""
    names = (dataset.get("ProtocolName", ""), dataset.get("PerformedProcedureStepDescription", ""))
    return any(str(name).strip().lower() == TOTAL_BODY for name in names)


def acquired_at(dataset: Dataset) -> str:
    """A sortable acquisition time stamp (``YYYYMMDDhhmmss...``), empty when the file has none."""
    if dataset.get("AcquisitionDateTime"):
        return str(dataset.AcquisitionDateTime)
    for date_tag, time_tag in (
        ("AcquisitionDate", "AcquisitionTime"),
        ("ContentDate", "ContentTime"),
        ("SeriesDate", "SeriesTime"),
    ):
        if dataset.get(date_tag) or dataset.get(time_tag):
            return f"{dataset.get(date_tag, '')}{dataset.get(time_tag, '')}"
    return ""


def select_total_body(datasets: Sequence[Dataset]) -> TotalBodyPair:
    """The tissue and bone images of the most recent Total Body acquisition.

    With more than two Total Body images (a repeated scan) the two most recent are taken (by acquisition time,
    then InstanceNumber), and ordered by InstanceNumber: tissue first, bone second.
    """
    candidates = [dataset for dataset in datasets if is_total_body(dataset)]
    if len(candidates) < 2:
        raise InputError(f"{len(candidates)} 'Total Body' image(s) in the zip, 2 needed (tissue and bone)")
    newest = sorted(candidates, key=lambda ds: (acquired_at(ds), instance_number(ds)))[-2:]
    tissue, bone = sorted(newest, key=instance_number)
    return TotalBodyPair(tissue=tissue, bone=bone, n_total_body=len(candidates))


def pixel_spacing(dataset: Dataset, *, shape: tuple[int, int]) -> tuple[float, float]:
    """(row, column) spacing in mm: ExposedArea[1]/Rows and ExposedArea[0]/Columns.

    Falls back to ImagerPixelSpacing or PixelSpacing, which UK Biobank's files lack but other exports may have.
    """
    area = _two_positive(dataset.get("ExposedArea"))
    if area is not None:
        return area[1] / shape[0], area[0] / shape[1]
    for tag in ("ImagerPixelSpacing", "PixelSpacing"):
        value = _two_positive(dataset.get(tag))
        if value is not None:
            return value
    raise InputError("Total Body image has no ExposedArea (0040,0303) or pixel spacing tag with two positive numbers")


def _two_positive(value: object) -> tuple[float, float] | None:
    """Two positive finite numbers from a DICOM value, or None (absent, malformed or damaged)."""
    try:
        numbers = [float(item) for item in value]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if len(numbers) != 2 or not all(math.isfinite(n) and n > 0 for n in numbers):
        return None
    return numbers[0], numbers[1]


def check_pair_shapes(tissue: np.ndarray, bone: np.ndarray) -> None:
    if tissue.shape != bone.shape:
        raise InputError(f"Total Body tissue {tissue.shape} and bone {bone.shape} images differ in size")


def instance_number(dataset: Dataset) -> int:
    try:
        return int(dataset.get("InstanceNumber", 0) or 0)
    except (TypeError, ValueError):
        return 0
