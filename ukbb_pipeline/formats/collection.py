"""The paired collection on disk: one HDF5 file per shard, ``collection-shard<i>of<n>.h5``, written and read here.

Layout of a shard file (N pairs, in (eid, instance) order; plain h5py reads it):

- ``mri`` (N, 2, 700, 224) float32, channels ``fat_scan``, ``water_scan``: rows z head->feet, columns x right->left;
  ``dxa`` (N, 2, 1000, 300) float32, channels ``bone``, ``tissue``: rows head->feet, columns towards the patient's
  left. Raw resampled intensities, padding filled with each channel's minimum; chunked one item per chunk.
- ``mri_range``, ``dxa_range`` (N, 2, 2): per channel (min, max) of the resampled image before cropping; the paper's
  normalisation is ``(x - min) / (max - min + 1e-5)`` (:func:`ukbb_pipeline.pairs.fit.normalise`).
- ``eids``, ``instances``, ``splits`` (train | val | test | unassigned), ``mri_source``, ``dxa_source`` (input stems).
- ``mri_pixel_spacing``, ``dxa_pixel_spacing`` (N, 2): (row, column) mm after resampling; ``mri_source_spacing``
  (N, 3) the slab's (sx, sy, sz), ``dxa_source_spacing`` (N, 2); ``mri_slab_row`` the slab row taken.
- ``mri_origin`` (N, 3): LPS mm of MRI pixel [0, 0] (pixel (r, c) lies at x0 + c*column mm, y0, z0 - r*row mm);
  ``dxa_origin`` (N, 2): (row, column) mm of DXA pixel [0, 0] from the centre of the stored image's pixel [0, 0].
- The upstream flags of each pair (format version 2): ``swapped_stations`` (text, e.g. ``"3"``; empty: none),
  ``swap_fixed`` (1 when unzip_mri swapped them back), ``max_seam_mismatch`` (NaN: not recorded) and ``flags``
  (text: what is worth a look, empty when nothing).
- Root attributes: the settings (``target_spacing``, ``scaling``, channels, split method and settings), the shard,
  ``n_failed``, ``n_left_out`` (pairs left out for their flags: they are named in the manifest only, so that the file
  names no one it does not hold), ``settings_fingerprint`` and ``content_fingerprint``.

Images are written through :mod:`ukbb_pipeline.formats.chunks` (filtered in the workers, written as whole chunks).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ukbb_pipeline.formats.chunks import ChunkCodec, Encoded
from ukbb_pipeline.runtime.atomic import atomic_file

log = logging.getLogger(__name__)

FORMAT = "ukbb-pipeline paired collection"
FORMAT_VERSION = 2  # 2: per-pair upstream flags (swapped_stations, swap_fixed, max_seam_mismatch, flags)
SOURCE_NAME_BYTES = 64
FLAG_BYTES = 256
SHARD_PATTERN = re.compile(r"^collection-shard(\d+)of(\d+)\.h5$")
# Attributes that must agree between the shards of one collection.
SHARED_ATTRS = ("format", "format_version", "mri_channels", "dxa_channels", "target_spacing", "scaling",
                "split_method", "split_settings", "shard_count")
SMALL_DATASETS: dict[str, tuple[tuple[int, ...], Any]] = {
    "eids": ((), np.int64),
    "instances": ((), np.int32),
    "splits": ((), "S16"),
    "mri_source": ((), f"S{SOURCE_NAME_BYTES}"),
    "dxa_source": ((), f"S{SOURCE_NAME_BYTES}"),
    "mri_source_spacing": ((3,), np.float32),
    "dxa_source_spacing": ((2,), np.float32),
    "mri_pixel_spacing": ((2,), np.float32),
    "dxa_pixel_spacing": ((2,), np.float32),
    "mri_origin": ((3,), np.float32),
    "dxa_origin": ((2,), np.float32),
    "mri_slab_row": ((), np.int32),
    "swapped_stations": ((), "S32"),
    "swap_fixed": ((), np.uint8),
    "max_seam_mismatch": ((), np.float32),
    "flags": ((), f"S{FLAG_BYTES}"),
}
FLAG_DATASETS = ("swapped_stations", "swap_fixed", "max_seam_mismatch", "flags")


def shard_file_name(index: int, count: int) -> str:
    return f"collection-shard{index}of{count}.h5"


def text(value: str, size: int) -> bytes:
    """``value`` as the fixed-size bytes of a text dataset (cut to ``size`` bytes)."""
    return value.encode()[:size]


class CollectionWriter:
    """Writes one shard file atomically: rows by index as they come (in any order), gaps of failed pairs closed."""

    def __init__(self, final: Path, *, scratch_dir: Path, n: int, mri_channels: Sequence[str],
                 dxa_channels: Sequence[str], mri_shape: tuple[int, int], dxa_shape: tuple[int, int],
                 codec: ChunkCodec, locking: bool | None = None):
        self.final = final
        self.codec = codec
        self._stack = contextlib.ExitStack()
        tmp = self._tmp = self._stack.enter_context(atomic_file(final, scratch_dir=scratch_dir))
        kwargs = {} if locking is None else {"locking": locking}
        self.handle = self._stack.enter_context(h5py.File(tmp, "w", **kwargs))
        self.datasets = self._create(n, mri_channels=mri_channels, dxa_channels=dxa_channels,
                                     mri_shape=mri_shape, dxa_shape=dxa_shape)
        self.written: list[int] = []

    def _create(self, n: int, *, mri_channels: Sequence[str], dxa_channels: Sequence[str],
                mri_shape: tuple[int, int], dxa_shape: tuple[int, int]) -> dict[str, h5py.Dataset]:
        """Preallocate every per-pair dataset with ``n`` rows (resizable on axis 0)."""
        compression: dict[str, Any] = {}
        if self.codec.compression:
            compression = {"compression": self.codec.compression, "shuffle": self.codec.shuffle}
            if self.codec.compression == "gzip":
                compression["compression_opts"] = self.codec.level
        images = {"mri": (len(mri_channels), *mri_shape), "dxa": (len(dxa_channels), *dxa_shape)}
        handle = self.handle
        datasets = {}
        for name, shape in images.items():
            datasets[name] = handle.create_dataset(
                name, shape=(n, *shape), maxshape=(None, *shape), chunks=(1, *shape), dtype=np.float32, **compression
            )
            datasets[f"{name}_range"] = handle.create_dataset(
                f"{name}_range", shape=(n, shape[0], 2), maxshape=(None, shape[0], 2), dtype=np.float32
            )
        for name, (row_shape, dtype) in SMALL_DATASETS.items():
            datasets[name] = handle.create_dataset(name, shape=(n, *row_shape), maxshape=(None, *row_shape),
                                                   dtype=dtype, chunks=(max(1, min(n, 1024)), *row_shape))
        datasets["mri"].attrs["channels"] = list(mri_channels)
        datasets["dxa"].attrs["channels"] = list(dxa_channels)
        datasets["mri_origin"].attrs["meaning"] = (
            "LPS mm of MRI pixel [0, 0]; rows run head->feet (z falls), columns right->left (x rises)"
        )
        datasets["dxa_origin"].attrs["meaning"] = (
            "(row, column) mm of DXA pixel [0, 0] from the centre of the stored image's pixel [0, 0]"
        )
        return datasets

    def write(self, index: int, values: dict[str, Any]) -> None:
        """Write row ``index`` (images may come encoded, see :meth:`ChunkCodec.encode`)."""
        for name, value in values.items():
            dataset = self.datasets[name]
            if isinstance(value, Encoded):
                dataset.id.write_direct_chunk((index, *(0,) * (dataset.ndim - 1)), value.data)
            else:
                dataset[index] = value
        self.written.append(index)

    def close(self, attrs: dict[str, Any]) -> None:
        """Close the gaps, set the root attributes and move the file into place."""
        self._compact(sorted(self.written))
        for key, value in {"format": FORMAT, "format_version": FORMAT_VERSION, **attrs,
                           "created_at": time.strftime("%Y-%m-%dT%H:%M:%S")}.items():
            self.handle.attrs[key] = _attr(value)
        try:
            self._stack.close()
        except BaseException:
            self.abandon()
            raise
        self.datasets = {}

    def abandon(self) -> None:
        """Drop the unfinished file (nothing appears where readers look).

        On a full disk HDF5 cannot close a file it still has to write to, and an object left for the garbage
        collector crashed the interpreter at exit (exit 139). So the scratch file is emptied first (its space comes
        back), then every HDF5 object is closed here and forgotten.
        """
        with contextlib.suppress(OSError):
            os.truncate(self._tmp, 0)
        with contextlib.suppress(Exception):
            self.handle.close()
        self.datasets = {}
        with contextlib.suppress(Exception):
            self._stack.__exit__(RuntimeError, RuntimeError("abandoned"), None)

    def _compact(self, written: list[int]) -> None:
        """Close the gaps left by failed pairs, keeping (eid, instance) order, and trim every dataset."""
        for position, index in enumerate(written):
            if position != index:
                for dataset in self.datasets.values():
                    if dataset.chunks is not None and dataset.chunks[0] == 1:  # one item per chunk: move the bytes
                        zeros = (0,) * (dataset.ndim - 1)
                        mask, data = dataset.id.read_direct_chunk((index, *zeros))
                        dataset.id.write_direct_chunk((position, *zeros), data, filter_mask=mask)
                    else:
                        dataset[position] = dataset[index]
        for dataset in self.datasets.values():
            dataset.resize(len(written), axis=0)


def stored_attrs(path: Path, *, locking: bool | None = None) -> dict[str, Any] | None:
    """The root attributes of a shard file, or None when it is absent or does not open."""
    if not path.is_file():
        return None
    kwargs = {} if locking is None else {"locking": locking}
    try:
        with h5py.File(path, "r", **kwargs) as handle:
            return {key: _plain(value) for key, value in handle.attrs.items()}
    except (OSError, KeyError, ValueError):
        return None


def stored_visits(path: Path, *, locking: bool | None = None) -> set[tuple[int, int]]:
    """The (eid, instance) of every pair a shard file holds (empty when it does not open)."""
    kwargs = {} if locking is None else {"locking": locking}
    try:
        with h5py.File(path, "r", **kwargs) as handle:
            return {(int(e), int(i)) for e, i in zip(handle["eids"][()], handle["instances"][()], strict=True)}
    except (OSError, KeyError, ValueError):
        return set()


def collection_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """The shard files of a collection: a folder (all ``collection-shard*of<n>.h5`` in it), one file, or a list.

    A folder holding shard files of two shard counts (a stale earlier run) is refused, since their pairs overlap.
    """
    if not isinstance(source, (str, Path)):
        return [Path(p) for p in source]
    path = Path(source)
    if not path.is_dir():
        if not path.is_file():
            raise FileNotFoundError(f"collection {path} does not exist")
        return [path]
    numbered = {p: SHARD_PATTERN.match(p.name) for p in path.iterdir()}
    shards = {p: (int(m.group(1)), int(m.group(2))) for p, m in numbered.items() if m}
    if not shards:
        raise FileNotFoundError(f"no collection-shard*.h5 files in {path}")
    counts = {count for _, count in shards.values()}
    if len(counts) > 1:
        raise ValueError(f"{path} holds collections of {len(counts)} shard counts "
                         f"({', '.join(map(str, sorted(counts)))}): remove the stale shard files or pass the files")
    count = counts.pop()
    missing = sorted(set(range(count)) - {index for index, _ in shards.values()})
    if missing:
        log.warning("collection in %s lacks shard(s) %s of %d: reading the %d present",
                    path, ", ".join(map(str, missing[:10])), count, len(shards))
    return sorted(shards, key=lambda p: shards[p][0])


def other_shard_counts(folder: Path, count: int) -> list[str]:
    """Shard files in ``folder`` made with another shard count (stale: a reader given the folder refuses them)."""
    return sorted(p.name for p in folder.glob("collection-shard*of*.h5") if not p.name.endswith(f"of{count}.h5"))


def check_shard(path: Path, handle: h5py.File, reference: dict[str, Any] | None) -> dict[str, Any]:
    """The shard's shared attributes, checked against the first shard's."""
    attrs = {name: _plain(handle.attrs.get(name)) for name in SHARED_ATTRS}
    if attrs["format"] is None or "mri" not in handle:
        raise ValueError(f"{path} is not a paired collection (no format attribute or no 'mri' dataset)")
    if reference is not None:
        differing = [name for name in SHARED_ATTRS if attrs[name] != reference[name]]
        if differing:
            raise ValueError(f"{path} was collected with other settings than the first shard "
                             f"({', '.join(differing)})")
    return attrs


def read_flags(handle: h5py.File, row: int) -> dict[str, Any]:
    """The upstream flags of one pair (empty values for a format-1 file, which did not record them)."""
    if "flags" not in handle:
        return {"swapped_stations": [], "swap_fixed": False, "max_seam_mismatch": float("nan"), "flags": ""}
    swapped = handle["swapped_stations"][row].decode()
    return {
        "swapped_stations": [int(token) for token in swapped.split()],
        "swap_fixed": bool(handle["swap_fixed"][row]),
        "max_seam_mismatch": float(handle["max_seam_mismatch"][row]),
        "flags": handle["flags"][row].decode(),
    }


def _attr(value: Any) -> Any:
    if isinstance(value, dict) or (isinstance(value, list) and not all(isinstance(v, str) for v in value)):
        return json.dumps(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
