"""Stage ``extract_slices``: being written (see the open issue)."""

from __future__ import annotations


def run(config, *, options, writer, qc=True):
    raise NotImplementedError("stage extract_slices is not written yet")
