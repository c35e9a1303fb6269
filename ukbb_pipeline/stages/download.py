"""Stage ``download``: being written (see the open issue)."""

from __future__ import annotations


def run(config, *, options, writer, qc=True):
    raise NotImplementedError("stage download is not written yet")
