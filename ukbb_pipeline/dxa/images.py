"""The members of a GE Lunar iDXA export: which are greyscale images, and what each says about itself.

A UK Biobank DXA zip (field 20158) holds one CR image per acquired region (ukbb-format.md 3.1). Exports can also hold
report or screen-capture images (RGB), non-image objects (an encapsulated PDF, no PixelData) and another
participant's images (3.4). Only greyscale images (SamplesPerPixel 1, MONOCHROME1/2, 8 bits or more) can be the
soft-tissue or bone image; everything else is passed over with a note naming the member.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from ukbb_pipeline.dicomio import dicom
from ukbb_pipeline.dicomio.zipread import _label
from ukbb_pipeline.errors import InputError

TOTAL_BODY = "total body"
GREYSCALE = ("MONOCHROME1", "MONOCHROME2")
# Every tag this module reads (converted up front by dicom.check_values, so a damaged value names its member).
TAGS_READ = (
    "ProtocolName", "PerformedProcedureStepDescription", "InstanceNumber", "PatientID", "StudyInstanceUID",
    "SeriesInstanceUID", "SeriesNumber", "SOPClassUID", "PhotometricInterpretation", "BitsStored", "NumberOfFrames",
    "AcquisitionDate", "AcquisitionTime", "ExposedArea", "ImagerPixelSpacing", "PixelSpacing",
)


@dataclass(frozen=True)
class DxaImage:
    """One greyscale image member and the header values the exam's choice rests on."""

    name: str
    dataset: Dataset
    patient_id: str
    study_uid: str
    series_uid: str
    protocol: str
    instance_number: int | None
    rows: int
    columns: int
    photometric: str
    bits_stored: int
    exposed_area: tuple[float, float] | None  # (width, height) mm

    @property
    def is_total_body(self) -> bool:
        return is_total_body(self.dataset)

    @property
    def label(self) -> str:
        """``'<member>' (InstanceNumber 11, 791x272)``, for notes and reasons."""
        number = "no InstanceNumber" if self.instance_number is None else f"InstanceNumber {self.instance_number}"
        return f"{_label(self.name)} ({number}, {self.rows}x{self.columns})"


@dataclass(frozen=True)
class Passed:
    """A member that cannot be a tissue or bone image, and why (for the note)."""

    name: str
    why: str
    total_body: bool  # labelled Total Body: named again when the pair turns out incomplete


def is_total_body(dataset: Dataset) -> bool:
    """Whether ``dataset`` is labelled a Total Body scan (ProtocolName, or the performed-procedure description)."""
    names = (dataset.get("ProtocolName", ""), dataset.get("PerformedProcedureStepDescription", ""))
    return any(str(name).strip().lower() == TOTAL_BODY for name in names)


def classify(dataset: Dataset, *, name: str) -> DxaImage | Passed:
    """A :class:`DxaImage` for a greyscale image of 8 bits or more, else :class:`Passed` with the reason.

    A member without pixel data passes over only when it says what it is (a SOP class): one that does not is a
    damaged file, and an :class:`InputError` naming it.
    """
    total_body = is_total_body(dataset)
    if not dicom.has_pixels(dataset):
        kind = dicom.sop_class_name(dataset)
        if not kind:
            raise InputError(f"member {_label(name)} has no pixel data and no SOP class: a damaged DICOM file")
        return Passed(name, f"no pixel data ({kind})", total_body)
    samples = _integer(dataset.get("SamplesPerPixel"), default=1) or 1
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2").strip().upper()
    if samples != 1 or photometric not in GREYSCALE:
        return Passed(name, f"not a greyscale image ({photometric}, {samples} samples per pixel: a report or "
                            "screen capture)", total_body)
    bits = _integer(dataset.get("BitsAllocated"), default=0) or 0
    stored = _integer(dataset.get("BitsStored"), default=bits) or 0
    if stored < 8 or stored > bits:
        return Passed(name, f"not an image of 8 bits or more (BitsStored {stored}, BitsAllocated {bits})", total_body)
    frames = _integer(dataset.get("NumberOfFrames"), default=1) or 1
    if frames != 1:
        return Passed(name, f"{frames} frames, not a single image", total_body)
    return DxaImage(
        name=name,
        dataset=dataset,
        patient_id=str(dataset.get("PatientID", "") or "").strip(),
        study_uid=str(dataset.get("StudyInstanceUID", "") or "").strip(),
        series_uid=str(dataset.get("SeriesInstanceUID", "") or "").strip(),
        protocol=str(dataset.get("ProtocolName", "") or "").strip(),
        instance_number=_integer(dataset.get("InstanceNumber"), default=None),
        rows=_integer(dataset.get("Rows"), default=0) or 0,
        columns=_integer(dataset.get("Columns"), default=0) or 0,
        photometric=photometric,
        bits_stored=stored,
        exposed_area=two_positive(dataset.get("ExposedArea")),
    )


def to_monochrome2(image: np.ndarray, *, photometric: str, bits_stored: int) -> np.ndarray:
    """The image in MONOCHROME2 sense (0 = no attenuation, black), in its stored dtype.

    MONOCHROME1 stores the inverse: value = (2^BitsStored - 1) - MONOCHROME2 value (DESIGN.md); bits above BitsStored
    carry no image and are masked first. MONOCHROME2 is returned as stored.
    """
    if photometric != "MONOCHROME1":
        return image
    top = (1 << bits_stored) - 1
    return (top - (image & image.dtype.type(top))).astype(image.dtype)


def two_positive(value: Any) -> tuple[float, float] | None:
    """Two positive finite numbers from a DICOM value, or None (absent, malformed or damaged)."""
    try:
        numbers = [float(item) for item in value]
    except (TypeError, ValueError):
        return None
    if len(numbers) != 2 or not all(math.isfinite(n) and n > 0 for n in numbers):
        return None
    return numbers[0], numbers[1]


def acquired_at(dataset: Dataset) -> str:
    """AcquisitionDate + AcquisitionTime, for the record only: time never chooses the pair (the Total Body images are
    timed at the study's start, before the regional scans, ukbb-format.md 3.4)."""
    return f"{dataset.get('AcquisitionDate', '') or ''}{dataset.get('AcquisitionTime', '') or ''}"


def _integer(value: Any, *, default: int | None) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
