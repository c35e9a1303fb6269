"""Writing a flat, deflated bulk zip deterministically (fixed member dates), atomically."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes


def shuffled(members: Sequence[Member], *, rng: np.random.Generator) -> list[Member]:
    """The members in random order (real zips' order carries no meaning)."""
    return [members[i] for i in rng.permutation(len(members))]


def write_zip(path: Path, members: Sequence[Member], *, when: datetime) -> None:
    """Write ``members`` in order; every member dated ``when``, so the bytes depend on the content only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = (when.year, when.month, when.day, when.hour, when.minute, when.second)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for member in members:
            info = zipfile.ZipInfo(member.name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.data, compresslevel=1)
    tmp.replace(path)
