"""ukbb-pipeline: UK Biobank DXA and Dixon MRI bulk files to training-ready data.

The public API:

- :func:`cohort_state`: every input's current outcome (done / failed), QC figures, flags, notes, settings and the
  package version that made its output, across every run and shard of a stage or of a whole data root.
- :func:`read_manifests`: the per-run manifests as one table (the latest row per input).

Layers (``tests/test_layout.py`` checks the import rule):

- science: ``dxa``, ``mri``, ``slices``, ``pairs.fit`` (and ``pairs.flags``) take arrays and keyword-only parameters;
  they never import ``runtime``, ``formats``, ``stages``, ``config`` or Hydra.
- runtime: ``runtime`` (the one run loop, manifests, sharding, atomic writes, fingerprints, input discovery, workers)
  handles files and units of work, never pixels: it never imports the science packages.
- formats: ``formats`` (HDF5, pickle, NIfTI, the collection), each writing and reading its own files.
- ``dicomio`` (bulk zips and DICOM members), ``download``, ``pairs.build`` / ``pairs.dataset``, ``qc``: the I/O around
  the science; ``stages`` (one short module per stage) join them.
- ``synthetic`` (the test-data generator) never imports the rest of the product.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version
from pathlib import Path
from typing import Any

try:
    __version__ = _distribution_version("ukbb-pipeline")
except PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"


def cohort_state(folder: str | Path, **options: Any) -> list[dict[str, str]]:
    """The cohort's state under ``folder`` (a data root, a stage's output folder, or its metadata folder).

    One record (a dict of strings) per input and stage; ``pandas.DataFrame(cohort_state(root))`` gives a table.
    See :func:`ukbb_pipeline.runtime.state.cohort_state` for the columns and options.
    """
    from ukbb_pipeline.runtime.state import cohort_state as _cohort_state

    return _cohort_state(folder, **options)


def read_manifests(folder: str | Path, *, latest: bool = True) -> list[dict[str, str]]:
    """A stage's manifest rows (all runs and shards); see :func:`ukbb_pipeline.runtime.manifest.read_manifests`."""
    from ukbb_pipeline.runtime.manifest import read_manifests as _read_manifests

    return _read_manifests(folder, latest=latest)
