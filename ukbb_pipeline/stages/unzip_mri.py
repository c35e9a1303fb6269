"""Stage ``unzip_mri``: being written (see the open issue)."""

from __future__ import annotations


def run(config, *, options, writer, qc=True):
    raise NotImplementedError("stage unzip_mri is not written yet")
