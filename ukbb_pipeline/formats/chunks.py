"""HDF5 chunks filtered outside HDF5: shuffle and deflate done in numpy/zlib, written with ``write_direct_chunk``.

The bytes are exactly what HDF5's own shuffle and deflate filters store, so any HDF5 reader opens the result without
a plugin; encoding in worker processes leaves the process that writes the file only the writing.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


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
        return Encoded(zlib.compress(raw, self.level) if self.compression == "gzip" else raw)


@dataclass(frozen=True)
class Encoded:
    """A whole chunk, already filtered: written with ``write_direct_chunk``."""

    data: bytes
