"""The folders of one stage: its outputs, and the metadata folder beside them.

Manifests, QC pictures, sidecars and scratch files live in ``<output_dir>/pipeline-<stage>/``. The paper's loader
lists the output folder and pairs entries on the text before the first underscore, and opens the first entry that
contains an EID; a hyphenated, stage-specific name with no digits can never pair with a subject or another stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StageFolders:
    output: Path
    stage: str

    @property
    def meta(self) -> Path:
        return self.output / f"pipeline-{self.stage.replace('_', '-')}"

    @property
    def scratch(self) -> Path:
        return self.meta / "tmp"

    @property
    def sidecars(self) -> Path:
        return self.meta / "sidecars"

    @property
    def qc(self) -> Path:
        return self.meta / "qc"
