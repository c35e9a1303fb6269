"""The dozen DICOM tags a Dixon slice needs, read straight from pydicom's raw elements.

pydicom converts a value the first time it is accessed, and that conversion costs as much as parsing the whole file
(the Siemens CSA blobs are only skipped over); decoding the raw bytes of the few tags needed is ten times cheaper.
The channel comes from the slice's own SeriesDescription suffix (``_in``, ``_opp``, ``_F``, ``_W``), else its
ImageType values (FAT, WATER, IN_PHASE, OPP_PHASE), else, for a magnitude echo of a Dixon series whose two echoes
share one series, its echo: EchoNumbers (a two-point Dixon's echo 1 is the opposed-phase one, echo 2 in phase), or
without EchoNumbers the phase of fat against water at its EchoTime and field (in phase at whole cycles, opposed at
half cycles). Phase, real and imaginary images (Philips stores them in the magnitude's series) are not channels.
The geometry comes from ImagePositionPatient, ImageOrientationPatient and PixelSpacing.
docs/reference/real-headers.md lists what real headers vary in.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom.uid
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from ukbb_pipeline.dicomio import dicom
from ukbb_pipeline.dicomio.walk import Elements
from ukbb_pipeline.dicomio.zipread import _label
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.ukbb import DIXON_CHANNELS

Parsed = Dataset | Elements  # pydicom's data set, or the raw elements of the fast walk (``dicomio.walk``)
CHANNELS = DIXON_CHANNELS  # the Dixon channels, named by their SeriesDescription suffix
_SUFFIXES = {"f": "F", "w": "W", "in": "in", "opp": "opp"}
_IMAGE_TYPES = {"FAT": "F", "WATER": "W", "IN_PHASE": "in", "OPP_PHASE": "opp", "OUT_PHASE": "opp"}

_SERIES_DESCRIPTION = Tag(0x0008, 0x103E)
CHANNEL_TAGS_END = 0x0008103E  # the last tag the channel decision reads (ImageType, 0008,0008, comes before it)
ECHO_TAGS_END = 0x00180087  # ... and when the echo decides: EchoTime, ImagingFrequency, EchoNumbers, field strength
_SOP_CLASS = Tag(0x0008, 0x0016)
_ECHO_TIME = Tag(0x0018, 0x0081)
_IMAGING_FREQUENCY = Tag(0x0018, 0x0084)
_ECHO_NUMBERS = Tag(0x0018, 0x0086)
_FIELD_STRENGTH = Tag(0x0018, 0x0087)
_PATIENT_POSITION = Tag(0x0018, 0x5100)
_NUMBER_OF_FRAMES = Tag(0x0028, 0x0008)
NOT_MAGNITUDE = {"P", "PHASE", "PHASE MAP", "R", "REAL", "I", "IMAGINARY"}  # ImageType values of other images
FAT_SHIFT_PPM = 3.4  # the main fat peak's chemical shift from water
PROTON_MHZ_PER_T = 42.577
ECHO_PHASE_MARGIN = 0.2  # cycles from whole (in phase) or half (opposed) within which the phase decides
# Multi-frame MR storage (Siemens XA writes one such file per series): geometry lives in functional groups
MULTI_FRAME_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.3": "Enhanced MR Color Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image Storage",
}
_SERIES_NUMBER = Tag(0x0020, 0x0011)
_SERIES_UID = Tag(0x0020, 0x000E)
_SERIES_DATE = Tag(0x0008, 0x0021)
_SERIES_TIME = Tag(0x0008, 0x0031)
_ACQUISITION_DATE = Tag(0x0008, 0x0022)
_ACQUISITION_TIME = Tag(0x0008, 0x0032)
_IMAGE_TYPE = Tag(0x0008, 0x0008)
_INSTANCE_NUMBER = Tag(0x0020, 0x0013)
_ACQUISITION_NUMBER = Tag(0x0020, 0x0012)
_POSITION = Tag(0x0020, 0x0032)
_ORIENTATION = Tag(0x0020, 0x0037)
_PIXEL_SPACING = Tag(0x0028, 0x0030)
_ROWS = Tag(0x0028, 0x0010)
_COLUMNS = Tag(0x0028, 0x0011)
_RESCALE_INTERCEPT = Tag(0x0028, 0x1052)
_RESCALE_SLOPE = Tag(0x0028, 0x1053)
_BITS_ALLOCATED = Tag(0x0028, 0x0100)
_PIXEL_REPRESENTATION = Tag(0x0028, 0x0103)
_SAMPLES_PER_PIXEL = Tag(0x0028, 0x0002)
_PIXEL_DATA = Tag(0x7FE0, 0x0010)
# Little-endian syntaxes whose pixel data pydicom hands over as plain bytes (deflate is undone when parsing).
_NATIVE_LITTLE_ENDIAN = {
    pydicom.uid.ExplicitVRLittleEndian,
    pydicom.uid.ImplicitVRLittleEndian,
    pydicom.uid.DeflatedExplicitVRLittleEndian,
}


@dataclass(frozen=True)
class SliceHeader:
    """What one slice says about itself: its channel, its series, and where its pixels lie."""

    name: str  # the zip member, for messages
    channel: str | None  # F, W, in, opp; None when the slice is not a Dixon image
    series_uid: str
    series_number: int | None
    description: str
    acquired: str  # SeriesDate + SeriesTime, sortable as text ("" when absent)
    position: tuple[float, float, float]  # ImagePositionPatient, LPS mm of the first pixel's centre
    orientation: tuple[float, float, float, float, float, float]  # row direction, then column direction
    spacing: tuple[float, float]  # PixelSpacing: between rows, between columns (mm)
    rows: int
    columns: int
    instance: int | None
    rescale: tuple[float, float] | None = None  # (slope, intercept) when the file has a non-identity rescale
    image_type: str = ""  # ImageType, backslash-separated (for telling standard from derived series)
    acquisition_number: int | None = None  # AcquisitionNumber
    acquisition_time: str = ""  # AcquisitionDate + AcquisitionTime, sortable ("" when absent)
    patient_position: str = ""  # PatientPosition (HFS, FFS, ...)


@dataclass(frozen=True)
class Echo:
    """What tells the two echoes of a Dixon series apart: EchoTime (ms), the imaging frequency (MHz), EchoNumbers."""

    time_ms: float | None = None
    frequency_mhz: float | None = None
    number: int | None = None


def channel_of(description: str, image_type: str = "", echo: Echo | None = None) -> str | None:
    """The Dixon channel of a slice: the last ``_`` token of its SeriesDescription, else its ImageType values, else
    (an original image of a Dixon series) its echo; None when nothing says, and for phase, real or imaginary
    images whatever their description."""
    tokens = {token.strip().upper() for token in image_type.split("\\")}
    if tokens & NOT_MAGNITUDE:
        return None
    suffix = description.strip().rsplit("_", 1)[-1].strip().lower() if "_" in description else ""
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    found = {channel for token, channel in _IMAGE_TYPES.items() if token in tokens}
    if found:
        return found.pop() if len(found) == 1 else None
    dixon = "DIXON" in tokens or "dixon" in description.lower()
    if echo is None or not dixon or "DERIVED" in tokens:  # F and W are derived: their echo says nothing
        return None
    return echo_channel(echo)


def echo_channel(echo: Echo) -> str | None:
    """``in`` or ``opp`` for an echo of a two-point Dixon: EchoNumbers 1 opposed, 2 in phase; without EchoNumbers,
    fat and water in phase at whole cycles of their frequency difference, opposed at half cycles; else None."""
    if echo.number is not None:
        return {1: "opp", 2: "in"}.get(echo.number)
    if echo.time_ms and echo.frequency_mhz:
        cycles = echo.time_ms * 1e-3 * FAT_SHIFT_PPM * echo.frequency_mhz  # ms x (ppm x MHz = Hz)
        phase = cycles % 1.0
        if min(phase, 1.0 - phase) <= ECHO_PHASE_MARGIN:
            return "in"
        if abs(phase - 0.5) <= ECHO_PHASE_MARGIN:
            return "opp"
    return None


def _echo(dataset: Parsed) -> Echo | None:
    """The echo of a slice, or None when its header holds none of the echo tags (not read that far)."""
    time, frequency, number = _numbers(dataset, _ECHO_TIME), _numbers(dataset, _IMAGING_FREQUENCY), _integer(
        dataset, _ECHO_NUMBERS)
    if not frequency:
        field = _numbers(dataset, _FIELD_STRENGTH)
        frequency = [field[0] * PROTON_MHZ_PER_T] if field else []
    if not time and not frequency and number is None:
        return None
    return Echo(time[0] if time else None, frequency[0] if frequency else None, number)


def needs_echo(dataset: Parsed) -> bool:
    """Whether a slice whose description and ImageType name no channel may be an echo of a Dixon series (its
    echo tags, after :data:`CHANNEL_TAGS_END`, then decide)."""
    description, image_type = _text(dataset, _SERIES_DESCRIPTION), _text(dataset, _IMAGE_TYPE)
    return channel_of(description, image_type) is None and _may_be_echo(description, image_type)


def _may_be_echo(description: str, image_type: str) -> bool:
    tokens = {token.strip() for token in image_type.upper().split("\\")}
    if "DERIVED" in tokens or tokens & NOT_MAGNITUDE:
        return False
    return "dixon" in description.lower() or "DIXON" in tokens


def other_image(dataset: Parsed) -> bool:
    """Whether a slice's ImageType marks an image that is no Dixon channel: phase, real or imaginary."""
    return bool({token.strip() for token in _text(dataset, _IMAGE_TYPE).upper().split("\\")} & NOT_MAGNITUDE)


def slice_channel(dataset: Parsed) -> tuple[str | None, str]:
    """(channel, SeriesDescription) of a parsed slice, or of its header's start up to the SeriesDescription
    (:data:`CHANNEL_TAGS_END`), or up to the echo tags (:data:`ECHO_TAGS_END`) when :func:`needs_echo`."""
    description, image_type = _text(dataset, _SERIES_DESCRIPTION), _text(dataset, _IMAGE_TYPE)
    channel = channel_of(description, image_type)
    if channel is None and _may_be_echo(description, image_type):  # the echo tags are read only then
        channel = channel_of(description, image_type, _echo(dataset))
    return channel, description


def multi_frame(dataset: Parsed) -> str | None:
    """What makes a member a multi-frame image (its SOP class, or NumberOfFrames > 1), None for a single frame."""
    sop_class = _text(dataset, _SOP_CLASS)
    if sop_class in MULTI_FRAME_CLASSES:
        return MULTI_FRAME_CLASSES[sop_class]
    frames = _integer(dataset, _NUMBER_OF_FRAMES)
    return f"{frames} frames" if frames is not None and frames > 1 else None


def refuse_multi_frame(dataset: Parsed, *, name: str) -> None:
    """:class:`InputError` for a multi-frame member: its geometry is per frame, in functional groups, not read."""
    what = multi_frame(dataset)
    if what is not None:
        raise InputError(f"member {_label(name)} is a multi-frame image ({what}): multi-frame images are not read")


def read_header(dataset: Parsed, *, name: str, wanted: Collection[str] = CHANNELS) -> SliceHeader:
    """The :class:`SliceHeader` of a parsed slice; :class:`InputError` naming the member when geometry is missing.

    Slices of a channel not ``wanted`` (and non-Dixon slices) get their channel and series only. A multi-frame image
    is refused (:func:`refuse_multi_frame`).
    """
    refuse_multi_frame(dataset, name=name)
    channel, description = slice_channel(dataset)
    if channel is None or channel not in wanted:  # its geometry does not matter
        return SliceHeader(name, channel, _text(dataset, _SERIES_UID), _integer(dataset, _SERIES_NUMBER), description,
                           "", (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), (1.0, 1.0), 0, 0, None, None,
                           _text(dataset, _IMAGE_TYPE))
    position = _numbers(dataset, _POSITION)
    orientation = _numbers(dataset, _ORIENTATION)
    spacing = _numbers(dataset, _PIXEL_SPACING)
    rows, columns = _unsigned(dataset, _ROWS), _unsigned(dataset, _COLUMNS)
    if len(position) != 3 or len(orientation) != 6 or len(spacing) != 2:
        raise InputError(
            f"member {_label(name)} lacks ImagePositionPatient, ImageOrientationPatient or PixelSpacing"
        )
    if not all(map(math.isfinite, (*position, *orientation, *spacing))) or min(spacing) <= 0:
        raise InputError(f"member {_label(name)} has non-finite or non-positive geometry values")
    if not rows or not columns:
        raise InputError(f"member {_label(name)} lacks Rows/Columns")
    slope, intercept = _numbers(dataset, _RESCALE_SLOPE), _numbers(dataset, _RESCALE_INTERCEPT)
    rescale = None
    if (slope and slope[0] != 1.0) or (intercept and intercept[0] != 0.0):
        rescale = (slope[0] if slope else 1.0, intercept[0] if intercept else 0.0)
    series_uid = _text(dataset, _SERIES_UID)
    series_number = _integer(dataset, _SERIES_NUMBER)
    return SliceHeader(
        name=name,
        channel=channel,
        series_uid=series_uid or f"number {series_number} {description}",
        series_number=series_number,
        description=description,
        acquired=_acquired(dataset),
        position=(position[0], position[1], position[2]),
        orientation=tuple(orientation),  # type: ignore[arg-type]
        spacing=(spacing[0], spacing[1]),
        rows=rows,
        columns=columns,
        instance=_integer(dataset, _INSTANCE_NUMBER),
        rescale=rescale,
        image_type=_text(dataset, _IMAGE_TYPE),
        acquisition_number=_integer(dataset, _ACQUISITION_NUMBER),
        acquisition_time=_date_time(dataset, _ACQUISITION_DATE, _ACQUISITION_TIME),
        patient_position=_text(dataset, _PATIENT_POSITION).upper(),
    )


def _date_time(dataset: Parsed, date_tag: Any, time_tag: Any) -> str:
    """A date and time as sortable text (8 date characters, then seconds since midnight); "" without a time."""
    time = _text(dataset, time_tag)
    return f"{_text(dataset, date_tag):>8}{_seconds(time):012.6f}" if time else ""


def _acquired(dataset: Parsed) -> str:
    """When the series was acquired, as sortable text: SeriesDate/SeriesTime, else AcquisitionDate/Time."""
    return (_date_time(dataset, _SERIES_DATE, _SERIES_TIME)
            or _date_time(dataset, _ACQUISITION_DATE, _ACQUISITION_TIME))


def _seconds(time: str) -> float:
    """Seconds since midnight of a DICOM TM value (HHMMSS.FFFFFF, HH:MM:SS in old files); 0 if unreadable."""
    digits = time.replace(":", "").strip()
    whole, _, fraction = digits.partition(".")
    try:
        hours, minutes, seconds = int(whole[0:2] or 0), int(whole[2:4] or 0), int(whole[4:6] or 0)
        return hours * 3600 + minutes * 60 + seconds + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)
    except ValueError:
        return 0.0


def _value(dataset: Parsed, tag: Any) -> tuple[Any, bool]:
    """The value of ``tag``: (raw bytes, little endian) when not yet converted, else (converted value, True)."""
    element = dataset.get_item(tag)
    if element is None:
        return None, True
    if getattr(element, "is_raw", False):
        return element.value, element.is_little_endian
    return element.value, True


def _text(dataset: Parsed, tag: Any) -> str:
    value, _ = _value(dataset, tag)
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(item) for item in value)
    return str(value).strip()


def _numbers(dataset: Parsed, tag: Any) -> list[float]:
    """A decimal-string (DS) value as floats; [] when absent or unreadable."""
    value, _ = _value(dataset, tag)
    if value is None:
        return []
    try:
        if isinstance(value, bytes):
            text = value.decode("latin-1").strip(" \x00")
            return [float(part) for part in text.split("\\")] if text else []
        if isinstance(value, (int, float)):
            return [float(value)]
        return [float(item) for item in value]
    except (TypeError, ValueError):
        return []


def _integer(dataset: Parsed, tag: Any) -> int | None:
    """An integer-string (IS) value; None when absent or unreadable."""
    numbers = _numbers(dataset, tag)
    return int(numbers[0]) if numbers and numbers[0].is_integer() else None


def _unsigned(dataset: Parsed, tag: Any) -> int:
    """A binary US value (Rows, Columns); 0 when absent."""
    value, little = _value(dataset, tag)
    if value is None:
        return 0
    if isinstance(value, bytes):
        return int.from_bytes(value[:2], "little" if little else "big") if len(value) >= 2 else 0
    return int(value)


def has_native_pixels(dataset: Parsed) -> bool:
    """Whether :func:`slice_pixels` views the pixels straight from the bytes (else pydicom's decoders are needed)."""
    syntax = dataset.file_meta.TransferSyntaxUID if isinstance(dataset, Elements) else dicom.transfer_syntax(dataset)
    if syntax not in _NATIVE_LITTLE_ENDIAN:
        return False
    raw, _ = _value(dataset, _PIXEL_DATA)
    bits, samples = _unsigned(dataset, _BITS_ALLOCATED), _unsigned(dataset, _SAMPLES_PER_PIXEL) or 1
    return bits in (8, 16, 32) and samples == 1 and isinstance(raw, bytes)


def slice_pixels(dataset: Parsed, header: SliceHeader) -> np.ndarray:
    """The (Rows, Columns) image of a slice: a view on its bytes when uncompressed, else pydicom's decoders."""
    if has_native_pixels(dataset):
        bits = _unsigned(dataset, _BITS_ALLOCATED)
        raw, _ = _value(dataset, _PIXEL_DATA)
        signed = _unsigned(dataset, _PIXEL_REPRESENTATION) == 1
        dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
        count = header.rows * header.columns
        if len(raw) < count * dtype.itemsize:
            raise InputError(
                f"member {_label(header.name)} has {len(raw)} bytes of pixel data, {count * dtype.itemsize} expected"
            )
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(header.rows, header.columns)
    assert isinstance(dataset, Dataset), "a walked member without native pixels is parsed by pydicom"
    return dicom.pixels(dataset, name=header.name)
