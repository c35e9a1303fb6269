"""What a stage hands a writer, and what every writer does with it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ukbb_pipeline.runtime.folders import StageFolders


@dataclass
class Output:
    """One input's result: named arrays, metadata, and the figures that go into the manifest.

    ``spacing_attr`` names the attribute holding the pixel spacing, which the pickle layout stores as
    ``pixel_spacing``.
    """

    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any]
    spacing_attr: str
    qc: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Writer(ABC):
    """Writes outputs atomically and tells whether an output already exists, opens, and with which settings."""

    name: str
    suffix: str

    def output_path(self, folders: StageFolders, stem: str, *, nested: bool = False) -> Path:
        """Where the output of input ``stem`` goes; ``nested`` asks for a folder of its own where the layout has one."""
        return folders.output / f"{stem}{self.suffix}"

    @abstractmethod
    def write(
        self, folders: StageFolders, stem: str, output: Output, *, fingerprint: str, nested: bool = False
    ) -> Path:
        """Write ``output`` for input ``stem``, atomically; return its path."""

    @abstractmethod
    def stored_fingerprint(self, folders: StageFolders, stem: str, *, nested: bool = False) -> str | None:
        """The settings fingerprint of an existing output, or None when it is absent or does not open."""

    def stored_attrs(self, folders: StageFolders, stem: str, *, nested: bool = False) -> dict[str, Any]:
        """The attributes of an existing output (HDF5 attributes, or a pickle's or NIfTI folder's sidecar)."""
        from ukbb_pipeline.formats.outputs import read_attrs

        return read_attrs(self.output_path(folders, stem, nested=nested))

    def settings(self) -> dict[str, Any]:
        """What of the writer's configuration changes its outputs (part of the settings fingerprint)."""
        return {"writer": self.name}
