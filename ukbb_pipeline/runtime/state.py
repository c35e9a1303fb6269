"""The state of a cohort: every input's current outcome, across every run and shard, from the per-run manifests.

A manifest row says what one run did with an input (``ok | failed | skipped``). The state says where the input
stands now: ``done`` or ``failed`` (its latest outcome), with the QC figures, flags (:mod:`ukbb_pipeline.flags`),
notes, settings fingerprint and versions of the run that *made* its output (whether that is out of date:
:mod:`.provenance`). A re-run that skips an input writes a ``skipped`` row without QC
figures; the state keeps those of the latest ``ok`` row with the same settings fingerprint, so flags survive re-runs.

Cheap at 100,000 inputs: manifests are read with the ``csv`` module in one pass, and the folded state is kept per
stage in ``<meta>/state.csv`` (written atomically), listing the manifests it has folded in (name, size, mtime), so a
later read folds only the manifests that are new or have grown. A manifest that shrank or went (a withdrawal) makes
it start again from all of them.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ukbb_pipeline import registry
from ukbb_pipeline.flags import SEAM_MISMATCH_LIMIT, flags_of
from ukbb_pipeline.runtime.atomic import atomic_file
from ukbb_pipeline.runtime.cells import csv_cell, csv_values
from ukbb_pipeline.runtime.manifest import BASE_COLUMNS, FAILED, OK, SKIPPED
from ukbb_pipeline.runtime.timestamps import instant

DONE = "done"
LEFT_OUT = "left out"  # collect: a pair it did not put in the collection (an unfixed swap, a failed seam check)
CACHE_NAME = "state.csv"
_CACHE_MAGIC = "# ukbb-pipeline state 2 "
_ROLE = "_role"  # in the cache: which of an input's two rows this is (latest | made)

# The columns of a state record, before the stage's QC columns.
STATE_COLUMNS = (
    "stage",
    "eid",
    "instance",
    "stem",
    "state",  # done | failed | left out
    "status",  # the latest run's status: ok | failed | skipped
    "flags",  # what is worth a look, "; "-separated (swapped stations, a seam mismatch, a moved window)
    "notes",  # the reason column of the run that made the output (repeats chosen, slices bridged, ...); or why failed
    "reason",  # the latest row's reason
    "input",
    "output",
    "settings_fingerprint",
    "version",  # the package version that made the output (or recorded the failure)
    "output_version",  # the stage's output version that made it (ukbb_pipeline.registry; status: "out of date")
    "made_at",  # when the output was made (the ok row's finished_at)
    "finished_at",  # the latest row's finished_at
    "seconds",
    "manifest",  # the manifest of the row that made the output (or of the failure)
)
_STATE_SET = frozenset(STATE_COLUMNS)
_NOT_QC = frozenset((*BASE_COLUMNS, "manifest", _ROLE))
_RECORD_ONLY = _STATE_SET - _NOT_QC  # stage, stem, state, flags, notes, made_at


def stem_of(path: str) -> str:
    """``/data/raw/mris/1234567_20201_2_0.zip`` -> ``1234567_20201_2_0``."""
    return os.path.basename(path.rstrip("/")).split(".", 1)[0]


def stage_of(meta: Path) -> str:
    """The stage a metadata folder belongs to: ``pipeline-unzip-mri`` -> ``unzip_mri``."""
    return meta.name.removeprefix("pipeline-").replace("-", "_")


# ----------------------------------------------------------------------------------------------------------------
# Finding stages


def stage_folders(path: Path | str) -> dict[str, Path]:
    """The stages under ``path`` (a data root, a stage's output folder or its metadata folder): name -> metadata folder.

    Looks at ``path`` itself, its sub-folders and theirs (``<root>/raw/pipeline-download``), never inside
    per-subject folders (names starting with a digit), so a root beside 100,000 outputs is listed quickly.
    """
    path = Path(path)
    found: dict[str, Path] = {}
    if _is_meta(path):
        found[stage_of(path)] = path
        return found
    for child in _subfolders(path):
        if _is_meta(child):
            found.setdefault(stage_of(child), child)
            continue
        for grandchild in _subfolders(child):
            if _is_meta(grandchild):
                found.setdefault(stage_of(grandchild), grandchild)
    return dict(sorted(found.items(), key=lambda item: registry.stage_rank(item[0])))


def _is_meta(path: Path) -> bool:
    return path.name.startswith("pipeline-") and path.is_dir() and any(path.glob("manifest-*.csv"))


def _subfolders(path: Path) -> Iterator[Path]:
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if not entry.name[:1].isdigit() and entry.is_dir():
                    yield Path(entry.path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return


# ----------------------------------------------------------------------------------------------------------------
# Folding manifest rows into a state


@dataclass
class _Fold:
    """Per input stem, its latest row and its latest ok row (the one that made the output there now).

    Rows stay as the CSV reader's lists until they win (``dict`` per row is most of the cost at 100,000 inputs).
    ``records`` are the stage's state records from the cache; a stem that a new row touches is taken apart into its
    two rows again (:func:`_rows_of_record`) and its record made anew.
    """

    stage: str
    records: dict[str, dict[str, str]] = field(default_factory=dict)
    aside: dict[str, dict[str, str]] = field(default_factory=dict)  # the ok row behind a failed record
    latest: dict[str, tuple[float, dict[str, str]]] = field(default_factory=dict)  # (instant, row)
    made: dict[str, tuple[float, dict[str, str]]] = field(default_factory=dict)

    def _touch(self, stem: str) -> None:
        record = self.records.pop(stem, None)
        if record is None:
            return
        latest, made = _rows_of_record(record, self.aside.pop(stem, None))
        self.latest[stem] = (instant(latest["finished_at"]), latest)
        if made is not None:
            self.made[stem] = (instant(made["finished_at"]), made)

    def add_file(self, path: Path) -> None:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header or "input" not in header:
                return
            at_input, at_status = header.index("input"), header.index("status")
            at_when = header.index("finished_at") if "finished_at" in header else None
            width, manifest = len(header), str(path)
            latest, made, records = self.latest, self.made, self.records
            for values in reader:
                if len(values) < width:
                    values += [""] * (width - len(values))
                values = csv_values(values)
                stem = stem_of(values[at_input])
                if not stem:
                    continue
                if stem in records:
                    self._touch(stem)
                when = instant("" if at_when is None else values[at_when])  # as a time: zones and DST differ
                current = latest.get(stem)
                ok = values[at_status] == OK
                if current is None or when >= current[0]:
                    row = dict(zip(header, values, strict=False))
                    row["manifest"] = manifest
                    latest[stem] = (when, row)
                    if ok:
                        made[stem] = (when, row)
                        continue
                if ok:
                    current = made.get(stem)
                    if current is None or when >= current[0]:
                        row = dict(zip(header, values, strict=False))
                        row["manifest"] = manifest
                        made[stem] = (when, row)

    def finish(self, *, seam_mismatch_limit: float | None) -> dict[str, dict[str, str]]:
        """Every stem's record (touched stems made anew), sorted by stem."""
        for stem, (_, latest) in self.latest.items():
            made = self.made.get(stem)
            record = _record(self.stage, stem, latest, None if made is None else made[1],
                             seam_mismatch_limit=seam_mismatch_limit)
            self.records[stem] = record
            if record["state"] == FAILED and made is not None:
                self.aside[stem] = made[1]
        self.latest.clear()
        self.made.clear()
        self.records = dict(sorted(self.records.items()))
        return self.records


def _rows_of_record(
    record: dict[str, str], aside: dict[str, str] | None
) -> tuple[dict[str, str], dict[str, str] | None]:
    """The latest row and the ok row behind a state record (what :func:`_record` was made from)."""
    qc = {key: value for key, value in record.items() if key not in _STATE_SET}
    base = {key: record[key] for key in ("eid", "instance", "input", "output", "settings_fingerprint", "version",
                                         "output_version", "manifest")}
    own_qc = record["status"] == OK or (record["status"] == SKIPPED and not record["made_at"])
    latest = {**base, "status": record["status"], "reason": record["reason"], "seconds": record["seconds"],
              "finished_at": record["finished_at"], **(qc if own_qc else {})}
    if record["state"] == FAILED:
        return latest, aside
    if not record["made_at"]:
        return latest, None
    made = {**base, "status": OK, "reason": record["notes"], "finished_at": record["made_at"], **qc}
    return latest, made


def _signature(path: Path) -> list[int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _read_cache(meta: Path, stage: str) -> tuple[dict[str, list[int]], _Fold] | None:
    path = meta / CACHE_NAME
    fold = _Fold(stage=stage)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            first = handle.readline()
            if not first.startswith(_CACHE_MAGIC):
                return None
            folded = {name: list(value)
                      for name, value in json.loads(first[len(_CACHE_MAGIC):])["manifests"].items()}
            reader = csv.reader(handle)
            header = next(reader)
            at_role, at_stem = header.index(_ROLE), header.index("stem")
            for values in reader:
                values = csv_values(values)
                row = dict(zip(header, values, strict=False))
                del row[_ROLE]
                if values[at_role] == "aside":
                    stem = row.pop("input_stem")
                    fold.aside[stem] = {key: value for key, value in row.items() if key not in _RECORD_ONLY}
                else:
                    row.pop("input_stem", None)
                    fold.records[values[at_stem]] = row
    except (OSError, ValueError, KeyError, StopIteration, csv.Error):
        return None
    return folded, fold


def _write_cache(meta: Path, folded: dict[str, list[int]], fold: _Fold) -> None:
    """Keep the state beside the manifests; a folder we cannot write to only costs the next read time."""
    rows: list[dict[str, str]] = [{**record, _ROLE: "record"} for record in fold.records.values()]
    rows += [{**row, "input_stem": stem, _ROLE: "aside"} for stem, row in fold.aside.items()]
    columns = [_ROLE, *dict.fromkeys(key for row in rows for key in row if key != _ROLE)]
    with contextlib.suppress(OSError), atomic_file(meta / CACHE_NAME, scratch_dir=meta / "tmp") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            handle.write(_CACHE_MAGIC + json.dumps({"manifests": folded}, separators=(",", ":")) + "\n")
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows([csv_cell(row.get(column, "")) for column in columns] for row in rows)


def _fold_stage(meta: Path, *, stage: str, cache: bool, seam_mismatch_limit: float | None) -> list[dict[str, str]]:
    manifests = {path.name: path for path in sorted(meta.glob("manifest-*.csv"))}
    signatures = {name: signature for name, path in manifests.items() if (signature := _signature(path)) is not None}
    cached = _read_cache(meta, stage) if cache else None
    folded: dict[str, list[int]] = {}
    fold = _Fold(stage=stage)
    if cached is not None:
        cached_signatures, cached_fold = cached
        shrunk_or_gone = any(name not in signatures or signatures[name][0] < old[0]
                             for name, old in cached_signatures.items())
        if not shrunk_or_gone:
            folded, fold = cached_signatures, cached_fold
    todo = [name for name, signature in signatures.items() if folded.get(name) != signature]
    for name in sorted(todo, key=lambda name: (signatures[name][1], name)):
        try:
            fold.add_file(manifests[name])
        except FileNotFoundError:
            continue
        folded[name] = signatures[name]
    records = fold.finish(seam_mismatch_limit=SEAM_MISMATCH_LIMIT)
    if cache and todo:
        _write_cache(meta, folded, fold)
    if seam_mismatch_limit != SEAM_MISMATCH_LIMIT:
        for record in records.values():
            record["flags"] = "; ".join(flags_of(record, seam_mismatch_limit=seam_mismatch_limit))
    return list(records.values())


# ----------------------------------------------------------------------------------------------------------------
# Records


def _qc_columns(row: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in row.items() if key not in _NOT_QC}


def _record(stage: str, stem: str, latest: dict[str, str], made: dict[str, str] | None,
            *, seam_mismatch_limit: float | None) -> dict[str, str]:
    status = latest.get("status", "")
    record = dict.fromkeys(STATE_COLUMNS, "")
    record.update(stage=stage, stem=stem, eid=latest.get("eid", ""), instance=latest.get("instance", ""),
                  status=status, reason=latest.get("reason", ""), input=latest.get("input", ""),
                  finished_at=latest.get("finished_at", ""), seconds=latest.get("seconds", ""))
    if status == FAILED:
        source: dict[str, str] | None = latest
        record.update(state=FAILED, notes=latest.get("reason", ""), made_at="")
    elif status == SKIPPED and latest.get("reason", "").startswith(LEFT_OUT):
        source = latest
        record.update(state=LEFT_OUT, notes=latest.get("reason", ""), made_at="")
    else:
        # ok: the row made the output. skipped: the output was made by the latest ok row with the same settings
        # (a skip needs the same fingerprint); a skip without one (its run was killed before its rows were written)
        # keeps the skip's own row, whose QC figures the skip read back from the output itself.
        same = made is not None and made.get("settings_fingerprint") == latest.get("settings_fingerprint")
        source = latest if status == OK else (made if same else None)
        record.update(state=DONE, notes="" if source is None else source.get("reason", ""),
                      made_at="" if source is None else source.get("finished_at", ""))
    origin = source or latest
    record.update(output=origin.get("output", "") or latest.get("output", ""),
                  settings_fingerprint=origin.get("settings_fingerprint", ""),
                  version=origin.get("version", ""), output_version=origin.get("output_version", ""),
                  manifest=origin.get("manifest", ""))
    qc = _qc_columns(origin) if source is not None else _qc_columns(latest) if status == SKIPPED else {}
    record.update(qc)
    record["flags"] = "; ".join(flags_of(record, seam_mismatch_limit=seam_mismatch_limit))
    return record


def stage_state(
    meta: Path | str, *, stage: str | None = None, cache: bool = True,
    seam_mismatch_limit: float | None = SEAM_MISMATCH_LIMIT,
) -> list[dict[str, str]]:
    """The state of one stage (its metadata folder ``pipeline-<stage>/``): one record per input, sorted by stem."""
    meta = Path(meta)
    records = _fold_stage(meta, stage=stage or stage_of(meta), cache=cache, seam_mismatch_limit=seam_mismatch_limit)
    return [dict(record) for record in records]


def cohort_records(
    folder: Path | str, *, stages: Iterable[str] | None = None, cache: bool = True,
    seam_mismatch_limit: float | None = SEAM_MISMATCH_LIMIT,
) -> list[dict[str, str]]:
    """Every input's current state under ``folder``: a data root (every stage), a stage's output or metadata folder.

    One record per (stage, input), a dict of strings (as the manifests hold them) with the columns
    :data:`STATE_COLUMNS` followed by the stage's QC columns. ``state`` is ``done``, ``failed`` or ``left out``;
    inputs never run have no record. ``stages`` keeps only those stages. The public, typed view of these records is
    :func:`ukbb_pipeline.runtime.cohort.cohort_state`.
    """
    wanted = None if stages is None else set(stages)
    records: list[dict[str, str]] = []
    for name, meta in stage_folders(folder).items():
        if wanted is None or name in wanted:
            records.extend(stage_state(meta, stage=name, cache=cache, seam_mismatch_limit=seam_mismatch_limit))
    return records


def by_stem(records: Iterable[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {record["stem"]: record for record in records}
