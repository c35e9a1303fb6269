"""Parsing DICOM members from memory, and taking their pixels fast.

A member that does not parse is an :class:`InputError` naming it: in a UK Biobank zip it means a damaged download to
fetch again, not a slice to skip. Whether a DICOM without pixel data (a report, an encapsulated PDF) fails the zip or
is passed over is the caller's decision (``require_pixels``). Uncompressed pixel data is viewed straight from the bytes
(no copy, no decoder); compressed transfer syntaxes go through pydicom's decoders, with a clear reason when none is
installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from ukbb_pipeline.dicomio.zipread import Member, _label
from ukbb_pipeline.errors import InputError

_UNCOMPRESSED = {
    pydicom.uid.ImplicitVRLittleEndian,
    pydicom.uid.ExplicitVRLittleEndian,
    pydicom.uid.ExplicitVRBigEndian,
}


def parse(
    member: Member, *, specific_tags: Sequence[str] | None = None, require_pixels: bool = True
) -> Dataset:
    """Parse a Part-10 DICOM member (preamble + ``DICM``); raise :class:`InputError` naming it when it does not.

    With ``require_pixels`` (the default) a DICOM without PixelData is an :class:`InputError` too; without it the
    dataset is returned and the caller decides (see :func:`has_pixels`).
    """
    tags = None if specific_tags is None else list(specific_tags)
    try:
        dataset = pydicom.dcmread(BytesIO(member.data), specific_tags=tags)
    except InvalidDicomError:
        raise InputError(f"member {_label(member.name)} is not a DICOM file") from None
    except Exception as error:  # pydicom raises many types on damaged headers
        raise InputError(f"member {_label(member.name)} has a damaged DICOM header ({type(error).__name__})") from None
    if require_pixels and not has_pixels(dataset) and (specific_tags is None or "PixelData" in specific_tags):
        raise InputError(f"member {_label(member.name)} has no pixel data")
    return dataset


def has_pixels(dataset: Dataset) -> bool:
    """Whether ``dataset`` holds a PixelData element (an empty one counts: it is a damaged image, not a report)."""
    return "PixelData" in dataset


def sop_class_name(dataset: Dataset) -> str:
    """The name of the object's SOP class (e.g. ``Encapsulated PDF Storage``), its UID when unnamed, "" when absent."""
    uid = dataset.get("SOPClassUID") or getattr(getattr(dataset, "file_meta", None), "MediaStorageSOPClassUID", None)
    if not uid:
        return ""
    name = UID(str(uid)).name
    return name if name != str(uid) else f"SOP class {uid}"


def check_values(dataset: Dataset, keywords: Sequence[str], *, name: str) -> None:
    """Convert the values of ``keywords`` now, so that one damaged past the header's structure fails naming the member.

    pydicom converts a value on first access, and a damaged one (an unknown VR, say) raises whatever type it likes.
    """
    try:
        for keyword in keywords:
            dataset.get(keyword)
    except Exception as error:
        raise InputError(f"member {_label(name)} has a damaged DICOM header ({type(error).__name__})") from None


PIXEL_TAGS = ("Rows", "Columns", "BitsAllocated", "PixelRepresentation", "SamplesPerPixel", "PixelData")


def transfer_syntax(dataset: Dataset) -> UID:
    meta = getattr(dataset, "file_meta", None)
    uid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return UID(uid) if uid else pydicom.uid.ImplicitVRLittleEndian


def pixels(dataset: Dataset, *, name: str) -> np.ndarray:
    """The single-frame image of ``dataset`` as a (Rows, Columns) array of its stored integer type."""
    try:
        rows, columns = int(dataset.Rows), int(dataset.Columns)
        bits = int(dataset.BitsAllocated)
        signed = int(getattr(dataset, "PixelRepresentation", 0)) == 1
        samples = int(getattr(dataset, "SamplesPerPixel", 1))
    except Exception:  # absent, or damaged so that pydicom cannot convert the value
        raise InputError(f"member {_label(name)} lacks readable Rows/Columns/BitsAllocated") from None
    if samples != 1 or bits not in (8, 16, 32):
        raise InputError(f"member {_label(name)} is not a greyscale 8/16/32-bit image")
    syntax = transfer_syntax(dataset)
    if syntax in _UNCOMPRESSED:
        order = ">" if syntax == pydicom.uid.ExplicitVRBigEndian else "<"
        dtype = np.dtype(f"{order}{'i' if signed else 'u'}{bits // 8}")
        try:
            raw = dataset.PixelData or b""  # None when the element is empty
        except Exception as error:  # pydicom converts the element lazily: a damaged header shows up here
            raise InputError(f"member {_label(name)} has damaged pixel data ({type(error).__name__})") from None
        if not isinstance(raw, bytes):  # a damaged VR turned it into text or numbers
            raise InputError(f"member {_label(name)} has damaged pixel data")
        expected = rows * columns * dtype.itemsize
        if len(raw) < expected:
            raise InputError(f"member {_label(name)} has {len(raw)} bytes of pixel data, {expected} expected")
        image = np.frombuffer(raw, dtype=dtype, count=rows * columns).reshape(rows, columns)
        return image.astype(dtype.newbyteorder("="), copy=False)
    try:
        image = dataset.pixel_array
    except Exception as error:  # pydicom's message lists the missing plugins over several lines: keep one
        detail = " ".join(str(error).split())[:300]
        raise InputError(
            f"member {_label(name)}: cannot decode transfer syntax {syntax.name} ({type(error).__name__}: {detail})"
        ) from None
    if image.shape != (rows, columns):
        raise InputError(f"member {_label(name)} is not a single-frame {rows}x{columns} image")
    return image
