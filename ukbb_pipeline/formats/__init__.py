"""Output formats, each writing and reading its own files: HDF5 (:mod:`.hdf5`), pickle (:mod:`.pickle`), NIfTI
(:mod:`.nifti`), listed once in :data:`ukbb_pipeline.registry.WRITERS`; the writer is selected by the ``writer``
config group, and :mod:`.outputs` reads any of them by what is on disk. The paired collection is always HDF5
(:mod:`.collection`)."""

from __future__ import annotations

from ukbb_pipeline import registry
from ukbb_pipeline.config import WriterConfig
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.formats.hdf5 import Hdf5Writer
from ukbb_pipeline.formats.pickle import PickleWriter, safe_load

__all__ = ["Hdf5Writer", "Output", "PickleWriter", "Writer", "make_writer", "safe_load"]


def make_writer(config: WriterConfig) -> Writer:
    """Build the writer a ``writer`` config group entry describes (its format module, from the table of writers)."""
    writer: Writer = registry.writer(config.name).format().make_writer(config)
    return writer
