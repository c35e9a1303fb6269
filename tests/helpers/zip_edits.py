"""Damaging a valid synthetic zip the ways real downloads and exports go wrong, one member or one tag at a time.

The synthetic generator writes clean zips with a few catalogued quirks; the fault tests start from one of those and
change what they need: a member that is not DICOM, a slice without pixel data, a compressed transfer syntax, a slice
moved onto its neighbour's position, a changed PixelSpacing, hostile member names.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless


def read_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def write_members(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def parse(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def encode(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class Slice:
    """Where a member sits: its series and instance numbers."""

    name: str
    series: int
    instance: int


def index_slices(members: dict[str, bytes]) -> list[Slice]:
    """The ``.dcm`` members with their SeriesNumber and InstanceNumber (headers only), by series then instance."""
    slices = []
    for name, data in members.items():
        if name.endswith(".dcm"):
            header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True,
                                     specific_tags=["SeriesNumber", "InstanceNumber"])
            slices.append(Slice(name, int(header.SeriesNumber), int(header.InstanceNumber)))
    return sorted(slices, key=lambda s: (s.series, s.instance))


def in_series(slices: list[Slice], number: int) -> list[Slice]:
    return [s for s in slices if s.series == number]


def edit(members: dict[str, bytes], names: list[str], change: Callable[[Dataset], None]) -> dict[str, bytes]:
    """A copy of ``members`` with ``change`` applied to the DICOM members ``names``."""
    edited = dict(members)
    for name in names:
        dataset = parse(members[name])
        change(dataset)
        edited[name] = encode(dataset)
    return edited


def drop_pixel_data(dataset: Dataset) -> None:
    del dataset.PixelData


def as_jpeg_ls_without_decoder(dataset: Dataset) -> None:
    """JPEG-LS encapsulated pixel data: no decoder for it is installed here (it needs pylibjpeg-libjpeg or GDCM),
    and the codestream is a stub, so with a decoder it still cannot decode."""
    dataset.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + bytes(64) + b"\xff\xd9"])
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = JPEGLSLossless


def as_jpeg2000(dataset: Dataset) -> None:
    """The same pixels as lossless JPEG 2000 (encoded with Pillow, decoded by pydicom's Pillow plugin)."""
    from PIL import Image

    pixels = dataset.pixel_array
    image = Image.fromarray(pixels.astype(np.uint16 if pixels.dtype.itemsize > 1 else np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG2000", irreversible=False, no_jp2=True)
    dataset.PixelData = encapsulate([buffer.getvalue()])
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = JPEG2000Lossless


def pillow_encodes_jpeg2000() -> bool:
    from PIL import features

    return bool(features.check_codec("jpg_2000"))
