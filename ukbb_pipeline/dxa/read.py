"""One pass over a DXA zip: its Total Body soft-tissue and bone images, checked, with their pixel spacing.

Every ``.dcm`` member is parsed once. A member that does not parse fails the zip, naming it (a damaged download);
one that parses but holds no usable image (a report, a screen capture, an encapsulated PDF) is passed over with a
note. The exam's pair is chosen by participant, study, series and geometry (:mod:`~ukbb_pipeline.dxa.exam`), its
pixels put in MONOCHROME2 sense, told apart by content (:mod:`~ukbb_pipeline.dxa.content`; InstanceNumber order is
only the first guess) and its spacing checked (:mod:`~ukbb_pipeline.dxa.spacing`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ukbb_pipeline.dicomio import dicom
from ukbb_pipeline.dicomio.zipread import _label, iter_members
from ukbb_pipeline.dxa import content as contents
from ukbb_pipeline.dxa import spacing as spacings
from ukbb_pipeline.dxa.exam import choose_pair
from ukbb_pipeline.dxa.images import TAGS_READ, DxaImage, Passed, acquired_at, classify, to_monochrome2, two_positive
from ukbb_pipeline.errors import InputError


@dataclass(frozen=True)
class DxaExam:
    """The exam's two Total Body images (uint8 as stored, MONOCHROME2 sense) and what was decided on the way."""

    tissue: np.ndarray
    bone: np.ndarray
    pixel_spacing: tuple[float, float]
    tissue_image: DxaImage
    bone_image: DxaImage
    tissue_content: contents.Content
    bone_content: contents.Content
    n_total_body: int  # greyscale Total Body images of any participant in the zip
    notes: list[str] = field(default_factory=list)


def read_dxa_zip(
    path: Path,
    *,
    max_member_mb: float = 64.0,
    max_total_mb: float = 4096.0,
    max_members: int = 10000,
    plausible_mm: tuple[float, float] = spacings.PLAUSIBLE_MM,
    max_anisotropy: float = spacings.MAX_ANISOTROPY,
) -> DxaExam:
    """The exam's tissue and bone images from a DXA zip; :class:`InputError` with a one-line reason if it cannot."""
    images: list[DxaImage] = []
    passed: list[Passed] = []
    for member in iter_members(path, max_member_mb=max_member_mb, max_total_mb=max_total_mb, max_members=max_members):
        dataset = dicom.parse(member, require_pixels=False)
        dicom.check_values(dataset, (*TAGS_READ, *dicom.PIXEL_TAGS), name=member.name)
        found = classify(dataset, name=member.name)
        if isinstance(found, DxaImage):
            images.append(found)
        else:
            passed.append(found)
    if not images and not passed:
        raise InputError("the zip holds no .dcm members")
    notes = [f"ignored member {_label(item.name)}: {item.why}" for item in passed]
    pair = choose_pair(images, passed=passed)
    notes += pair.notes
    first = _pixels(pair.first)
    second = _pixels(pair.second)
    first_content, second_content = contents.content(first), contents.content(second)
    vote = contents.bone_vote(first_content, second_content)
    if vote == 0:
        raise InputError(
            "cannot tell the 'Total Body' tissue image from the bone image by content: "
            f"{pair.first.label}: {first_content.describe()}; {pair.second.label}: {second_content.describe()}"
        )
    tissue_image, bone_image = (pair.first, pair.second) if vote > 0 else (pair.second, pair.first)
    tissue, bone = (first, second) if vote > 0 else (second, first)
    tissue_content, bone_content = (first_content, second_content) if vote > 0 else (second_content, first_content)
    if vote < 0 or pair.first.instance_number == pair.second.instance_number:
        notes.append(
            f"tissue and bone told apart by content, not InstanceNumber order: bone is {bone_image.label} "
            f"({bone_content.describe()}), tissue {tissue_image.label} ({tissue_content.describe()})"
        )
    if pair.first.photometric == "MONOCHROME1" or pair.second.photometric == "MONOCHROME1":
        notes.append("MONOCHROME1 'Total Body' images converted to MONOCHROME2 ((2^BitsStored - 1) - value)")
    fallback = two_positive(tissue_image.dataset.get("ImagerPixelSpacing")) or two_positive(
        tissue_image.dataset.get("PixelSpacing"))
    shape = (int(tissue.shape[0]), int(tissue.shape[1]))
    spacing = spacings.pixel_spacing(exposed_area=tissue_image.exposed_area, shape=shape, fallback=fallback)
    spacings.check_plausible(spacing, exposed_area=tissue_image.exposed_area, shape=shape, plausible_mm=plausible_mm,
                             max_anisotropy=max_anisotropy)
    return DxaExam(
        tissue=tissue,
        bone=bone,
        pixel_spacing=spacing,
        tissue_image=tissue_image,
        bone_image=bone_image,
        tissue_content=tissue_content,
        bone_content=bone_content,
        n_total_body=sum(image.is_total_body for image in images),
        notes=notes,
    )


def acquisition(exam: DxaExam) -> str:
    return acquired_at(exam.tissue_image.dataset)


def _pixels(image: DxaImage) -> np.ndarray:
    stored = dicom.pixels(image.dataset, name=image.name)
    if stored.shape != (image.rows, image.columns):
        raise InputError(f"member {_label(image.name)} is not a single-frame {image.rows}x{image.columns} image")
    return to_monochrome2(stored, photometric=image.photometric, bits_stored=image.bits_stored)
