"""MRI volumes and slabs as every format hands them out: a few coronal rows at a time, each read at most once.

A volume holds datasets ``fat_scan``, ``water_scan``, maybe ``in_scan``, ``opp_scan``, axes (x, y, z), with its
``spacing``, ``origin`` and other attributes. Each format (:mod:`ukbb_pipeline.formats.hdf5`, ``pickle``, ``nifti``)
opens its own files as an :class:`MriVolume`; :func:`ukbb_pipeline.formats.outputs.open_volume` picks the format by
what is on disk. HDF5 volumes are chunked one coronal row (axis 1) per chunk, so reading a row decompresses that row
only; each row is read once and cached, whichever channel or caller asks for it again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.ukbb import DIXON_OUTPUT_NAMES

# The image names of DESIGN.md, in the order outputs list them. Only fat is required (the centre comes from it).
CHANNELS = tuple(DIXON_OUTPUT_NAMES.values())
REQUIRED_CHANNEL = "fat_scan"


@dataclass(frozen=True)
class VolumeInfo:
    """What is known of an input volume before reading its voxels."""

    channels: tuple[str, ...]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] | None  # LPS mm of voxel [0, 0, 0]; None when the input does not say
    dtype: np.dtype
    attrs: dict[str, Any] = field(default_factory=dict)  # everything the writer recorded (flags, QC, geometry)


class MriVolume:
    """An open input volume that hands out coronal rows (axis 1), reading each row of each channel at most once."""

    def __init__(self, info: VolumeInfo):
        self.info = info
        self._cache: dict[str, dict[int, np.ndarray]] = {channel: {} for channel in info.channels}

    def rows(self, channel: str, rows: np.ndarray) -> np.ndarray:
        """The image ``channel`` at ``rows`` of axis 1, shape ``(x, len(rows), z)``, in the stored dtype."""
        if channel not in self._cache:
            raise KeyError(f"{channel} is not in this volume (it has {', '.join(self.info.channels)})")
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if rows.size and (rows.min() < 0 or rows.max() >= self.info.shape[1]):
            raise IndexError(f"rows {rows.min()}..{rows.max()} outside 0..{self.info.shape[1] - 1}")
        cache = self._cache[channel]
        missing = sorted({int(row) for row in rows} - cache.keys())
        for start, stop in _runs(missing):
            block = self._read(channel, start, stop)
            for offset in range(stop - start):
                cache[start + offset] = block[:, offset, :]
        out = np.empty((self.info.shape[0], rows.size, self.info.shape[2]), dtype=self.info.dtype)
        for index, row in enumerate(rows):
            out[:, index, :] = cache[int(row)]
        return out

    def rows_read(self, channel: str) -> int:
        """How many distinct rows of ``channel`` have been read so far (for benchmarks and tests)."""
        return len(self._cache[channel])

    def _read(self, channel: str, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        self._cache.clear()

    def __enter__(self) -> MriVolume:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class ArrayVolume(MriVolume):
    """A volume whose images are in memory (pickles and NIfTI files are read whole); floats handed out as float32."""

    def __init__(self, images: Mapping[str, Any], *, spacing: Any, origin: Any, attrs: dict[str, Any],
                 spacing_name: str = "spacing"):
        channels = check_channels([name for name, value in images.items() if isinstance(value, np.ndarray)])
        arrays = {name: np.asarray(images[name]) for name in channels}
        shape = common_shape({name: image.shape for name, image in arrays.items()})
        dtype = common_dtype({name: image.dtype for name, image in arrays.items()})
        if dtype.kind == "f":
            dtype = np.dtype(np.float32)
        self._images = arrays
        super().__init__(VolumeInfo(channels=channels, shape=shape, spacing=check_spacing(spacing, name=spacing_name),
                                    origin=check_origin(origin), dtype=dtype, attrs=attrs))

    def _read(self, channel: str, start: int, stop: int) -> np.ndarray:
        return self._images[channel][:, start:stop, :]

    def close(self) -> None:
        super().close()
        self._images = {}


def check_channels(names: list[str]) -> tuple[str, ...]:
    present = tuple(channel for channel in CHANNELS if channel in names)
    if REQUIRED_CHANNEL not in present:
        found = ", ".join(sorted(names)) or "nothing"
        raise InputError(f"no {REQUIRED_CHANNEL} image in the volume (found {found})")
    return present


def common_shape(shapes: dict[str, tuple[int, ...]]) -> tuple[int, int, int]:
    first = shapes[REQUIRED_CHANNEL]
    for name, shape in shapes.items():
        if len(shape) != 3:
            raise InputError(f"{name} has shape {shape}, expected 3 axes (x, y, z)")
        if shape != first:
            raise InputError(f"{name} has shape {shape} but {REQUIRED_CHANNEL} has {first}")
    if min(first) < 1:
        raise InputError(f"{REQUIRED_CHANNEL} is empty (shape {first})")
    return (int(first[0]), int(first[1]), int(first[2]))


def common_dtype(dtypes: dict[str, np.dtype]) -> np.dtype:
    for name, dtype in dtypes.items():
        if dtype.kind not in "uif":
            raise InputError(f"{name} holds {dtype}, not numbers")
    return np.result_type(*dtypes.values())


def check_spacing(value: Any, *, name: str) -> tuple[float, float, float]:
    try:
        numbers = [float(item) for item in np.asarray(value, dtype=np.float64).ravel()]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != 3 or not all(math.isfinite(item) and item > 0 for item in numbers):
        raise InputError(f"{name} is {value!r}, expected 3 positive numbers (mm)")
    return (numbers[0], numbers[1], numbers[2])


def check_origin(value: Any) -> tuple[float, float, float] | None:
    if value is None:
        return None
    try:
        numbers = [float(item) for item in np.asarray(value, dtype=np.float64).ravel()]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != 3 or not all(math.isfinite(item) for item in numbers):
        raise InputError(f"origin attribute is {value!r}, expected 3 numbers (LPS mm)")
    return (numbers[0], numbers[1], numbers[2])


def _runs(sorted_rows: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs ``[start, stop)`` of ascending distinct integers."""
    runs: list[tuple[int, int]] = []
    for row in sorted_rows:
        if runs and runs[-1][1] == row:
            runs[-1] = (runs[-1][0], row + 1)
        else:
            runs.append((row, row + 1))
    return runs


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
