"""One pass over a Dixon zip, in memory: every member inflated once, parsed once, its pixels taken once.

Members are inflated by :func:`~ukbb_pipeline.dicomio.zipread.iter_members` (declared sizes checked first), parsed from
memory, and grouped by series and channel; uncompressed pixels are viewed straight from the bytes. A ``.dcm``
member that does not parse fails the whole zip, naming the member: it means a damaged download to fetch again, not a
slice to bridge. A sound DICOM object that is not an image (an encapsulated PDF report, no PixelData) is passed
over with a note naming it. Slices of channels that were not asked for are parsed (their channel is only known from
their header) and then dropped; slices that are not Dixon images are counted and reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom

from ukbb_pipeline.dicomio import dicom
from ukbb_pipeline.dicomio.zipread import _label, iter_members
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.mri.header import SliceHeader, read_header, slice_pixels
from ukbb_pipeline.mri.series import Series, build_series


@dataclass
class DixonRead:
    """The series of the wanted channels found in one zip, and what else was there."""

    series: list[Series]
    n_members: int
    notes: list[str] = field(default_factory=list)


def read_dixon_zip(
    path: Path,
    *,
    channels: Collection[str],
    max_member_mb: float = 64.0,
    max_total_mb: float = 4096.0,
    max_members: int = 10000,
) -> DixonRead:
    """Read the slices of ``channels`` (F, W, in, opp) from a Dixon zip, grouped into :class:`Series`."""
    wanted = set(channels)
    slices: dict[tuple, tuple[list[SliceHeader], list[np.ndarray]]] = defaultdict(lambda: ([], []))
    not_dixon: dict[str, int] = defaultdict(int)
    non_image: list[str] = []
    n_members = 0
    for member in iter_members(
        path, max_member_mb=max_member_mb, max_total_mb=max_total_mb, max_members=max_members
    ):
        n_members += 1
        try:
            dataset = dicom.parse(member)
        except InputError:
            what = _non_image(member.data)
            if what is None:  # not DICOM, damaged, or an image lacking its pixels: the zip fails
                raise
            non_image.append(f"{_label(member.name)} ({what})")
            continue
        try:
            header = read_header(dataset, name=member.name, wanted=wanted)
            if header.channel is None:
                not_dixon[header.description or "(no SeriesDescription)"] += 1
                continue
            if header.channel not in wanted:
                continue
            image = slice_pixels(dataset, header)
        except InputError:
            raise
        except Exception as error:  # pydicom raises many types on values damaged past the header's structure
            name = _label(member.name)
            raise InputError(f"member {name} has a damaged DICOM header ({type(error).__name__})") from None
        if image.shape != (header.rows, header.columns):
            raise InputError(f"member {_label(member.name)} is not a single-frame {header.rows}x{header.columns} image")
        headers, images = slices[(header.series_uid, header.series_number, header.channel)]
        headers.append(header)
        images.append(image)
        del dataset
    if n_members == 0:
        raise InputError("the zip holds no .dcm members")
    series = []
    for key in list(slices):  # stack one series at a time, letting its slice list go
        headers, images = slices.pop(key)
        series.append(build_series(headers, images))
    notes = []
    if non_image:
        notes.append(f"passed over {len(non_image)} non-image DICOM member(s): {', '.join(non_image[:4])}")
    if not_dixon:
        listed = ", ".join(f"{name!r} ({count})" for name, count in sorted(not_dixon.items())[:4])
        notes.append(f"ignored {sum(not_dixon.values())} slice(s) that are not Dixon images: {listed}")
    return DixonRead(series=series, n_members=n_members, notes=notes)


_IMAGE_STORAGE = ("1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1")  # MR Image, Enhanced MR Image Storage


def _non_image(data: bytes) -> str | None:
    """What a member without pixel data is (its SOP class and description) when it is a sound DICOM object that is
    not an MR image (an encapsulated PDF, a structured report); None otherwise (MR images must have their pixels)."""
    try:
        dataset = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
        sop_class = str(dataset.get("SOPClassUID", ""))
        description = str(dataset.get("SeriesDescription", "")).strip()
    except Exception:
        return None
    if "PixelData" in dataset or not sop_class or sop_class in _IMAGE_STORAGE:
        return None
    name = getattr(pydicom.uid.UID(sop_class), "name", sop_class)
    return f"{name}{', ' + repr(description) if description else ''}"
