"""Provenance: whether an output was made by its stage's current output version (status's "out of date").

The version is the stage's row in :data:`ukbb_pipeline.registry.STAGES`; it is part of every output's settings
fingerprint and recorded in every manifest row (``output_version``), so an older one is exactly what a re-run redoes.
"""

from __future__ import annotations

from ukbb_pipeline import registry


def out_of_date(stage: str, output_version: str) -> bool:
    """Whether an output of ``stage`` recorded with ``output_version`` predates the stage's current output version
    (:data:`ukbb_pipeline.registry.STAGES`; the version a re-run would put in the settings fingerprint, and so
    redo). An output recorded without one (before output versions were recorded) counts as version 0."""
    current = registry.stage(stage).version if stage in registry.STAGE_NAMES else None
    recorded = int(output_version) if output_version.strip().isdigit() else 0
    return current is not None and recorded < current
