"""HDF5 outputs: one file per input, datasets at the root, metadata as root attributes.

Only filters built into every h5py (gzip, lzf, shuffle) are used, so plain h5py reads the files. 3-D volumes are
chunked one coronal slice (axis 1) at a time, so extracting a slab decompresses only the rows it needs. gzip chunks
are shuffled and deflated by :class:`~ukbb_pipeline.formats.chunks.ChunkCodec` (ISA-L) and written with
``write_direct_chunk`` into datasets declared gzip + shuffle: the same bytes HDF5's filters would store, made 4x faster.

The file is built in memory (HDF5's core driver) and its bytes written with ordinary, checked file I/O: HDF5 reports
a write that fails at close (a full disk) only as an ignored exception, which would leave a whole-looking file with
zeros for data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ukbb_pipeline import __version__
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.formats.chunks import ChunkCodec
from ukbb_pipeline.formats.volumes import (
    MriVolume,
    VolumeInfo,
    check_channels,
    check_origin,
    check_spacing,
    common_dtype,
    common_shape,
    first_line,
)
from ukbb_pipeline.runtime.atomic import atomic_file
from ukbb_pipeline.runtime.folders import StageFolders


class Hdf5Writer(Writer):
    name = "hdf5"
    suffix = ".h5"

    def __init__(
        self,
        *,
        compression: str | None = "gzip",
        compression_level: int = 1,
        shuffle: bool = True,
        file_locking: bool | None = None,
    ):
        self.compression = compression
        self.compression_level = compression_level
        self.shuffle = shuffle
        self.file_locking = file_locking

    def settings(self) -> dict[str, Any]:
        return {"writer": self.name}  # compression changes bytes, not content: no redo needed

    def open(self, path: Path, mode: str = "r") -> h5py.File:
        """Open ``path`` honouring the configured file locking (off on NFS/Lustre)."""
        if self.file_locking is None:
            return h5py.File(path, mode)
        return h5py.File(path, mode, locking=self.file_locking)

    def write(
        self, folders: StageFolders, stem: str, output: Output, *, fingerprint: str, nested: bool = False
    ) -> Path:
        final = self.output_path(folders, stem)
        with h5py.File(f"{stem}.h5", "w", driver="core", backing_store=False) as handle:
            for name, array in output.arrays.items():
                self._write_dataset(handle, name, array)
            for key, value in output.attrs.items():
                handle.attrs[key] = _attr_value(value)
            handle.attrs["settings_fingerprint"] = fingerprint
            handle.attrs["pipeline_version"] = __version__
            handle.flush()
            image = handle.id.get_file_image()
        with atomic_file(final, scratch_dir=folders.scratch) as tmp:
            with open(tmp, "wb") as raw:
                raw.write(image)
                raw.flush()
                os.fsync(raw.fileno())  # a full disk or a quota shows here at the latest, before the rename
        return final

    def stored_fingerprint(self, folders: StageFolders, stem: str, *, nested: bool = False) -> str | None:
        path = self.output_path(folders, stem)
        if not path.is_file():
            return None
        try:
            with self.open(path) as handle:
                value = handle.attrs.get("settings_fingerprint")
                if value is None or len(handle.keys()) == 0:
                    return None
                return value.decode() if isinstance(value, bytes) else str(value)
        except (OSError, KeyError, RuntimeError):
            return None

    def _write_dataset(self, handle: h5py.File, name: str, array: np.ndarray) -> None:
        """One dataset: gzip chunks encoded by the codec and written directly, anything else by HDF5 itself."""
        options = self._dataset_options(array)
        direct = (
            self.compression == "gzip"
            and "chunks" in options
            and array.ndim >= 1
            and array.size > 0
            and array.dtype.kind in "iuf"
            and array.dtype.isnative
        )
        if not direct:
            handle.create_dataset(name, data=array, **options)
            return
        dataset = handle.create_dataset(name, shape=array.shape, dtype=array.dtype, **options)
        codec = ChunkCodec(compression="gzip", level=self.compression_level, shuffle=bool(options["shuffle"]))
        chunks = dataset.chunks
        for corner in np.ndindex(*(-(-n // c) for n, c in zip(array.shape, chunks, strict=True))):
            offset = tuple(i * c for i, c in zip(corner, chunks, strict=True))
            block = array[tuple(slice(o, o + c) for o, c in zip(offset, chunks, strict=True))]
            if block.shape != chunks:  # an edge chunk: HDF5 stores whole chunks, padded
                padded = np.zeros(chunks, dtype=array.dtype)
                padded[tuple(slice(0, n) for n in block.shape)] = block
                block = padded
            dataset.id.write_direct_chunk(offset, codec.encode(block).data)

    def _dataset_options(self, array: np.ndarray) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if array.ndim == 3:
            options["chunks"] = (array.shape[0], 1, array.shape[2])
        elif array.size:
            options["chunks"] = array.shape
        if self.compression and array.size:
            options["compression"] = self.compression
            if self.compression == "gzip":
                options["compression_opts"] = self.compression_level
            options["shuffle"] = self.shuffle and array.itemsize > 1
        return options


def _attr_value(value: Any) -> Any:
    """HDF5 attributes hold numbers, strings and arrays (a list of strings as an array of UTF-8 strings, e.g.
    ``swapped_regions``); other values are stored as JSON text."""
    if isinstance(value, (str, int, float, np.ndarray, np.generic)):
        return value
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(item, str) for item in value):
            return np.array(value, dtype=h5py.string_dtype())
        array = np.asarray(value)
        if array.dtype.kind in "iufb" or array.size == 0:
            return array if array.size else np.zeros(0, dtype=np.int64)
    return json.dumps(value)


# ---------------------------------------------------------------------------------------------------------------------
# Reading: volumes and slabs a few rows at a time, DXA images, attributes.


def _open(path: Path, locking: bool | None = None) -> h5py.File:
    try:
        return h5py.File(path, "r") if locking is None else h5py.File(path, "r", locking=locking)
    except OSError as error:
        raise InputError(f"not a readable HDF5 file ({first_line(error)})") from error


class Hdf5Volume(MriVolume):
    """A ``<stem>.h5`` volume: rows are read straight from the file, decompressing only their chunks."""

    def __init__(self, path: Path, *, locking: bool | None = None):
        self._file = _open(path, locking)
        try:
            channels = check_channels([name for name, item in self._file.items() if isinstance(item, h5py.Dataset)])
            datasets = {name: self._file[name] for name in channels}
            shape = common_shape({name: dataset.shape for name, dataset in datasets.items()})
            attrs = {key: _plain(value) for key, value in self._file.attrs.items()}
            spacing = check_spacing(attrs.get("spacing"), name="spacing attribute")
            origin = check_origin(attrs.get("origin"))
            dtype = common_dtype({name: dataset.dtype for name, dataset in datasets.items()})
        except BaseException:
            self._file.close()
            raise
        self._datasets = datasets
        super().__init__(VolumeInfo(channels=channels, shape=shape, spacing=spacing, origin=origin, dtype=dtype,
                                    attrs=attrs))

    def _read(self, channel: str, start: int, stop: int) -> np.ndarray:
        try:
            return self._datasets[channel][:, start:stop, :]
        except OSError as error:  # a corrupt chunk: the file is bad, not the disk
            raise InputError(f"{channel} rows {start}..{stop - 1} do not decompress ({first_line(error)})") from error

    def close(self) -> None:
        super().close()
        self._file.close()


def make_writer(config: Any) -> Hdf5Writer:
    """The writer ``writer=hdf5`` configures (:class:`~ukbb_pipeline.config.Hdf5WriterConfig`)."""
    return Hdf5Writer(compression=config.compression, compression_level=config.compression_level,
                      shuffle=config.shuffle, file_locking=config.file_locking)


def find(path: Path) -> Path | None:
    """The output a folder entry is: ``<stem>.h5``."""
    return path if path.suffix == Hdf5Writer.suffix else None


def open_volume(path: Path, *, locking: bool | None = None) -> MriVolume:
    return Hdf5Volume(path, locking=locking)


def read_images(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named datasets of ``<stem>.h5`` (an :class:`InputError` names a missing one)."""
    with _open(path) as handle:
        missing = [name for name in names if not isinstance(handle.get(name), h5py.Dataset)]
        if missing:
            raise InputError(f"has no dataset {missing[0]!r} (it has {', '.join(sorted(handle)) or 'none'})")
        return {name: handle[name][()] for name in names}


def read_attrs(path: Path) -> dict[str, Any]:
    """The root attributes of ``<stem>.h5`` as plain values."""
    with _open(path) as handle:
        return {key: _plain(value) for key, value in handle.attrs.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
