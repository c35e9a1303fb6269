"""Reading the stitched MRI volumes that unzip_mri writes, a few coronal rows at a time.

An input is ``<stem>.h5`` (datasets ``fat_scan``, ``water_scan``, maybe ``in_scan``, ``opp_scan``, axes (x, y, z);
attributes ``spacing`` and ``origin``) or ``<stem>.pkl`` (the original scripts' layout: the images plus
``pixel_spacing``; the origin is in the JSON sidecar unzip_mri keeps in ``pipeline-unzip-mri/sidecars/``). HDF5
volumes are chunked one coronal row (axis 1) per chunk, so reading a row decompresses that row only; each row is
read once and cached, whichever channel or caller asks for it again.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.formats.pickle import safe_load
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


class Hdf5Volume(MriVolume):
    """A ``<stem>.h5`` volume: rows are read straight from the file, decompressing only their chunks."""

    def __init__(self, path: Path, *, locking: bool | None = None):
        try:
            self._file = h5py.File(path, "r") if locking is None else h5py.File(path, "r", locking=locking)
        except OSError as error:
            raise InputError(f"not a readable HDF5 file ({_first_line(error)})") from error
        try:
            channels = _channels([name for name, item in self._file.items() if isinstance(item, h5py.Dataset)])
            datasets = {name: self._file[name] for name in channels}
            shape = _common_shape({name: dataset.shape for name, dataset in datasets.items()})
            attrs = self._file.attrs
            spacing = _spacing(attrs.get("spacing"), name="spacing attribute")
            origin = _origin(attrs.get("origin"))
            dtype = _common_dtype({name: dataset.dtype for name, dataset in datasets.items()})
        except BaseException:
            self._file.close()
            raise
        self._datasets = datasets
        super().__init__(VolumeInfo(channels=channels, shape=shape, spacing=spacing, origin=origin, dtype=dtype))

    def _read(self, channel: str, start: int, stop: int) -> np.ndarray:
        try:
            return self._datasets[channel][:, start:stop, :]
        except OSError as error:  # a corrupt chunk: the file is bad, not the disk
            raise InputError(f"{channel} rows {start}..{stop - 1} do not decompress ({_first_line(error)})") from error

    def close(self) -> None:
        super().close()
        self._file.close()


class PickleVolume(MriVolume):
    """A ``<stem>.pkl`` volume (loaded whole, as pickles must be); float images are handed out as float32."""

    def __init__(self, path: Path, *, origin: tuple[float, float, float] | None):
        try:
            payload = safe_load(path)
        except OSError:
            raise
        except Exception as error:  # a truncated or foreign pickle fails in many ways; all mean a bad input
            raise InputError(f"not a readable pickle of arrays ({_first_line(error)})") from error
        channels = _channels([key for key, value in payload.items() if isinstance(value, np.ndarray)])
        images = {name: np.asarray(payload[name]) for name in channels}
        shape = _common_shape({name: image.shape for name, image in images.items()})
        if "pixel_spacing" not in payload:
            raise InputError("the pickle has no pixel_spacing")
        spacing = _spacing(payload["pixel_spacing"], name="pixel_spacing")
        dtype = _common_dtype({name: image.dtype for name, image in images.items()})
        if dtype.kind == "f":
            dtype = np.dtype(np.float32)
        self._images = images
        super().__init__(VolumeInfo(channels=channels, shape=shape, spacing=spacing, origin=origin, dtype=dtype))

    def _read(self, channel: str, start: int, stop: int) -> np.ndarray:
        return self._images[channel][:, start:stop, :]

    def close(self) -> None:
        super().close()
        self._images = {}


def open_volume(path: Path, *, locking: bool | None = None) -> MriVolume:
    """Open ``<stem>.h5`` or ``<stem>.pkl``; bad inputs raise :class:`InputError` with a one-line reason.

    ``locking`` is HDF5 file locking (None: the library default; false on file systems where locking fails).
    """
    path = Path(path)
    if path.suffix == ".h5":
        return Hdf5Volume(path, locking=locking)
    if path.suffix == ".pkl":
        return PickleVolume(path, origin=pickle_origin(path))
    raise InputError(f"{path.name}: not an .h5 or .pkl volume")


def pickle_origin(path: Path) -> tuple[float, float, float] | None:
    """The origin recorded for a pickled volume or slab in the sidecar of the stage that wrote it, or None."""
    stem = path.name.split(".", 1)[0]
    for sidecar in sorted(path.parent.glob(f"pipeline-*/sidecars/{stem}.json")):
        try:
            return _origin(json.loads(sidecar.read_text())["attrs"].get("origin"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, InputError):
            continue
    return None


def _channels(names: list[str]) -> tuple[str, ...]:
    present = tuple(channel for channel in CHANNELS if channel in names)
    if REQUIRED_CHANNEL not in present:
        found = ", ".join(sorted(names)) or "nothing"
        raise InputError(f"no {REQUIRED_CHANNEL} image in the volume (found {found})")
    return present


def _common_shape(shapes: dict[str, tuple[int, ...]]) -> tuple[int, int, int]:
    first = shapes[REQUIRED_CHANNEL]
    for name, shape in shapes.items():
        if len(shape) != 3:
            raise InputError(f"{name} has shape {shape}, expected 3 axes (x, y, z)")
        if shape != first:
            raise InputError(f"{name} has shape {shape} but {REQUIRED_CHANNEL} has {first}")
    if min(first) < 1:
        raise InputError(f"{REQUIRED_CHANNEL} is empty (shape {first})")
    return (int(first[0]), int(first[1]), int(first[2]))


def _common_dtype(dtypes: dict[str, np.dtype]) -> np.dtype:
    for name, dtype in dtypes.items():
        if dtype.kind not in "uif":
            raise InputError(f"{name} holds {dtype}, not numbers")
    return np.result_type(*dtypes.values())


def _spacing(value: Any, *, name: str) -> tuple[float, float, float]:
    try:
        numbers = [float(item) for item in np.asarray(value, dtype=np.float64).ravel()]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != 3 or not all(math.isfinite(item) and item > 0 for item in numbers):
        raise InputError(f"{name} is {value!r}, expected 3 positive numbers (mm)")
    return (numbers[0], numbers[1], numbers[2])


def _origin(value: Any) -> tuple[float, float, float] | None:
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


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
