"""Output formats, each writing and reading its own files: HDF5 (:mod:`.hdf5`), pickle (:mod:`.pickle`), NIfTI
(:mod:`.nifti`); the writer is selected by the ``writer`` config group, and :mod:`.outputs` reads any of them by what
is on disk. The paired collection is always HDF5 (:mod:`.collection`)."""

from __future__ import annotations

from ukbb_pipeline.config import Hdf5WriterConfig, NiftiWriterConfig, PickleWriterConfig, WriterConfig
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.formats.hdf5 import Hdf5Writer
from ukbb_pipeline.formats.pickle import PickleWriter, safe_load

__all__ = ["Hdf5Writer", "Output", "PickleWriter", "Writer", "make_writer", "safe_load"]


def make_writer(config: WriterConfig) -> Writer:
    """Build the writer a ``writer`` config group entry describes."""
    if isinstance(config, Hdf5WriterConfig):
        return Hdf5Writer(
            compression=config.compression,
            compression_level=config.compression_level,
            shuffle=config.shuffle,
            file_locking=config.file_locking,
        )
    if isinstance(config, PickleWriterConfig):
        return PickleWriter()
    if isinstance(config, NiftiWriterConfig):
        from ukbb_pipeline.formats.nifti import NiftiWriter  # needs nibabel, an optional dependency

        return NiftiWriter(compression_level=config.compression_level, layout=config.layout.value)
    raise ValueError(f"unknown writer {config.name!r}")
