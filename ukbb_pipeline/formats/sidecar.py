"""Per-output JSON sidecars: the metadata a format cannot hold itself (pickle, NIfTI).

A sidecar sits in the stage's metadata folder as ``sidecars/<first two characters of the stem>/<stem>.json`` (nested,
so that no folder holds more than a few thousand files at cohort scale), out of the way of loaders that list the
output folder, and records the settings fingerprint, every attribute, and what the output's files should look like.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ukbb_pipeline.runtime.atomic import atomic_file
from ukbb_pipeline.runtime.folders import StageFolders


def sidecar_path(folders: StageFolders, stem: str) -> Path:
    return folders.sidecars / stem[:2] / f"{stem}.json"


def write_sidecar(folders: StageFolders, stem: str, content: dict[str, Any]) -> None:
    """Write the sidecar of output ``stem`` atomically (numpy values become plain JSON)."""
    with atomic_file(sidecar_path(folders, stem), scratch_dir=folders.scratch) as tmp:
        tmp.write_text(json.dumps(content, indent=1, default=_jsonable))


def read_sidecar(folders: StageFolders, stem: str) -> dict[str, Any]:
    """The sidecar of output ``stem`` (``attrs``, ``settings_fingerprint``, ...)."""
    return json.loads(sidecar_path(folders, stem).read_text())


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a sidecar")


def sidecar_of(path: Path) -> dict[str, Any] | None:
    """The sidecar of the output at ``path`` (``<stem>.pkl``, ``<stem>/<stem>.pkl`` or a NIfTI ``<stem>/`` folder),
    found in the metadata folder of whichever stage wrote it; None when there is none that reads."""
    stem = path.name.split(".", 1)[0]
    folder = path.parent
    if path.suffix == ".pkl" and folder.name == stem:  # the nested DXA layout <stem>/<stem>.pkl
        folder = folder.parent
    for candidate in sorted(folder.glob(f"pipeline-*/sidecars/{stem[:2]}/{stem}.json")):
        try:
            content = json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(content, dict):
            return content
    return None


def sidecar_attrs(path: Path) -> dict[str, Any]:
    """The attributes the sidecar of the output at ``path`` recorded (empty when there is no sidecar)."""
    content = sidecar_of(path)
    attrs = content.get("attrs") if content else None
    return attrs if isinstance(attrs, dict) else {}
