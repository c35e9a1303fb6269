"""Which members can be a tissue or bone image (greyscale, 8 bits or more), and MONOCHROME1 in MONOCHROME2 sense."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ComputedRadiographyImageStorage, EncapsulatedPDFStorage

from ukbb_pipeline.dxa.images import DxaImage, Passed, classify, to_monochrome2
from ukbb_pipeline.errors import InputError


def _image(**tags) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = ComputedRadiographyImageStorage
    ds.ProtocolName = "Total Body"
    ds.PatientID = "J3 DE P5 C5"
    ds.InstanceNumber = "11"
    ds.Rows, ds.Columns = 4, 3
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 8, 8, 0
    ds.add_new(0x00400303, "US", [658, 1920])
    ds.PixelData = bytes(12)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def test_a_greyscale_total_body_image_is_read_with_its_header():
    found = classify(_image(), name="a.dcm")
    assert isinstance(found, DxaImage)
    assert (found.instance_number, found.rows, found.columns, found.exposed_area) == (11, 4, 3, (658.0, 1920.0))
    assert found.is_total_body and found.patient_id == "J3 DE P5 C5"
    assert found.label == "'a.dcm' (InstanceNumber 11, 4x3)"


@pytest.mark.parametrize(("tags", "why"), [
    ({"SamplesPerPixel": 3, "PhotometricInterpretation": "RGB"}, "not a greyscale image (RGB, 3 samples per pixel"),
    ({"PhotometricInterpretation": "PALETTE COLOR"}, "not a greyscale image (PALETTE COLOR"),
    ({"BitsStored": 6}, "not an image of 8 bits or more (BitsStored 6, BitsAllocated 8)"),
    ({"NumberOfFrames": 3}, "3 frames, not a single image"),
])
def test_reports_screen_captures_and_odd_images_are_passed_over_with_the_reason(tags, why):
    found = classify(_image(**tags), name="r.dcm")
    assert isinstance(found, Passed) and found.why.startswith(why) and found.total_body


def test_a_pdf_is_passed_over_but_a_member_saying_nothing_of_itself_is_damaged():
    pdf = _image(SOPClassUID=EncapsulatedPDFStorage)
    del pdf.PixelData
    found = classify(pdf, name="report.dcm")
    assert isinstance(found, Passed) and found.why == "no pixel data (Encapsulated PDF Storage)"
    with pytest.raises(InputError, match=r"member 'x\.dcm' has no pixel data and no SOP class"):
        classify(Dataset(), name="x.dcm")


def test_monochrome1_becomes_monochrome2_and_monochrome2_stays_as_stored():
    stored = np.array([[0, 3, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(to_monochrome2(stored, photometric="MONOCHROME1", bits_stored=8), [[255, 252, 0]])
    assert to_monochrome2(stored, photometric="MONOCHROME2", bits_stored=8) is stored
    twelve = np.array([[0, 4095, 0xF000 | 5]], dtype=np.uint16)  # bits above BitsStored carry no image
    converted = to_monochrome2(twelve, photometric="MONOCHROME1", bits_stored=12)
    assert converted.dtype == np.uint16
    np.testing.assert_array_equal(converted, [[4095, 0, 4090]])
