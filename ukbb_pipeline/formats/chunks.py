"""HDF5 chunks filtered outside HDF5: shuffle done in numpy, deflate by ISA-L, written with ``write_direct_chunk``.

The one chunk encoder of every HDF5 output (volumes and slabs in ``formats.hdf5``, collections in ``collect``). The
bytes are what HDF5's own shuffle and deflate filters store (a zlib stream of the shuffled bytes), so any HDF5 reader
opens the result without a plugin. ISA-L's levels 1-3 (the ``isal`` package; zlib when it is absent or for levels
above 3) deflate about 4x faster than zlib's level 1 for files ~2% larger. Encoding in worker processes leaves the
process that writes a collection only the writing.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_fast_deflate: Callable[[bytes, int], bytes] | None
try:
    from isal import isal_zlib

    _fast_deflate = isal_zlib.compress
except ImportError:  # pragma: no cover - isal is a dependency
    _fast_deflate = None


@dataclass(frozen=True)
class ChunkCodec:
    """How one item's image chunk is stored. gzip (and no compression) is done in the workers, so that the process
    writing the shard file only writes; lzf is left to HDF5 in the writing process."""

    compression: str | None
    level: int
    shuffle: bool

    @property
    def in_worker(self) -> bool:
        return self.compression in (None, "gzip")

    def encode(self, array: np.ndarray) -> Encoded:
        """The chunk's bytes as HDF5's shuffle and deflate filters would store them."""
        data = np.ascontiguousarray(array)
        if self.compression and self.shuffle and data.itemsize > 1:
            raw = data.view(np.uint8).reshape(-1, data.itemsize).T.tobytes()  # the shuffle filter's byte order
        else:
            raw = data.tobytes()
        return Encoded(deflate(raw, self.level) if self.compression == "gzip" else raw)


@dataclass(frozen=True)
class Encoded:
    """A whole chunk, already filtered: written with ``write_direct_chunk``."""

    data: bytes


def deflate(raw: bytes, level: int) -> bytes:
    """A zlib stream of ``raw`` (what HDF5's deflate filter stores): ISA-L for levels 1-3, else zlib."""
    if _fast_deflate is not None and 1 <= level <= 3:
        return _fast_deflate(raw, level)
    return zlib.compress(raw, level)
