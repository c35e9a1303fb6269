"""Which greyscale images of a DXA zip are the exam's Total Body pair.

The images of one exam are those of one PatientID, StudyInstanceUID and series (ukbb-format.md 3.4: the public example
zip holds another participant's AP Spine image). The exam's participant is the PatientID holding the most greyscale
images (its regional scans and its Total Body pair), never the newest: another participant's Total Body pair may be
newer. A tie is ambiguous and fails. Within that participant, the pair is its two greyscale Total Body images, of one
study and series, with the same Rows, Columns and ExposedArea. Acquisition time is never used (the pair is timed at
the study's start, before the regional scans), nor are instance numbers, which vary between exams. Three or more
candidates (a repeat, a derived image) fail the zip naming them: which two belong together would be a guess.
Known limit: a zip whose foreign images outnumber the exam's own (say another participant's pair and AP Spine beside a
Total-Body-only exam) cannot be told, from the zip alone, from one where they are the exam; the count decides.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ukbb_pipeline.dicomio.zipread import _label
from ukbb_pipeline.dxa.images import DxaImage, Passed
from ukbb_pipeline.errors import InputError


@dataclass(frozen=True)
class ExamPair:
    """The two Total Body images (in InstanceNumber order, not yet told apart) and the notes of the choice."""

    first: DxaImage
    second: DxaImage
    notes: list[str] = field(default_factory=list)


def choose_pair(images: Sequence[DxaImage], *, passed: Sequence[Passed] = ()) -> ExamPair:
    """The exam's Total Body pair among ``images``; ``passed`` (members already ruled out) are named on failure."""
    if not images:
        raise InputError(f"no greyscale image in the zip{_passed_total_body(passed)}")
    participant = _participant(images)
    notes = []
    foreign = [image for image in images if image.patient_id != participant]
    if foreign:
        notes.append(f"ignored {len(foreign)} image(s) of another participant: {_list(foreign)}")
    own = [image for image in images if image.patient_id == participant]
    candidates = sorted((image for image in own if image.is_total_body), key=_instance_order)
    if len(candidates) < 2:
        elsewhere = [image for image in foreign if image.is_total_body]
        where = f"; another participant's: {_list(elsewhere)}" if elsewhere else ""
        found = f": {_list(candidates)}" if candidates else ""
        raise InputError(
            f"{len(candidates)} greyscale 'Total Body' image(s) of the exam's participant, 2 needed (tissue and bone)"
            f"{found}{_passed_total_body(passed)}{where}"
        )
    if len(candidates) > 2:
        raise InputError(
            f"{len(candidates)} greyscale 'Total Body' images of the exam's participant, 2 expected (tissue and "
            f"bone); which two are the pair cannot be told: {_list(candidates)}"
        )
    first, second = candidates
    if (first.study_uid, first.series_uid) != (second.study_uid, second.series_uid):
        raise InputError(
            f"the 'Total Body' images {first.label} and {second.label} are not of one study and series"
        )
    if (first.rows, first.columns, first.exposed_area) != (second.rows, second.columns, second.exposed_area):
        raise InputError(
            f"the 'Total Body' images differ in geometry: {_geometry(first)} and {_geometry(second)}"
        )
    other_exam = [image for image in own if (image.study_uid, image.series_uid) != (first.study_uid, first.series_uid)]
    if other_exam:
        notes.append(f"ignored {len(other_exam)} image(s) of another study or series: {_list(other_exam)}")
    return ExamPair(first=first, second=second, notes=notes)


def _instance_order(image: DxaImage) -> tuple[bool, int, str]:
    return image.instance_number is None, image.instance_number or 0, image.name


def _participant(images: Sequence[DxaImage]) -> str:
    """The PatientID holding the most greyscale images; a tie between the leaders is an :class:`InputError`."""
    counts = Counter(image.patient_id for image in images).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        tied = [patient for patient, count in counts if count == counts[0][1]]
        groups = "; ".join(
            f"participant {n + 1}: {_list([image for image in images if image.patient_id == patient])}"
            for n, patient in enumerate(tied)
        )
        raise InputError(
            f"the zip holds {counts[0][1]} greyscale image(s) each of {len(tied)} participants, so whose exam it is "
            f"cannot be told ({groups})"
        )
    return counts[0][0]


def _list(images: Sequence[DxaImage]) -> str:
    return ", ".join(f"{image.label} {image.protocol or '(no ProtocolName)'}" for image in images)


def _geometry(image: DxaImage) -> str:
    area = "no ExposedArea" if image.exposed_area is None else (
        f"ExposedArea [{image.exposed_area[0]:g}, {image.exposed_area[1]:g}]")
    return f"{image.label} {area}"


def _passed_total_body(passed: Sequence[Passed]) -> str:
    named = [f"{_label(item.name)}: {item.why}" for item in passed if item.total_body]
    return f"; 'Total Body' member(s) passed over: {', '.join(named)}" if named else ""
