"""Run manifests: one CSV row per input per run, and a reader that sees all runs and shards as one table.

Each run of each shard writes its own file (so concurrent runs never share one), named ``manifest-*.csv`` in the
stage's metadata folder, rewritten atomically as rows arrive so that a killed run still leaves its finished rows.
"""

from __future__ import annotations

import csv
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ukbb_pipeline import __version__
from ukbb_pipeline.errors import OutputError
from ukbb_pipeline.runtime.atomic import atomic_file
from ukbb_pipeline.runtime.cells import csv_cell, csv_values
from ukbb_pipeline.runtime.timestamps import file_stamp, instant, now_utc

BASE_COLUMNS = (
    "eid",
    "instance",
    "input",
    "output",
    "status",
    "reason",
    "seconds",
    "settings_fingerprint",
    "version",
    "output_version",
    "finished_at",
)
OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass
class ManifestRow:
    """The outcome for one input: status ok | failed | skipped, a one-line reason, and the stage's QC figures."""

    input: str
    status: str
    eid: int | None = None
    instance: int | None = None
    output: str = ""
    reason: str = ""
    seconds: float = 0.0
    settings_fingerprint: str = ""
    version: str = __version__  # the package version that wrote the row (and, for an ok row, the output)
    output_version: str = ""  # the stage's output version (ukbb_pipeline.registry), part of the settings fingerprint
    finished_at: str = field(default_factory=now_utc)  # UTC, with the zone
    qc: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        record = {column: getattr(self, column) for column in BASE_COLUMNS}
        record["eid"] = "" if self.eid is None else self.eid
        record["instance"] = "" if self.instance is None else self.instance
        record["seconds"] = f"{self.seconds:.3f}"
        record["reason"] = " ".join(self.reason.split())  # one line, always
        record.update({key: _cell(value) for key, value in self.qc.items()})
        return record


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_cell(item) for item in value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class ManifestWriter:
    """Collects the rows of one run of one shard and keeps its CSV file current on disk."""

    def __init__(self, folder: Path, *, stage: str, shard_index: int, shard_count: int, flush_every_s: float = 10.0,
                 keep: Callable[[ManifestRow], bool] | None = None):
        """``keep`` is asked about every row before each flush (the withdrawal register): rows it refuses are dropped,
        from the file and from memory."""
        stamp = file_stamp()
        host = socket.gethostname().split(".")[0]
        name = f"manifest-{stage}-{stamp}-shard{shard_index}of{shard_count}-{host}-{os.getpid()}"
        self.path = folder / f"{name}.csv"
        again = 1
        while self.path.exists():  # a second run in the same process and second (the Python API): never overwrite
            self.path, again = folder / f"{name}-{again}.csv", again + 1
        self._scratch = folder / "tmp"
        self._rows: list[ManifestRow] = []
        self._flush_every_s = flush_every_s
        self._last_flush = 0.0
        self._keep = keep

    @property
    def rows(self) -> list[ManifestRow]:
        return list(self._rows)

    def add(self, row: ManifestRow) -> None:
        self._rows.append(row)
        if time.monotonic() - self._last_flush >= self._flush_every_s:
            self.flush()

    def flush(self) -> None:
        """Rewrite the CSV file atomically with every row so far (:class:`OutputError` when the disk refuses)."""
        if self._keep is not None:
            self._rows = [row for row in self._rows if self._keep(row)]
        records = [row.as_record() for row in self._rows]
        extra = sorted({key for record in records for key in record} - set(BASE_COLUMNS))
        try:
            with atomic_file(self.path, scratch_dir=self._scratch) as tmp:
                with open(tmp, "w", newline="", encoding="utf-8") as handle:
                    writer = csv.DictWriter(handle, fieldnames=[*BASE_COLUMNS, *extra], restval="")
                    writer.writeheader()
                    writer.writerows({key: csv_cell(str(value)) for key, value in record.items()}
                                     for record in records)
        except OSError as error:
            raise OutputError(f"cannot write the manifest {self.path}: {error.strerror or error}") from None
        self._last_flush = time.monotonic()


def manifest_files(folder: Path) -> list[Path]:
    """The manifest files of ``folder`` (a stage's output folder or its metadata folder), oldest first.

    They sit in the metadata folder (``<output>/pipeline-<stage>/``); only when none is there is the whole tree
    searched (which, beside 100,000 outputs, sidecars and pictures, takes a while).
    """
    found = [*folder.glob("manifest-*.csv"), *folder.glob("pipeline-*/manifest-*.csv")]
    if not found:
        found = list(folder.rglob("manifest-*.csv"))
    stamped = []
    for path in found:
        try:
            stamped.append((path.stat().st_mtime, path.name, path))
        except FileNotFoundError:  # removed meanwhile (a withdrawal, a clean-up)
            continue
    return [path for _, _, path in sorted(stamped)]


def read_manifests(folder: Path | str, *, latest: bool = True) -> list[dict[str, str]]:
    """Read every manifest of a stage (all runs, all shards) as one table: a list of rows (dicts of strings).

    With ``latest`` (the default) only the most recent row per input is kept, so the table says where every input
    stands now. ``pandas.DataFrame(read_manifests(folder))`` gives a data frame.
    """
    rows: list[dict[str, str]] = []
    for path in manifest_files(Path(folder)):
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None) or []
            for values in reader:
                if not values:
                    continue
                values += [""] * (len(header) - len(values))
                record = dict(zip(header, csv_values(values), strict=False))
                record["manifest"] = str(path)
                rows.append(record)
    if not latest:
        return rows
    newest: dict[str, dict[str, str]] = {}
    for record in sorted(rows, key=lambda r: instant(r.get("finished_at", ""))):  # as times, not as text
        newest[record["input"]] = record
    return sorted(newest.values(), key=lambda r: r["input"])

