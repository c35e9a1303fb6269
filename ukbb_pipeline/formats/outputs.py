"""Reading what the stages wrote, in either layout (HDF5 or the original scripts' pickles).

Later steps (``collect``) take the outputs of ``unzip_dxa`` and ``extract_slices`` as they are on disk: HDF5
``<stem>.h5`` with metadata as attributes, or pickles ``<stem>.pkl`` / ``<stem>/<stem>.pkl`` whose extra metadata
sits in a JSON sidecar in the stage's metadata folder. Every problem is an :class:`InputError` saying what is wrong
with the file (the caller says which file).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.formats.pickle import safe_load
from ukbb_pipeline.formats.volumes import open_volume
from ukbb_pipeline.runtime.inputs import InputFile, parse_input

OUTPUT_SUFFIXES = (".h5", ".pkl")


def find_outputs(folder: Path) -> list[InputFile]:
    """The per-input outputs in a stage's output folder: ``<stem>.h5``, ``<stem>.pkl`` or ``<stem>/<stem>.pkl``.

    Names without an EID, the ``pipeline-*`` metadata folders and hidden entries are ignored; when a stem has both
    an HDF5 file and a pickle, the HDF5 file is used.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {folder} does not exist")
    found: dict[str, InputFile] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(("pipeline-", ".")):
                continue
            path = Path(entry.path)
            if entry.is_dir():
                path = path / f"{entry.name}.pkl"
                if not path.is_file():
                    continue
            elif not entry.name.endswith(OUTPUT_SUFFIXES):
                continue
            item = parse_input(path)
            if item.eid is None:
                continue
            if item.stem not in found or path.suffix == ".h5":
                found[item.stem] = item
    return sorted(found.values())


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
    return SlabRow(image=image, spacing=(spacing[2], spacing[0]), origin=origin, source_spacing=spacing, row=row)


def read_dxa(path: Path, *, channels: Sequence[str]) -> DxaImages:
    """Read the named DXA images (``bone``, ``tissue``) and their ``pixel_spacing`` from an ``unzip_dxa`` output."""
    if path.suffix == ".h5":
        with _open_hdf5(path) as handle:
            _common_shape(path, {name: _dataset(handle, path, name).shape for name in channels}, ndim=2)
            arrays = [handle[name][()] for name in channels]
            spacing = handle.attrs.get("pixel_spacing")
    else:
        payload = _load_pickle(path)
        _common_shape(path, {name: np.shape(_key(payload, path, name)) for name in channels}, ndim=2)
        arrays = [payload[name] for name in channels]
        spacing = payload.get("pixel_spacing")
    spacing = _positive(path, spacing, count=2, what="pixel_spacing")
    image = np.stack([np.asarray(array, dtype=np.float32) for array in arrays])
    return DxaImages(image=image, spacing=(float(spacing[0]), float(spacing[1])))


def _open_hdf5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise InputError(f"does not open as HDF5 ({_first_line(error)})") from None


def _dataset(handle: h5py.File, path: Path, name: str) -> h5py.Dataset:
    if name not in handle:
        raise InputError(f"has no dataset {name!r} (it has {', '.join(sorted(handle)) or 'none'})")
    return handle[name]


def _load_pickle(path: Path) -> dict:
    try:
        return safe_load(path)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as error:
        raise InputError(f"does not load as a pipeline pickle ({_first_line(error)})") from None


def _key(payload: dict, path: Path, name: str) -> np.ndarray:
    if name not in payload:
        raise InputError(f"has no {name!r} (it has {', '.join(sorted(payload))})")
    return payload[name]


def _common_shape(path: Path, shapes: dict[str, tuple[int, ...]], *, ndim: int) -> tuple[int, ...]:
    distinct = set(shapes.values())
    if len(distinct) != 1:
        described = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise InputError(f"channels differ in shape ({described})")
    shape = distinct.pop()
    if len(shape) != ndim or min(shape, default=0) < 1:
        raise InputError(f"images of shape {shape}, expected {ndim} non-empty axes")
    return shape


def _positive(path: Path, value: object, *, count: int, what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        array = np.zeros(0)
    if value is None or array.size != count or not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise InputError(f"{what} must be {count} positive numbers (mm), got {value!r}")
    return array


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
