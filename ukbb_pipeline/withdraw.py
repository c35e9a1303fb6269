"""Removing every trace of withdrawn participants from a pipeline's folders.

UK Biobank asks that data of participants who withdraw be deleted. Under the given folders this removes every file
or folder whose name carries a withdrawn EID (raw zips, outputs, QC pictures, sidecars), rewrites manifests and logs
without their rows and lines, and deletes files that aggregate several subjects and mention one (contact sheets,
whose PNG metadata lists their subjects; reports; collections), listing those so that they can be made again. Stages
honour the same list through ``exclude_eids_file``, so nothing brings the data back.

Logs name subjects too, and they live wherever each run was started (Hydra's run and sweep folders are relative to
the folder a run starts in). So every run records its log folder under the data root
(``<root>/pipeline-runs/log-folders.txt``, :func:`record_log_folder`), and a withdrawal cleans every folder listed
there as well as those configured.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ukbb_pipeline.runtime.atomic import atomic_file
from ukbb_pipeline.ukbb import EID_PATTERN

log = logging.getLogger(__name__)

_EID_IN_NAME = re.compile(rf"(?<!\d)({EID_PATTERN})(?=_\d+_\d+_\d+)")
# Files that may hold several subjects: their text (a PNG's text metadata included) names them.
_AGGREGATE_SUFFIXES = {".csv", ".json", ".html", ".yaml", ".yml", ".png"}
_LOG_SUFFIXES = {".log", ".txt", ".lis", ".bulk"}


RUNS_FOLDER = "pipeline-runs"
LOG_FOLDERS = "log-folders.txt"


def log_folders_record(root: Path) -> Path:
    return root / RUNS_FOLDER / LOG_FOLDERS


def record_log_folder(root: Path, folder: Path) -> None:
    """Add ``folder`` (a run's log folder, made absolute) to the root's record, once; never fails the run."""
    record = log_folders_record(root)
    line = str(folder.resolve())
    try:
        if folder.resolve() in recorded_log_folders(root, existing_only=False):
            return
        record.parent.mkdir(parents=True, exist_ok=True)
        with open(record, "a", encoding="utf-8") as handle:  # one short append: concurrent runs do not interleave
            handle.write(line + "\n")
    except OSError as error:
        log.warning("could not record the log folder %s in %s: %s", line, record, error)


def recorded_log_folders(root: Path, *, existing_only: bool = True) -> list[Path]:
    """The log folders runs over ``root`` recorded (those that still exist, unless ``existing_only`` is false)."""
    try:
        lines = log_folders_record(root).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    folders = [Path(line) for line in dict.fromkeys(line.strip() for line in lines) if line]
    return [folder for folder in folders if not existing_only or folder.is_dir()]


@dataclass
class WithdrawalReport:
    removed: list[Path] = field(default_factory=list)  # files and folders named after a withdrawn subject
    rewritten: list[Path] = field(default_factory=list)  # manifests and logs with rows/lines dropped
    aggregates_removed: list[Path] = field(default_factory=list)  # multi-subject files to make again


def withdraw(eids: Iterable[int], *, folders: Iterable[Path]) -> WithdrawalReport:
    """Remove the data of ``eids`` from every folder in ``folders`` (recursively)."""
    withdrawn = {str(eid) for eid in eids}
    mention = re.compile(r"(?<!\d)(" + "|".join(sorted(withdrawn)) + r")(?!\d)") if withdrawn else None
    report = WithdrawalReport()
    if mention is None:
        return report
    seen: set[Path] = set()
    for folder in folders:
        resolved = folder.resolve()
        if resolved in seen or any(parent in seen for parent in resolved.parents) or not resolved.is_dir():
            continue
        seen.add(resolved)
        _walk(resolved, withdrawn, mention, report)
    return report


def _walk(folder: Path, withdrawn: set[str], mention: re.Pattern[str], report: WithdrawalReport) -> None:
    for root, dirs, files in os.walk(folder):
        for name in list(dirs):
            if _named_after(name, withdrawn):
                shutil.rmtree(Path(root) / name)
                report.removed.append(Path(root) / name)
                dirs.remove(name)
        for name in files:
            path = Path(root) / name
            if _named_after(name, withdrawn):
                path.unlink()
                report.removed.append(path)
            elif path.suffix == ".csv" and path.name.startswith("manifest"):
                if _drop_manifest_rows(path, withdrawn):
                    report.rewritten.append(path)
            elif path.suffix in _LOG_SUFFIXES:
                if _drop_lines(path, mention):
                    report.rewritten.append(path)
            elif _is_aggregate_mentioning(path, withdrawn, mention):
                _remove_aggregate(path, report)


def _is_aggregate_mentioning(path: Path, withdrawn: set[str], mention: re.Pattern[str]) -> bool:
    """A multi-subject file (report, index, collection) that mentions a withdrawn participant."""
    if path.suffix in _AGGREGATE_SUFFIXES:
        return _mentions(path, mention)
    return path.suffix == ".h5" and _lists_eid(path, withdrawn)


def _named_after(name: str, withdrawn: set[str]) -> bool:
    return any(match.group(1) in withdrawn for match in _EID_IN_NAME.finditer(name))


def _mentions(path: Path, mention: re.Pattern[str]) -> bool:
    return mention.search(path.read_bytes().decode("latin-1")) is not None


def _remove_aggregate(path: Path, report: WithdrawalReport) -> None:
    """Remove a multi-subject file and its companions of the same stem (e.g. a contact sheet and its index)."""
    for companion in path.parent.glob(f"{path.stem}.*"):
        companion.unlink()
        report.aggregates_removed.append(companion)
    log.warning("removed %s: it mentions a withdrawn participant; make it again", path)


def _drop_manifest_rows(path: Path, withdrawn: set[str]) -> bool:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        rows = list(reader)
    kept = [
        row for row in rows
        if row.get("eid", "") not in withdrawn and not _named_after(row.get("input", ""), withdrawn)
    ]
    if len(kept) == len(rows):
        return False
    with atomic_file(path, scratch_dir=path.parent / "tmp") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(kept)
    return True


def _drop_lines(path: Path, mention: re.Pattern[str]) -> bool:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    kept = [line for line in lines if not mention.search(line)]
    if len(kept) == len(lines):
        return False
    with atomic_file(path, scratch_dir=path.parent) as tmp:
        tmp.write_text("".join(kept), encoding="utf-8")
    return True


def _lists_eid(path: Path, withdrawn: set[str]) -> bool:
    """Whether an HDF5 file that is not one subject's output (a collection) has a withdrawn EID in its ``eids``."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "eids" not in handle:
                return False
            return any(str(int(eid)) in withdrawn for eid in handle["eids"][()])
    except OSError:
        return False
