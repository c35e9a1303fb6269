"""Timestamps in manifests and state: written in UTC with the zone, compared as instants.

``finished_at`` used to be the machine's local time without a zone: a later run in another time zone, or across a
daylight-saving change, sorted before an earlier one. Now every stamp is ISO 8601 in UTC with ``+00:00``, and rows are
ordered by :func:`instant`, which reads any ISO 8601 stamp with a zone and takes a stamp without one (an old manifest)
as the local time of the machine reading it (the best guess of where it was written).
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone


def now_utc() -> str:
    """Now, ``2026-12-06T00:10:00+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def file_stamp() -> str:
    """Now in UTC for file names, ``20261206-001000Z`` (sorts as time across zones)."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%SZ")


@functools.lru_cache(maxsize=65536)
def instant(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 stamp; naive stamps are local time; empty or unreadable -> -inf.

    Cached: the rows of one run share few distinct seconds, so reading 100,000 rows parses a few hundred stamps.
    """
    if not text:
        return float("-inf")
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return float("-inf")
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a stamp without a zone: this machine's local time
    return moment.timestamp()
