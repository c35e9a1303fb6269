"""HDF5 chunks encoded outside HDF5 (shuffle in numpy, deflate by ISA-L) are what any HDF5 reader expects."""

from __future__ import annotations

import zlib

import h5py
import numpy as np
import pytest

from ukbb_pipeline.formats.base import Output
from ukbb_pipeline.formats.chunks import ChunkCodec
from ukbb_pipeline.formats.hdf5 import Hdf5Writer
from ukbb_pipeline.runtime.folders import StageFolders


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "volume": rng.integers(0, 4000, size=(7, 5, 9), dtype=np.uint16),
        "float_volume": rng.normal(size=(4, 3, 6)).astype(np.float32),
        "slab": rng.integers(-300, 300, size=(6, 2, 8), dtype=np.int16),
        "image": rng.integers(0, 255, size=(5, 4), dtype=np.uint8),
        "profile": rng.normal(size=11),
    }


@pytest.mark.parametrize("level", [1, 6])
def test_direct_gzip_chunks_read_back_identically_with_plain_h5py(tmp_path, level):
    arrays = _arrays()
    output = Output(arrays=arrays, attrs={"a": 1}, spacing_attr="spacing")
    path = Hdf5Writer(compression_level=level).write(StageFolders(tmp_path, "unzip_mri"), "x", output, fingerprint="f")
    with h5py.File(path) as handle:
        for name, array in arrays.items():
            dataset = handle[name]
            np.testing.assert_array_equal(dataset[()], array)
            assert dataset.dtype == array.dtype
            assert dataset.compression == "gzip" and dataset.shuffle == (array.itemsize > 1)
            if array.ndim == 3:  # one coronal row per chunk: a slab reads only its rows
                assert dataset.chunks == (array.shape[0], 1, array.shape[2])
                np.testing.assert_array_equal(dataset[:, 1:2, :], array[:, 1:2, :])


def test_a_chunk_is_a_zlib_stream_of_the_shuffled_bytes(tmp_path):
    """What HDF5's deflate and shuffle filters store: no plugin is needed to read it."""
    volume = _arrays()["volume"]
    output = Output(arrays={"v": volume}, attrs={}, spacing_attr="spacing")
    path = Hdf5Writer().write(StageFolders(tmp_path, "unzip_mri"), "x", output, fingerprint="f")
    with h5py.File(path) as handle:
        mask, raw = handle["v"].id.read_direct_chunk((0, 2, 0))
    assert mask == 0
    shuffled = np.frombuffer(zlib.decompress(raw), dtype=np.uint8).reshape(volume.itemsize, -1)
    row = shuffled.T.copy().view(np.uint16).reshape(volume.shape[0], 1, volume.shape[2])
    np.testing.assert_array_equal(row, volume[:, 2:3, :])


def test_the_codec_deflates_like_zlib_at_every_level():
    data = np.arange(5000, dtype=np.uint16) % 97
    for level in (1, 2, 3, 4, 9):
        encoded = ChunkCodec(compression="gzip", level=level, shuffle=True).encode(data).data
        unshuffled = np.frombuffer(zlib.decompress(encoded), np.uint8).reshape(2, -1).T.copy().view(np.uint16)
        np.testing.assert_array_equal(unshuffled.ravel(), data)
