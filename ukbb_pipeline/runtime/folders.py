"""The folders of one stage: its outputs, and the metadata folder beside them.

Manifests, QC pictures, sidecars and scratch files live in ``<output_dir>/pipeline-<stage>/``. The paper's loader
lists the output folder and pairs entries on the text before the first underscore, and opens the first entry that
contains an EID; a hyphenated, stage-specific name with no digits can never pair with a subject or another stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ukbb_pipeline.errors import ConfigError


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


def refuse_output_among_inputs(stage: str, output: Path, inputs: Mapping[str, Path]) -> None:
    """Refuse (:class:`ConfigError`) an output folder that is, or is inside, any stage's input folder.

    ``inputs`` maps a label (``paths.mri, extract_slices' input``) to a folder. Writing there would overwrite the
    inputs (extract_slices' slabs in place of the stitched volumes) or mix outputs among them.
    """
    out = output.resolve()
    for label, folder in inputs.items():
        source = folder.resolve()
        if out == source or source in out.parents:
            where = "is" if out == source else "is inside"
            raise ConfigError(f"{stage}: stage.output_dir={output} {where} {label} ({folder}): its outputs would "
                              "overwrite or mix with inputs; choose another output folder")
