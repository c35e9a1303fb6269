"""The withdrawal register: which withdrawal lists were applied under a data root, when, and to whom.

``stage=withdraw`` records every list it applies in ``<root>/pipeline-runs/withdrawals.csv`` before it removes
anything. Every later run over the root leaves those participants out whatever its arguments (no
``exclude_eids_file`` needed), and a run already going checks the register before it writes each output and before
each manifest flush, so it neither re-creates a withdrawn participant's output (reading zips in place, as on the
platform) nor writes their rows back from memory.

The register keeps a SHA-256 of each EID rather than the EID, so that a search of the root for a withdrawn EID finds
nothing. This is not anonymisation (seven-digit EIDs can all be hashed in seconds): the lists themselves, which the
user keeps, say who withdrew.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ukbb_pipeline.runtime.atomic import atomic_file
from ukbb_pipeline.runtime.timestamps import now_utc

RUNS_FOLDER = "pipeline-runs"
REGISTER = "withdrawals.csv"
COLUMNS = ("withdrawn_at", "list", "eid_sha256")


def register_path(root: Path | str) -> Path:
    return Path(root) / RUNS_FOLDER / REGISTER


def eid_digest(eid: int | str) -> str:
    return hashlib.sha256(f"ukbb-pipeline withdrawn eid {int(eid)}".encode()).hexdigest()


def record_withdrawal(root: Path, eids: Iterable[int], *, list_path: Path) -> int:
    """Add ``eids`` (from the list at ``list_path``) to the root's register, atomically; return how many were new."""
    path = register_path(root)
    rows = _read_rows(path)
    known = {row["eid_sha256"] for row in rows}
    when = now_utc()
    new = [{"withdrawn_at": when, "list": str(list_path.resolve()), "eid_sha256": digest}
           for digest in sorted({eid_digest(eid) for eid in eids} - known)]
    if not new and path.exists():
        return 0
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows([*rows, *new])
    with atomic_file(path, scratch_dir=path.parent / "tmp") as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return len(new)


def _read_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return [row for row in csv.DictReader(handle) if row.get("eid_sha256")]
    except FileNotFoundError:
        return []


def withdrawn_lists(root: Path | str) -> list[tuple[str, str, int]]:
    """(list, first withdrawn_at, how many EIDs) per list recorded under ``root``."""
    lists: dict[str, list[str | int]] = {}
    for row in _read_rows(register_path(root)):
        entry = lists.setdefault(row["list"], [row["withdrawn_at"], 0])
        entry[1] = int(entry[1]) + 1
    return [(name, str(when), int(count)) for name, (when, count) in lists.items()]


@dataclass
class Withdrawals:
    """The register of one root, re-read whenever the file changes (a ``stat`` per check): picklable, so it travels
    to worker processes with the stage."""

    path: Path
    recheck_s: float = 0.5  # at most one stat per this many seconds (a 100,000-row flush asks 100,000 times)
    _signature: tuple[int, int] | None = field(default=None, repr=False)
    _digests: frozenset[str] = field(default=frozenset(), repr=False)
    _checked: float = field(default=float("-inf"), repr=False)

    @classmethod
    def of_root(cls, root: Path | str) -> Withdrawals:
        return cls(register_path(root))

    def _current(self) -> frozenset[str]:
        now = time.monotonic()
        if now - self._checked < self.recheck_s:
            return self._digests
        self._checked = now
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._signature, self._digests = None, frozenset()
            return self._digests
        signature = (stat.st_size, stat.st_mtime_ns)
        if signature != self._signature:
            self._digests = frozenset(row["eid_sha256"] for row in _read_rows(self.path))
            self._signature = signature
        return self._digests

    def __contains__(self, eid: object) -> bool:
        if eid is None or eid == "":
            return False
        digests = self._current()
        return bool(digests) and isinstance(eid, (int, str)) and str(eid).isdigit() and eid_digest(eid) in digests

    def __bool__(self) -> bool:
        return bool(self._current())

    def __len__(self) -> int:
        return len(self._current())
