"""Settings fingerprints: a short digest of everything that changes a stage's output."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """Digest ``settings`` (JSON-serialisable) into 16 hex characters, independent of key order."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
