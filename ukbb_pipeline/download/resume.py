"""What a re-run can skip: requested files already in place and valid.

A file this stage placed and recorded (size and modification time in its manifests) is trusted without reading it
again; any other file present is verified in full. A present file that fails verification is moved aside, so that
the raw folders only ever hold whole zips.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ukbb_pipeline.download.bulk import BulkRequest
from ukbb_pipeline.download.verify import zip_problem
from ukbb_pipeline.runtime.manifest import FAILED, read_manifests

Ledger = Mapping[str, tuple[int, int]]  # stem -> (bytes, mtime_ns) of the file as verified and placed


@dataclass(frozen=True)
class PresentFile:
    """A requested file that is already where it belongs, and whether it is whole."""

    request: BulkRequest
    path: Path
    problem: str | None  # None: valid
    how: str  # "verified earlier" | "verified now"
    size: int
    mtime_ns: int
    seconds: float


def read_ledger(meta_folder: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file the stage's manifests record as placed and valid."""
    ledger = {}
    for row in read_manifests(meta_folder) if meta_folder.is_dir() else []:
        if row.get("status") != FAILED and row.get("bytes", "").isdigit() and row.get("mtime_ns", "").isdigit():
            ledger[row["input"]] = (int(row["bytes"]), int(row["mtime_ns"]))
    return ledger


def check_present(
    requests: Sequence[BulkRequest],
    *,
    destination: Callable[[BulkRequest], Path],
    ledger: Ledger,
    parallel: int,
) -> dict[BulkRequest, PresentFile]:
    """The requests whose file exists, each checked (in parallel: verifying reads every byte)."""
    present = [(request, destination(request)) for request in requests if destination(request).is_file()]
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        checked = pool.map(lambda item: _check(item[0], item[1], ledger), present)
        return {item.request: item for item in checked}


def _check(request: BulkRequest, path: Path, ledger: Ledger) -> PresentFile:
    started = time.monotonic()
    stat = path.stat()
    if ledger.get(request.stem) == (stat.st_size, stat.st_mtime_ns):
        problem, how = None, "verified earlier"
    else:
        problem, how = zip_problem(path), "verified now"
    return PresentFile(request, path, problem, how, stat.st_size, stat.st_mtime_ns, time.monotonic() - started)


def set_aside(path: Path, folder: Path) -> Path:
    """Move a damaged file out of the raw folder into ``folder`` (kept for inspection, replaced by a re-download)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    shutil.move(path, target)
    return target
