"""One pass over a Dixon zip, in memory: every member's header looked at once, the slices needed inflated and parsed
once, their pixels taken once.

Members are read through :class:`~ukbb_pipeline.dicomio.zipread.ZipMembers` (declared sizes checked first, CRC of
every member used checked). Only the first few KB of each member are inflated at first (``PEEK_BYTES``): its channel
is decided from them (the SeriesDescription sits about 800 bytes in), and only slices of the channels asked for are
then inflated whole, parsed and grouped by series and channel; uncompressed pixels are viewed straight from the bytes.
Headers are read by the fast walk of :mod:`~ukbb_pipeline.dicomio.walk` (the raw values pydicom would hold) and by
pydicom itself for anything the walk leaves to it; a header longer than the peeked bytes is inflated whole.

A ``.dcm`` member that does not parse fails the whole zip, naming the member: it means a damaged download to fetch
again, not a slice to bridge. For a slice of a channel not asked for, that check is its preamble, ``DICM`` and the
structure of its header up to the SeriesDescription (nothing else of it is used, so its CRC is not checked); slices
that are not Dixon images are counted and reported. A sound DICOM object that is not an image (an encapsulated PDF
report, no PixelData) is passed over with a note naming it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from ukbb_pipeline.dicomio import dicom
from ukbb_pipeline.dicomio.walk import walk
from ukbb_pipeline.dicomio.zipread import Member, ZipMembers, _label
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.mri.header import (
    CHANNEL_TAGS_END,
    ECHO_TAGS_END,
    Parsed,
    SliceHeader,
    has_native_pixels,
    needs_echo,
    other_image,
    read_header,
    refuse_multi_frame,
    slice_channel,
    slice_pixels,
)
from ukbb_pipeline.mri.series import Series, build_series

PEEK_BYTES = 4096  # inflated first to learn a member's channel; Siemens headers reach the SeriesDescription by ~1 KB


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
    with ZipMembers(
        path, max_member_mb=max_member_mb, max_total_mb=max_total_mb, max_members=max_members
    ) as members:
        for info in members.entries:
            n_members += 1
            peeked = members.peek(info, PEEK_BYTES)
            seen = walk(peeked, stop_after=CHANNEL_TAGS_END)
            if seen is not None and needs_echo(seen):  # both echoes in one series: the echo tags decide
                seen = walk(peeked, stop_after=ECHO_TAGS_END)
            if seen is not None:  # else the whole member is read and parsed: it decides below
                channel, description = slice_channel(seen)
                refuse_multi_frame(seen, name=info.filename)
                if channel is not None and channel not in wanted:
                    continue
                if channel is None and other_image(seen):  # a phase image, say: an image, not a channel
                    not_dixon[description or "(no SeriesDescription)"] += 1
                    continue
                if channel is None:  # rare: read whole, to tell a non-image object from a non-Dixon image
                    try:
                        what = _non_image(dicom.parse(Member(info.filename, members.read(info)), require_pixels=False))
                    except InputError:
                        what = None
                    if what is not None:
                        non_image.append(f"{_label(info.filename)} ({what})")
                    else:
                        not_dixon[description or "(no SeriesDescription)"] += 1
                    continue
            member = Member(name=info.filename, data=members.read(info))
            dataset = _parse(member)
            if isinstance(dataset, Dataset) and not dicom.has_pixels(dataset):
                what = _non_image(dataset)
                if what is None:  # an image lacking its pixels: the zip fails
                    raise InputError(f"member {_label(member.name)} has no pixel data")
                non_image.append(f"{_label(member.name)} ({what})")
                continue
            _add_slice(member, dataset, wanted, slices, not_dixon)
    if n_members == 0:
        raise InputError("the zip holds no .dcm members")
    series = []
    for key in list(slices):  # stack one series at a time, letting its slice list go
        headers, images = slices.pop(key)
        series.append(build_series(headers, images))
    notes = []
    positions = sorted({s.patient_position for s in series if s.patient_position not in ("", "HFS")})
    if positions:
        notes.append(f"patient position {'/'.join(positions)} (not head first supine): placed by "
                     f"ImagePositionPatient and ImageOrientationPatient, as every exam")
    if non_image:
        notes.append(f"passed over {len(non_image)} non-image DICOM member(s): {', '.join(non_image[:4])}")
    if not_dixon:
        listed = ", ".join(f"{name!r} ({count})" for name, count in sorted(not_dixon.items())[:4])
        notes.append(f"ignored {sum(not_dixon.values())} slice(s) that are not Dixon magnitude images: {listed}")
    return DixonRead(series=series, n_members=n_members, notes=notes)


def _parse(member: Member) -> Parsed:
    """The member's elements by the fast walk when it reads them all and its pixels are native, else pydicom's."""
    elements = walk(member.data)
    if elements is not None and has_native_pixels(elements):
        return elements
    return dicom.parse(member, require_pixels=False)  # the caller judges a dataset without pixels


def _add_slice(
    member: Member,
    dataset: Parsed,
    wanted: set[str],
    slices: dict[tuple, tuple[list[SliceHeader], list[np.ndarray]]],
    not_dixon: dict[str, int],
) -> None:
    """Add a parsed member's slice to its series (if its channel is wanted), or count it as not a Dixon image."""
    try:
        header = read_header(dataset, name=member.name, wanted=wanted)
        if header.channel is None:
            not_dixon[header.description or "(no SeriesDescription)"] += 1
            return
        if header.channel not in wanted:
            return
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


_IMAGE_STORAGE = ("1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1")  # MR Image, Enhanced MR Image Storage


def _non_image(dataset: Dataset) -> str | None:
    """What a DICOM object without pixel data is (its SOP class and description) when it is not an MR image (an
    encapsulated PDF, a structured report); None otherwise (MR images must have their pixels)."""
    sop_class = str(dataset.get("SOPClassUID", ""))
    if dicom.has_pixels(dataset) or not sop_class or sop_class in _IMAGE_STORAGE:
        return None
    description = str(dataset.get("SeriesDescription", "")).strip()
    return f"{dicom.sop_class_name(dataset)}{', ' + repr(description) if description else ''}"
