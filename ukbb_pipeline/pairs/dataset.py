"""Reading a paired collection (``stage=collect``) lazily, with or without PyTorch.

>>> data = PairedDataset("outputs/demo/collection", split="train")      # doctest: +SKIP
>>> item = data[0]; item["mri_img"].shape, item["dxa_img"].shape         # doctest: +SKIP
((2, 700, 224), (2, 1000, 300))
>>> loader = torch.utils.data.DataLoader(data.torch_dataset(), batch_size=20, num_workers=4)  # doctest: +SKIP

Items are dicts with the keys of the paper's loader (``mri_img`` [fat, water], ``dxa_img`` [bone, tissue],
``mri_filename``, ``dxa_filename``) plus ``eid``, ``instance``, ``split`` and ``flags`` (what unzip_mri flagged in
the MRI, one line; :meth:`PairedDataset.flags` gives the details). By default images are min-max
normalised per channel exactly as the paper's loader does it (padding is 0); ``normalise=False`` gives the raw
resampled intensities. Only the small per-pair tables are read when the dataset is opened; images are read on demand,
through one file handle per shard per process (safe with DataLoader workers, forked or spawned).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ukbb_pipeline.formats.collection import check_shard, collection_files, read_flags
from ukbb_pipeline.pairs.fit import SPLITS, UNASSIGNED, normalise

log = logging.getLogger(__name__)

SPLIT_CHOICES = ("all", *SPLITS, UNASSIGNED)


class PairedDataset:
    """The pairs of one collection (all its shards), optionally of one split; a map-style dataset of numpy arrays."""

    def __init__(self, source: str | Path | Sequence[str | Path], *, split: str = "all", normalise: bool = True):
        if split not in SPLIT_CHOICES:
            raise ValueError(f"split must be one of {', '.join(SPLIT_CHOICES)}, got {split!r}")
        self.paths = collection_files(source)
        self.split = split
        self.normalise = normalise
        files, rows, eids, instances, splits, reference = [], [], [], [], [], None
        for number, path in enumerate(self.paths):
            with h5py.File(path, "r") as handle:
                reference = check_shard(path, handle, reference)
                table_splits = handle["splits"][()].astype(str)
                keep = np.arange(len(table_splits)) if split == "all" else np.flatnonzero(table_splits == split)
                files.append(np.full(keep.size, number, dtype=np.int32))
                rows.append(keep)
                eids.append(handle["eids"][()][keep])
                instances.append(handle["instances"][()][keep])
                splits.append(table_splits[keep])
        self.attrs: dict[str, Any] = reference or {}
        self._file = np.concatenate(files) if files else np.zeros(0, np.int32)
        self._row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        self.eids = np.concatenate(eids) if eids else np.zeros(0, np.int64)
        self.instances = np.concatenate(instances) if instances else np.zeros(0, np.int32)
        self.splits = np.concatenate(splits) if splits else np.zeros(0, str)
        self._check_unique()
        self._handles: dict[int, h5py.File] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self._row.size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs")
        index = int(index) % len(self)
        handle = self._handle(int(self._file[index]))
        row = int(self._row[index])
        mri = handle["mri"][row]
        dxa = handle["dxa"][row]
        if self.normalise:
            mri = normalise(mri, handle["mri_range"][row])
            dxa = normalise(dxa, handle["dxa_range"][row])
        return {
            "mri_img": mri,
            "dxa_img": dxa,
            "eid": int(self.eids[index]),
            "instance": int(self.instances[index]),
            "split": str(self.splits[index]),
            "mri_filename": handle["mri_source"][row].decode(),
            "dxa_filename": handle["dxa_source"][row].decode(),
            "flags": read_flags(handle, row)["flags"],
        }

    def geometry(self, index: int) -> dict[str, np.ndarray]:
        """Where item ``index``'s pixels are: spacings, origins and the source spacings (see the collection's docs)."""
        handle = self._handle(int(self._file[index]))
        row = int(self._row[index])
        names = ("mri_pixel_spacing", "dxa_pixel_spacing", "mri_origin", "dxa_origin", "mri_source_spacing",
                 "dxa_source_spacing", "mri_range", "dxa_range")
        return {name: handle[name][row] for name in names}

    def flags(self, index: int) -> dict[str, Any]:
        """What unzip_mri flagged in item ``index``'s MRI: ``swapped_stations``, ``swap_fixed``,
        ``max_seam_mismatch`` (NaN: not recorded) and ``flags`` (one line, empty when nothing)."""
        return read_flags(self._handle(int(self._file[index])), int(self._row[index]))

    def torch_dataset(self):
        """This dataset as a ``torch.utils.data.Dataset`` returning tensors (needs PyTorch)."""
        return _torch_class()(self)

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    def __enter__(self) -> PairedDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers get no open handles
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    def _handle(self, number: int) -> h5py.File:
        if os.getpid() != self._pid:  # a forked worker must not use its parent's handles
            self._handles = {}
            self._pid = os.getpid()
        handle = self._handles.get(number)
        if handle is None:
            handle = self._handles[number] = h5py.File(self.paths[number], "r")
        return handle

    def _check_unique(self) -> None:
        keys = self.eids.astype(np.int64) * 100 + self.instances
        unique, counts = np.unique(keys, return_counts=True)
        if np.any(counts > 1):
            repeated = unique[counts > 1][:5]
            shown = ", ".join(f"{key // 100} instance {key % 100}" for key in repeated)
            raise ValueError(f"the same visit appears in more than one shard file ({shown}): mixed collections?")


def _make_torch_class() -> type:
    from torch import from_numpy
    from torch.utils.data import Dataset

    class TorchPairedDataset(Dataset):
        """A :class:`PairedDataset` as a PyTorch dataset: the same items with images as float32 tensors."""

        def __init__(self, pairs: PairedDataset):
            self.pairs = pairs

        def __len__(self) -> int:
            return len(self.pairs)

        def __getitem__(self, index: int) -> dict[str, Any]:
            item = self.pairs[index]
            item["mri_img"] = from_numpy(item["mri_img"])
            item["dxa_img"] = from_numpy(item["dxa_img"])
            return item

    TorchPairedDataset.__module__ = __name__
    TorchPairedDataset.__qualname__ = "TorchPairedDataset"  # so that pickle (spawned workers) finds it here
    return TorchPairedDataset


def _torch_class() -> type:
    cls = globals().get("TorchPairedDataset")
    if cls is None:
        cls = globals()["TorchPairedDataset"] = _make_torch_class()
    return cls


def __getattr__(name: str) -> Any:
    """``TorchPairedDataset`` is built on first use, so that importing this module never imports torch."""
    if name == "TorchPairedDataset":
        return _torch_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
