"""Reading what the stages wrote, in whichever format wrote it: the one place that tells formats apart on disk.

A stage's output for input ``<stem>`` is ``<stem>.h5`` (HDF5), ``<stem>.pkl`` or ``<stem>/<stem>.pkl`` (pickle) or a
``<stem>/`` folder of ``<dataset>.nii.gz`` (NIfTI): each format module's ``find`` says which entries are its own,
in the order of :data:`ukbb_pipeline.registry.WRITERS`. :func:`find_outputs` lists them, :func:`format_of` says which
format module reads one, and :func:`open_volume`, :func:`read_images`, :func:`read_attrs` hand the reading to it.
Every problem is an :class:`InputError` saying what is wrong with the file (the caller says which file).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ukbb_pipeline import registry
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.formats.volumes import MriVolume
from ukbb_pipeline.runtime.inputs import InputFile, log_passed_over, missing_folder, parse_input


def _formats() -> list[ModuleType]:
    """The format modules, in order of preference (:data:`ukbb_pipeline.registry.WRITERS`)."""
    return [entry.format() for entry in registry.WRITERS]


def format_of(path: Path) -> ModuleType:
    """The format module that reads the output at ``path``."""
    for module in _formats():
        if module.find(path) == path:
            return module
    names = ", ".join(entry.name for entry in registry.WRITERS)
    raise InputError(f"{path.name}: not an output of any writer ({names})")


def open_volume(path: Path, *, locking: bool | None = None) -> MriVolume:
    """Open an MRI volume or slab in any format; bad inputs raise :class:`InputError` with a one-line reason.

    ``locking`` is HDF5 file locking (None: the library default; false on file systems where locking fails).
    """
    path = Path(path)
    return format_of(path).open_volume(path, locking=locking)


def read_images(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named images of an output in any format."""
    return format_of(path).read_images(path, names)


def read_attrs(path: Path) -> dict[str, Any]:
    """The attributes of an output in any format (HDF5 attributes, or the sidecar of a pickle or NIfTI output)."""
    return format_of(path).read_attrs(path)


def find_outputs(folder: Path, *, made_by: str = "", key: str = "stage.input_dir") -> list[InputFile]:
    """The per-input outputs in a stage's output folder, in any format, one per stem (the table's first format wins).

    The ``pipeline-*`` metadata folders and hidden entries are ignored; other entries that are not outputs (names
    without an EID, other files) are counted and named in a warning. A missing folder is an error naming the stage
    that makes it (``made_by``) and the key that moves it. NIfTI outputs without nibabel installed are refused here,
    before any work, with the line that installs it.
    """
    if not folder.is_dir():
        raise missing_folder(folder, made_by=made_by, key=key)
    found: dict[str, tuple[int, InputFile]] = {}
    passed_over: list[str] = []
    formats = _formats()
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(("pipeline-", ".")):
                continue
            rank, path = next(((rank, path) for rank, module in enumerate(formats)
                               if (path := module.find(Path(entry.path))) is not None), (-1, None))
            if path is None:
                passed_over.append(entry.name + ("/" if entry.is_dir() else ""))
                continue
            item = parse_input(path)
            if item.eid is None:
                passed_over.append(entry.name + ("/" if entry.is_dir() else ""))
                continue
            if item.stem not in found or rank < found[item.stem][0]:
                found[item.stem] = (rank, item)
    log_passed_over(folder, sorted(passed_over), looked_for="outputs named <eid>_<field>_<instance>_<array>")
    for rank in sorted({rank for rank, _ in found.values()}):
        if hasattr(formats[rank], "require"):
            formats[rank].require()  # e.g. NIfTI inputs without nibabel: refused at start-up, with the install line
    return sorted(item for _, item in found.values())


@dataclass
class SlabRow:
    """The middle coronal row of an MRI slab, as (channels, z head->feet, x right->left) float32.

    ``spacing`` is (sz, sx) in mm; ``origin`` the LPS position of pixel [0, 0] (NaN when the file does not say);
    ``source_spacing`` the slab's stored (sx, sy, sz); ``row`` the slab row taken.
    """

    image: np.ndarray
    spacing: tuple[float, float]
    origin: np.ndarray
    source_spacing: np.ndarray
    row: int
    attrs: dict[str, Any] = field(default_factory=dict)  # what the slab's writer recorded (its upstream flags)


@dataclass
class DxaImages:
    """DXA images (channels, rows, columns) float32 and their (row, column) pixel spacing in mm."""

    image: np.ndarray
    spacing: tuple[float, float]


def read_slab_row(path: Path, *, channels: Sequence[str]) -> SlabRow:
    """Read the row ``shape[1] // 2`` of each channel of an MRI slab (x, rows, z), as the paper's loader picks it.

    From HDF5 only that row is read. Works for whole volumes too (then it is the geometric middle row).
    """
    with open_volume(path) as volume:
        info = volume.info
        missing = [name for name in channels if name not in info.channels]
        if missing:
            raise InputError(f"no {', '.join(missing)} (it has {', '.join(info.channels)})")
        row = info.shape[1] // 2
        image = np.stack([volume.rows(name, np.array([row]))[:, 0, :].astype(np.float32).T for name in channels])
    spacing = np.asarray(info.spacing, dtype=np.float64)
    origin = np.full(3, np.nan) if info.origin is None else np.asarray(info.origin, dtype=np.float64)
    origin[1] += row * spacing[1]
    return SlabRow(image=image, spacing=(spacing[2], spacing[0]), origin=origin, source_spacing=spacing, row=row,
                   attrs=info.attrs)


def read_dxa(path: Path, *, channels: Sequence[str]) -> DxaImages:
    """Read the named DXA images (``bone``, ``tissue``) and their ``pixel_spacing`` from an ``unzip_dxa`` output."""
    images = read_images(path, channels)
    _common_shape({name: np.shape(image) for name, image in images.items()}, ndim=2)
    spacing = _positive(read_attrs(path).get("pixel_spacing"), count=2, what="pixel_spacing")
    image = np.stack([np.asarray(images[name], dtype=np.float32) for name in channels])
    return DxaImages(image=image, spacing=(float(spacing[0]), float(spacing[1])))


def _common_shape(shapes: dict[str, tuple[int, ...]], *, ndim: int) -> tuple[int, ...]:
    distinct = set(shapes.values())
    if len(distinct) != 1:
        described = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise InputError(f"channels differ in shape ({described})")
    shape = distinct.pop()
    if len(shape) != ndim or min(shape, default=0) < 1:
        raise InputError(f"images of shape {shape}, expected {ndim} non-empty axes")
    return shape


def _positive(value: object, *, count: int, what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        array = np.zeros(0)
    if value is None or array.size != count or not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise InputError(f"{what} must be {count} positive numbers (mm), got {value!r}")
    return array
