"""Choosing the exam's Total Body pair: one participant (the one with the most images, never the newest), one study
and series, one geometry; anything else fails naming the candidates."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from ukbb_pipeline.dxa.exam import choose_pair
from ukbb_pipeline.dxa.images import DxaImage, Passed
from ukbb_pipeline.errors import InputError


def _image(name: str, *, patient: str = "P1", protocol: str = "Total Body", number: int | None = 11,
           study: str = "1.1", series: str = "1.1.1", shape: tuple[int, int] = (791, 272),
           area: tuple[float, float] | None = (658.0, 1920.0)) -> DxaImage:
    ds = Dataset()
    ds.ProtocolName = protocol
    return DxaImage(name=name, dataset=ds, patient_id=patient, study_uid=study, series_uid=series, protocol=protocol,
                    instance_number=number, rows=shape[0], columns=shape[1], photometric="MONOCHROME2",
                    bits_stored=8, exposed_area=area)


def _exam(patient: str = "P1", *, regional: int = 3, numbers: tuple[int, int] = (11, 12)) -> list[DxaImage]:
    images = [_image(f"{patient}-tb{n}.dcm", patient=patient, number=n) for n in numbers]
    return images + [_image(f"{patient}-r{i}.dcm", patient=patient, protocol="Left Femur", number=i,
                            shape=(150, 170), area=(170.0, 150.0)) for i in range(1, regional + 1)]


def test_the_pair_is_the_two_total_body_images_in_instance_number_order():
    pair = choose_pair(list(reversed(_exam())))
    assert (pair.first.name, pair.second.name) == ("P1-tb11.dcm", "P1-tb12.dcm")
    assert pair.notes == []


def test_another_participants_images_are_ignored_with_a_note_even_a_newer_pair():
    foreign = [_image("f-tb11.dcm", patient="P2", number=11, study="2.1", series="2.1.2"),
               _image("f-tb12.dcm", patient="P2", number=12, study="2.1", series="2.1.2"),
               _image("f-spine.dcm", patient="P2", protocol="AP Spine", number=18, study="0.9", series="0.9.2")]
    pair = choose_pair(foreign + _exam())
    assert pair.first.name == "P1-tb11.dcm"
    [note] = pair.notes
    assert note.startswith("ignored 3 image(s) of another participant: ")
    assert all(name in note for name in ("f-tb11.dcm", "f-tb12.dcm", "f-spine.dcm"))


def test_two_participants_with_as_many_images_each_is_ambiguous():
    with pytest.raises(InputError, match="each of 2 participants, so whose exam it is cannot be told") as caught:
        choose_pair(_exam("P1", regional=0) + _exam("P2", regional=0))
    assert all(name in str(caught.value) for name in ("P1-tb11.dcm", "P2-tb12.dcm"))


def test_a_third_total_body_image_fails_naming_all_three():
    images = [*_exam(), _image("extra.dcm", number=13)]
    with pytest.raises(InputError, match=r"^3 greyscale 'Total Body' images of the exam's participant") as caught:
        choose_pair(images)
    assert all(name in str(caught.value) for name in ("P1-tb11.dcm", "P1-tb12.dcm", "extra.dcm"))


def test_a_pair_across_two_series_or_of_two_geometries_fails():
    split = _exam(regional=0)
    split[1] = _image("P1-tb12.dcm", number=12, series="1.1.9")
    with pytest.raises(InputError, match="are not of one study and series"):
        choose_pair(split)
    other_area = _exam(regional=0)
    other_area[1] = _image("P1-tb12.dcm", number=12, area=(1920.0, 658.0))
    with pytest.raises(InputError, match=r"differ in geometry: .* ExposedArea \[658, 1920\] and .* \[1920, 658\]"):
        choose_pair(other_area)
    other_shape = _exam(regional=0)
    other_shape[1] = _image("P1-tb12.dcm", number=12, shape=(790, 272))
    with pytest.raises(InputError, match="differ in geometry"):
        choose_pair(other_shape)


def test_a_missing_image_names_what_was_passed_over():
    passed = [Passed("rgb.dcm", "not a greyscale image (RGB, 3 samples per pixel: a report or screen capture)",
                     total_body=True), Passed("pdf.dcm", "no pixel data (Encapsulated PDF Storage)", total_body=False)]
    with pytest.raises(InputError) as caught:
        choose_pair(_exam()[1:], passed=passed)
    reason = str(caught.value)
    assert reason.startswith("1 greyscale 'Total Body' image(s) of the exam's participant, 2 needed (tissue and bone)")
    assert "'rgb.dcm': not a greyscale image" in reason and "pdf.dcm" not in reason


def test_images_of_the_participant_from_another_series_are_noted():
    images = [*_exam(), _image("old.dcm", protocol="AP Spine", number=2, series="1.1.2")]
    assert choose_pair(images).notes == [
        "ignored 1 image(s) of another study or series: 'old.dcm' (InstanceNumber 2, 791x272) AP Spine"]
