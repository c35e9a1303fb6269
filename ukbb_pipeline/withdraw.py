"""Removing withdrawn participants' data from what the pipeline made, and nothing else.

UK Biobank asks that the data of participants who withdraw be deleted. The pipeline deletes what it made and leaves
the rest to its owner:

- **Outputs and raw zips** named after a visit's stem (``<eid>_<field>_<instance>_<array>``, with any extension, or a
  folder of that name) in the stage folders under the root and in every output folder a run recorded, wherever it
  is: removed (a symbolic link and the file or folder it points to).
- **The stages' metadata folders** (``pipeline-<stage>/``: manifests, state, sidecars, pictures, contact sheets,
  reports, status tables): manifests are rewritten without the participant's rows; any other file there that names
  them is removed, to be made again from the cohort's state by the stage's next run (contact sheets, reports).
- **Collections** (``collection-shard<i>of<n>.h5`` beside ``pipeline-collect/``) that hold a withdrawn pair: removed;
  ``stage=collect`` makes them again.
- **Logs** of the pipeline's runs (each run records its log folder under the root) and of its SLURM sweeps
  (``.submitit/`` logs and pickles): log lines naming them are dropped; other files naming them are removed.
- **Everything else** (the user's own files) is never changed: those that mention a withdrawn EID (as a whole
  number: ``0.1000002`` is not a mention) are listed for the user to act on. The withdrawal list itself is never
  touched, wherever it is.

Symbolic links under the root are followed (raw data on another disk), each folder once.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ukbb_pipeline.rap.sync import in_project_mount  # a platform job's links: the job removes those files
from ukbb_pipeline.runtime.atomic import atomic_file
from ukbb_pipeline.runtime.cells import csv_values
from ukbb_pipeline.runtime.register import RUNS_FOLDER
from ukbb_pipeline.ukbb import EID_PATTERN

log = logging.getLogger(__name__)

LOG_FOLDERS = "log-folders.txt"
OUTPUT_FOLDERS = "output-folders.txt"
STEM_NAMED = re.compile(rf"^({EID_PATTERN})_\d+_\d+_\d+(?:\..+)?$")  # an output, sidecar, picture or zip of a visit
META_PREFIX = "pipeline-"
COLLECTION = re.compile(r"^collection-shard\d+of\d+\.h5$")
LOG_LINES = {".log", ".out", ".err", ".txt"}  # log files: lines naming a withdrawn participant are dropped
SCAN_LIMIT_BYTES = 256 * 1024 * 1024  # user files larger than this are named as not searched


# ---- the folders runs record under the root --------------------------------------------------------------------


def _record(root: Path, name: str) -> Path:
    return root / RUNS_FOLDER / name


def record_folder(root: Path, folder: Path, *, kind: str = LOG_FOLDERS) -> None:
    """Add ``folder`` (a run's log or output folder, made absolute) to the root's record, once; never fails a run."""
    record = _record(root, kind)
    line = str(folder.resolve())
    try:
        if folder.resolve() in recorded_folders(root, kind=kind, existing_only=False):
            return
        record.parent.mkdir(parents=True, exist_ok=True)
        with open(record, "a", encoding="utf-8") as handle:  # one short append: concurrent runs do not interleave
            handle.write(line + "\n")
    except OSError as error:
        log.warning("could not record the folder %s in %s: %s", line, record, error)


def recorded_folders(root: Path, *, kind: str = LOG_FOLDERS, existing_only: bool = True) -> list[Path]:
    """The folders runs over ``root`` recorded (those that still exist, unless ``existing_only`` is false)."""
    try:
        lines = _record(root, kind).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    folders = [Path(line) for line in dict.fromkeys(line.strip() for line in lines) if line]
    return [folder for folder in folders if not existing_only or folder.is_dir()]


def holds_pipeline_folders(root: Path) -> bool:
    """Whether ``root`` (or a folder in it) has a ``pipeline-*`` folder: a data root the pipeline wrote to, or over
    which runs recorded their output folders."""
    if (root / RUNS_FOLDER / OUTPUT_FOLDERS).is_file():
        return True

    def meta(entry: os.DirEntry[str]) -> bool:
        return entry.name.startswith(META_PREFIX) and entry.name != RUNS_FOLDER and entry.is_dir()

    try:
        children = [entry for entry in os.scandir(root) if entry.is_dir()]
    except OSError:
        return False
    if any(meta(entry) for entry in children):
        return True
    for child in children:
        try:
            if any(meta(entry) for entry in os.scandir(child.path)):
                return True
        except OSError:
            continue
    return False


# ---- the withdrawal ------------------------------------------------------------------------------------------------


@dataclass
class WithdrawalReport:
    removed: list[Path] = field(default_factory=list)  # outputs, zips, sidecars, pictures named after a visit
    rewritten: list[Path] = field(default_factory=list)  # manifests and logs with rows or lines dropped
    remade: list[Path] = field(default_factory=list)  # multi-subject files removed, made again by the stage's next run
    user_files: list[tuple[Path, int]] = field(default_factory=list)  # (file, line) of the user's, not changed
    not_searched: list[Path] = field(default_factory=list)  # user files too large to search
    missing: list[Path] = field(default_factory=list)  # recorded folders that are not there
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # folders or files that could not be cleaned


@dataclass(frozen=True)
class _Withdrawn:
    eids: frozenset[str]
    mention: re.Pattern[str]
    keep: frozenset[Path]  # never touched (the withdrawal list)

    def named(self, name: str) -> bool:
        return named_after(name, self.eids)

    def first_line(self, text: str) -> int | None:
        """The 1-based line of the first mention in ``text``, or None."""
        match = self.mention.search(text)
        return None if match is None else text.count("\n", 0, match.start()) + 1


def named_after(name: str, eids: Iterable[str]) -> bool:
    """Whether ``name`` is a visit's output, sidecar, picture or zip (``<eid>_<field>_<instance>_<array>[.ext]``) of
    one of ``eids``."""
    match = STEM_NAMED.match(name)
    return match is not None and match.group(1) in eids


def mention_pattern(eids: Iterable[str]) -> re.Pattern[str]:
    """An EID as a whole number: not part of a longer number or of a decimal (``0.1000002``, ``1000002.5``)."""
    alternatives = "|".join(sorted(eids))
    return re.compile(rf"(?<!\d)(?<!\d\.)({alternatives})(?!\d)(?!\.\d)")


def withdraw(
    eids: Iterable[int], *, root: Path, output_folders: Iterable[Path] = (), log_folders: Iterable[Path] = (),
    keep: Iterable[Path] = (),
) -> WithdrawalReport:
    """Remove what the pipeline made of ``eids`` under ``root``, in ``output_folders`` and ``log_folders``."""
    withdrawn_eids = frozenset(str(eid) for eid in eids)
    report = WithdrawalReport()
    if not withdrawn_eids:
        return report
    who = _Withdrawn(withdrawn_eids, mention_pattern(withdrawn_eids), frozenset(Path(p).resolve() for p in keep))
    seen: set[tuple[int, int]] = set()
    for folder in log_folders:
        if folder.is_dir():
            _clean(folder, who, report, seen, area="log")
    for folder in [root, *output_folders]:
        if not folder.is_dir():
            report.missing.append(folder)
            continue
        _clean(folder, who, report, seen, area="data")
    return report


def _walk(top: Path, seen: set[tuple[int, int]],
          report: WithdrawalReport) -> Iterator[tuple[Path, list[str], list[str]]]:
    """``os.walk`` following symbolic links, each real folder once (no loops, no folder cleaned twice)."""

    def unreadable(error: OSError) -> None:
        report.unreadable.append((Path(error.filename or top), error.strerror or str(error)))

    for folder, dirs, files in os.walk(top, followlinks=True, onerror=unreadable):
        try:
            stat = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            dirs[:] = []
            continue
        seen.add(key)
        yield Path(folder), dirs, files


def _clean(top: Path, who: _Withdrawn, report: WithdrawalReport, seen: set[tuple[int, int]], *, area: str) -> None:
    for folder, dirs, files in _walk(top, seen, report):
        relative = folder.relative_to(top).parts
        in_meta = any(part.startswith(META_PREFIX) for part in relative)
        kind = "log" if area == "log" else "meta" if in_meta else "data"
        for name in list(dirs):
            if STEM_NAMED.match(name):  # a visit's output folder: removed when withdrawn, else not searched
                if who.named(name):
                    _remove(folder / name, who, report)
                dirs.remove(name)
        collect_folder = kind == "data" and (folder / f"{META_PREFIX}collect").is_dir()
        for name in files:
            path = folder / name
            if path.resolve() in who.keep or name in (LOG_FOLDERS, OUTPUT_FOLDERS):
                continue
            try:
                _clean_file(path, name, kind, who, report, collection=collect_folder and COLLECTION.match(name))
            except OSError as error:
                report.unreadable.append((path, error.strerror or str(error)))


def _clean_file(path: Path, name: str, kind: str, who: _Withdrawn, report: WithdrawalReport, *,
                collection: object) -> None:
    if STEM_NAMED.match(name):  # a visit's output, zip, sidecar or picture: another participant's is not read
        if who.named(name):
            _remove(path, who, report)
        return
    if collection:
        if _lists_eid(path, who.eids):
            path.unlink()
            report.remade.append(path)
        return
    if kind == "data":  # the user's file: never changed, listed when it mentions a withdrawn participant
        if path.stat().st_size > SCAN_LIMIT_BYTES:
            report.not_searched.append(path)
            return
        line = who.first_line(_text(path))
        if line is not None:
            report.user_files.append((path, line))
        return
    if kind == "meta" and name.startswith("manifest-") and path.suffix == ".csv":
        if _drop_manifest_rows(path, who):
            report.rewritten.append(path)
        return
    if kind == "log" and path.suffix in LOG_LINES:
        if _drop_lines(path, who):
            report.rewritten.append(path)
        return
    if who.first_line(_text(path)) is not None:  # the pipeline's multi-subject file: made again from the state
        path.unlink()
        report.remade.append(path)


def _text(path: Path) -> str:
    """A file's bytes as text (a PNG's text chunks, compressed or not, included)."""
    data = path.read_bytes()
    text = data.decode("latin-1")
    if path.suffix == ".png":
        try:
            from PIL import Image

            with Image.open(path) as image:
                text += "\n" + "\n".join(f"{key}: {value}" for key, value in getattr(image, "text", {}).items())
        except Exception:  # not a PNG after all: its bytes were searched
            pass
    return text


def _remove(path: Path, who: _Withdrawn, report: WithdrawalReport) -> None:
    """Remove a file or folder named after a withdrawn visit; a symbolic link goes with what it points to (when
    that is named after the visit too)."""
    if path.is_symlink():
        target = path.resolve()
        path.unlink()
        report.removed.append(path)
        if who.named(target.name) and target not in who.keep and target.exists() and not in_project_mount(target):
            _remove(target, who, report)
        return
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    report.removed.append(path)


def _drop_manifest_rows(path: Path, who: _Withdrawn) -> bool:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return False
    header, body = rows[0], rows[1:]
    at_eid = header.index("eid") if "eid" in header else None
    at_input = header.index("input") if "input" in header else None

    def withdrawn(values: list[str]) -> bool:
        plain = csv_values(values)
        if at_eid is not None and at_eid < len(plain) and plain[at_eid] in who.eids:
            return True
        return at_input is not None and at_input < len(plain) and who.named(os.path.basename(plain[at_input]))

    kept = [values for values in body if not withdrawn(values)]
    if len(kept) == len(body):
        return False
    with atomic_file(path, scratch_dir=path.parent / "tmp") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([header, *kept])
    return True


def _drop_lines(path: Path, who: _Withdrawn) -> bool:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    kept = [line for line in lines if not who.mention.search(line)]
    if len(kept) == len(lines):
        return False
    with atomic_file(path, scratch_dir=path.parent) as tmp:
        tmp.write_text("".join(kept), encoding="utf-8")
    return True


def _lists_eid(path: Path, withdrawn: frozenset[str]) -> bool:
    """Whether a collection has a withdrawn EID in its ``eids``."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "eids" not in handle:
                return False
            return any(str(int(eid)) in withdrawn for eid in handle["eids"][()])
    except OSError:
        return False
