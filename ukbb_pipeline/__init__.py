"""ukbb-pipeline: UK Biobank DXA and Dixon MRI bulk files to training-ready data.

Command line: ``ukbb-pipeline --help``. Python, one file at a time (see :mod:`ukbb_pipeline.api`):
:func:`stitch_mri_zip`, :func:`read_dxa_zip`, :func:`open_volume`; the paired training data:
:class:`PairedDataset`; every run's manifests as one table: :func:`read_manifests`.
The names are imported on first use, so ``import ukbb_pipeline`` (and ``--help``) stays light.
The cohort's state across every run and shard (outcomes, QC figures, flags, the version that made each output):
:func:`cohort_state` (typed records), :func:`cohort_table` (the same as a pandas DataFrame).

Layers (``tests/test_layout.py`` checks the import rule):

- science: ``dxa``, ``mri``, ``slices``, ``pairs.fit`` (and ``pairs.flags``) take arrays and keyword-only parameters;
  they never import ``runtime``, ``formats``, ``stages``, ``config`` or Hydra.
- runtime: ``runtime`` (the one run loop, manifests, sharding, atomic writes, fingerprints, input discovery, workers)
  handles files and units of work, never pixels: it never imports the science packages.
- formats: ``formats`` (HDF5, pickle, NIfTI, the collection), each writing and reading its own files.
- ``dicomio`` (bulk zips and DICOM members), ``download``, ``pairs.dataset`` (the paired collection for training),
  ``qc``: the I/O around the science; ``stages`` (one short module per stage, or a package when it has helpers, as
  ``stages.collect``) join them.
- ``registry`` (the table of stages and the list of writers) and ``flags`` (the flag vocabulary) are leaves every
  layer may read.
- ``synthetic`` (the test-data generator) never imports the rest of the product.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version
from typing import Any

try:
    __version__ = _distribution_version("ukbb-pipeline")
except PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"

__all__ = ["PairedDataset", "cohort_state", "cohort_table", "open_volume", "read_dxa_zip", "read_manifests",
           "stitch_mri_zip"]

_HOMES = {
    "stitch_mri_zip": "ukbb_pipeline.api",
    "read_dxa_zip": "ukbb_pipeline.api",
    "open_volume": "ukbb_pipeline.api",
    "read_manifests": "ukbb_pipeline.runtime.manifest",
    "cohort_state": "ukbb_pipeline.runtime.cohort",
    "cohort_table": "ukbb_pipeline.runtime.cohort",
    "PairedDataset": "ukbb_pipeline.pairs.dataset",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'ukbb_pipeline' has no attribute {name!r}")
