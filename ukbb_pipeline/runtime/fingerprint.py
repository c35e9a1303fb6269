"""Settings fingerprints: a short digest of everything that changes a stage's output."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_TAIL_BYTES = 64 * 1024


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """Digest ``settings`` (JSON-serialisable) into 16 hex characters, independent of key order."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def input_signature(path: Path) -> str:
    """A cheap digest of an input's content: its size and its last 64 KiB, in 8 hex characters.

    A zip keeps the CRC of every member in its central directory at the end, so the tail changes with any member;
    unlike a modification time, the signature survives copying the data to another disk. A folder (a NIfTI output)
    is signed by its files' names and signatures. This is what "the same input" means in every stage.
    """
    if Path(path).is_dir():
        parts = [f"{entry.name}:{input_signature(entry)}" for entry in sorted(Path(path).iterdir())]
        return hashlib.blake2b("/".join(parts).encode(), digest_size=4).hexdigest()
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - _TAIL_BYTES))
        tail = handle.read()
    return hashlib.blake2b(size.to_bytes(8, "big") + tail, digest_size=4).hexdigest()
