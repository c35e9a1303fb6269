"""Stable sharding of inputs: which of ``count`` shards an input belongs to.

The shard is a hash of the zip stem, not Python's salted ``hash``, so a subject stays in its shard across runs,
machines and Python versions, and adding new zips never moves old ones.
"""

from __future__ import annotations

import hashlib


def shard_of(stem: str, *, count: int) -> int:
    """Return the shard (0 <= shard < count) of the input named ``stem``."""
    if count < 1:
        raise ValueError(f"shard count must be >= 1, got {count}")
    digest = hashlib.blake2b(stem.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def in_shard(stem: str, *, index: int, count: int) -> bool:
    """Whether the input named ``stem`` belongs to shard ``index`` of ``count``."""
    if not 0 <= index < count:
        raise ValueError(f"shard index must be in [0, {count}), got {index}")
    return shard_of(stem, count=count) == index
