"""The fast header walk gives exactly pydicom's raw values, or None so that pydicom parses the member."""

from __future__ import annotations

import functools
import io
import tempfile
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from ukbb_pipeline.dicomio.walk import walk
from ukbb_pipeline.mri.header import CHANNEL_TAGS_END, slice_channel
from ukbb_pipeline.synthetic import MriQuirks, Phantom, write_mri_zip


@functools.cache
def _members(syntax: str) -> list[bytes]:
    """A few members of a small synthetic Dixon zip in ``syntax``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "1000001_20201_2_0.zip"
        write_mri_zip(path, eid=1000001, phantom=Phantom.random(0), quirks=MriQuirks(transfer_syntax=syntax))
        with zipfile.ZipFile(path) as archive:
            names = sorted(name for name in archive.namelist() if name.endswith(".dcm"))
            return [archive.read(name) for name in names[::40]]


def _assert_as_pydicom(data: bytes) -> None:
    elements = walk(data)
    assert elements is not None
    parsed = pydicom.dcmread(io.BytesIO(data))
    assert set(parsed._dict) == {int(tag) for tag in elements._found}
    for tag, element in parsed._dict.items():
        if getattr(element, "is_raw", False):  # pydicom converts SpecificCharacterSet while reading
            assert elements.get_item(tag) == element, f"{tag} differs"


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_every_raw_element_is_pydicoms_on_the_generators_slices(syntax):
    for data in _members(syntax):
        _assert_as_pydicom(data)
        head = walk(data[:4096], stop_after=CHANNEL_TAGS_END)
        assert head is not None
        assert slice_channel(head) == slice_channel(pydicom.dcmread(io.BytesIO(data)))


@pytest.mark.parametrize("syntax", [DeflatedExplicitVRLittleEndian, RLELossless])
def test_deflated_and_encapsulated_members_are_left_to_pydicom(syntax):
    for data in _members(syntax):
        assert walk(data) is None
        head = walk(data[:4096], stop_after=CHANNEL_TAGS_END)
        if syntax == RLELossless:  # its header is plain Explicit VR Little Endian
            assert head is not None
            assert slice_channel(head) == slice_channel(pydicom.dcmread(io.BytesIO(data)))
        else:
            assert head is None


def _file(dataset: Dataset, syntax: str = ExplicitVRLittleEndian) -> bytes:
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = syntax
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    dataset.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True, little_endian=syntax != ExplicitVRBigEndian,
                    implicit_vr=syntax == ImplicitVRLittleEndian)
    return buffer.getvalue()


def _dataset() -> Dataset:
    dataset = Dataset()
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "M", "DIXON", "WATER"]
    code = Dataset()
    code.CodeValue = "X"
    code.CodeMeaning = "y"
    dataset.ProcedureCodeSequence = Sequence([code, Dataset()])
    dataset.SeriesDescription = "Dixon_noBH_W"
    dataset.Rows, dataset.Columns, dataset.BitsAllocated, dataset.SamplesPerPixel = 2, 2, 16, 1
    dataset.PixelData = b"\x01\x00" * 4
    return dataset


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("undefined", [False, True])
def test_sequences_of_either_length_are_skipped_as_pydicom_does(syntax, undefined):
    dataset = _dataset()
    dataset["ProcedureCodeSequence"].is_undefined_length = undefined
    for item in dataset.ProcedureCodeSequence:
        item.is_undefined_length_sequence_item = undefined
    data = _file(dataset, syntax)
    _assert_as_pydicom(data)
    head = walk(data, stop_after=CHANNEL_TAGS_END)
    assert head is not None and slice_channel(head) == ("W", "Dixon_noBH_W")


def test_anything_unusual_is_left_to_pydicom():
    data = _file(_dataset())
    assert walk(data[:128] + b"DICX" + data[132:]) is None  # not DICM: pydicom says it is not DICOM
    assert walk(_file(_dataset(), ExplicitVRBigEndian)) is None
    at = data.index(b"Dixon_noBH_W") - 4  # the SeriesDescription's VR
    assert walk(data[:at] + b"ZQ" + data[at + 2 :]) is None  # an unknown VR
    assert walk(data[:-3]) is None  # pixel data cut short: pydicom reads it short, then the reader says so
    assert walk(data[: data.index(b"Dixon_noBH_W")], stop_after=CHANNEL_TAGS_END) is None  # header cut before it
    no_pixels = _dataset()
    del no_pixels.PixelData
    assert walk(_file(no_pixels)) is None  # pydicom parses it and the reader names what is missing
    assert walk(_file(no_pixels), stop_after=CHANNEL_TAGS_END) is not None
