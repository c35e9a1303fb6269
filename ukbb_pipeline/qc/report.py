"""A run report: one self-contained HTML page about every stage under a data root.

Built from the cohort's state (:mod:`ukbb_pipeline.runtime.state`: every run's and shard's manifests, a skipped
input keeping the QC of the run that made its output) and the QC pictures, so it can be made at any time, on any
machine that sees the folders, and a re-run that skips everything shows what the first run showed.
Self-contained: inline CSS, pictures embedded as base64 data URIs, no scripts, no network; it can be mailed or
archived as one file.

Shown: the status per stage (done, failed, flagged, missing, excluded, out of date), the failures with their reasons,
flagged inputs (done with a flag, counted as ``stage=status`` counts them), inputs done with notes only, the
fat/water swap table, the seam-mismatch table (QC columns whose name contains ``seam``, worst first), splits of the
paired collection, and each stage's contact sheets.
"""

from __future__ import annotations

import base64
import html
import math
import socket
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ukbb_pipeline.flags import SEAM_MISMATCH_LIMIT
from ukbb_pipeline.qc.sheets import sheet_files
from ukbb_pipeline.qc.status import StageStatus, flags_of, format_status, notes_of, statuses_from_records
from ukbb_pipeline.runtime.atomic import atomic_file
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.state import DONE, FAILED, stage_state

SWAP_COLUMN = "swapped_stations"
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em} h2{border-bottom:2px solid #ccd;padding-bottom:.2em;margin-top:2em} h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em} th,td{border:1px solid #ccd;padding:.25em .6em;text-align:left;
vertical-align:top} th{background:#eef} td.n{text-align:right;font-variant-numeric:tabular-nums}
.failed{color:#a00;font-weight:600} .ok{color:#070} .muted{color:#777} .note{background:#ffd;padding:.4em .8em}
figure{margin:.5em 0 1.5em} figure img{max-width:100%;border:1px solid #ccd} figcaption{color:#555}
"""


@dataclass
class StageReport:
    """What one stage's folder says: its inputs' state records and its QC pictures."""

    name: str
    folder: Path
    rows: list[dict[str, str]] = field(default_factory=list)  # state records (runtime.state), one per input
    pictures: list[Path] = field(default_factory=list)  # contact sheets
    other_pictures: int = 0  # per-subject PNGs: counted, not embedded

    @property
    def counts(self) -> Counter:
        return Counter(row["state"] for row in self.rows)

    @property
    def done(self) -> list[dict[str, str]]:
        return [row for row in self.rows if row["state"] == DONE]

    @property
    def failures(self) -> list[dict[str, str]]:
        return [row for row in self.rows if row["state"] == FAILED]

    @property
    def flagged(self) -> list[dict[str, str]]:
        """Done inputs with flags (a swap, a seam mismatch, a moved window): counted as ``stage=status`` counts."""
        return [row for row in self.done if flags_of(row)]

    @property
    def noted(self) -> list[dict[str, str]]:
        """Done inputs with notes but no flag (a repeat chosen, an image passed over; a mere redo is no note)."""
        return [row for row in self.done if notes_of(row) and not flags_of(row)]


def has_swaps(row: Mapping[str, str]) -> bool:
    value = row.get(SWAP_COLUMN, "").strip().strip("[]").strip()
    return bool(value) and value not in {"0", "none", "None"}


def read_stage(name: str, folder: Path, *, seam_mismatch_limit: float | None = SEAM_MISMATCH_LIMIT) -> StageReport:
    """A stage's state (every run and shard) and its QC pictures; empty when it never ran."""
    folders = StageFolders(output=folder, stage=name)
    report = StageReport(name=name, folder=folder)
    if folders.meta.is_dir() and any(folders.meta.glob("manifest-*.csv")):
        report.rows = stage_state(folders.meta, stage=name, seam_mismatch_limit=seam_mismatch_limit)
    if folders.qc.is_dir():
        report.pictures = sheet_files(folders.qc)
        report.other_pictures = sum(1 for path in (folders.qc / "subjects").rglob("*.png"))
    return report


def render(stages: list[StageReport], *, root: Path, statuses: list[StageStatus] | None = None,
           max_pictures: int = 24, max_rows: int = 1000) -> str:
    """The report page as one HTML string."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>ukbb-pipeline run report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>ukbb-pipeline run report</h1>",
        f"<p class='muted'>Data root <code>{_e(root)}</code>; made {_e(time.strftime('%Y-%m-%d %H:%M:%S'))} on "
        f"{_e(socket.gethostname())}. Every input's latest outcome over all runs and shards; an input a re-run "
        "skipped keeps the QC of the run that made its output.</p>",
        "<h2 id='counts'>Counts per stage</h2>",
        _counts_table(stages),
        "<h2 id='status'>Status</h2>",
        f"<pre>{_e(format_status(statuses))}</pre>" if statuses else "<p class='muted'>No status.</p>",
        "<h2 id='failures'>Failures</h2>",
        _failures(stages, max_rows=max_rows),
        "<h2 id='flagged'>Flagged subjects</h2>",
        _flagged(stages, max_rows=max_rows),
        "<h2 id='notes'>Notes</h2>",
        _noted(stages, max_rows=max_rows),
        "<h2 id='swaps'>Fat/water swaps</h2>",
        _swaps(stages, max_rows=max_rows),
        "<h2 id='seams'>Seam mismatch</h2>",
        _seams(stages, max_rows=max_rows),
        _splits(stages),
        "<h2 id='pictures'>QC pictures</h2>",
        _pictures(stages, max_pictures=max_pictures),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(
    header: list[str], rows: list[list[object]], *, numeric: set[int] | frozenset[int] = frozenset(),
    cls: dict[int, str] | None = None,
) -> str:
    head = "".join(f"<th>{_e(name)}</th>" for name in header)
    body = []
    for row in rows:
        cells = []
        for index, value in enumerate(row):
            marked = (cls or {}).get(index, "") if value not in (0, "0", "") else ""  # a zero is not alarming
            classes = " ".join(c for c in ("n" if index in numeric else "", marked) if c)
            attribute = f" class='{classes}'" if classes else ""
            cells.append(f"<td{attribute}>{_e(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _capped(rows: list, max_rows: int) -> tuple[list, str]:
    if len(rows) <= max_rows:
        return rows, ""
    return rows[:max_rows], f"<p class='note'>Showing {max_rows} of {len(rows)} rows; the manifests hold them all.</p>"


def _counts_table(stages: list[StageReport]) -> str:
    rows = []
    for stage in stages:
        counts = stage.counts
        last = max((row.get("finished_at", "") for row in stage.rows), default="")
        with_notes = sum(1 for row in stage.done if notes_of(row))
        rows.append([stage.name, counts[DONE], counts[FAILED], len(stage.flagged), with_notes, len(stage.rows),
                     last or "not run", str(stage.folder)])
    return _table(["stage", "done", "failed", "flagged", "with notes", "inputs", "last run", "folder"], rows,
                  numeric={1, 2, 3, 4, 5}, cls={2: "failed"})


def _failures(stages: list[StageReport], *, max_rows: int) -> str:
    rows = [
        [stage.name, row["eid"], row["instance"], Path(row["input"]).name, row["notes"], row.get("finished_at", "")]
        for stage in stages
        for row in stage.failures
    ]
    if not rows:
        return "<p class='ok'>No failures.</p>"
    shown, note = _capped(rows, max_rows)
    return f"<p class='failed'>{len(rows)} failed input(s).</p>" + note + _table(
        ["stage", "eid", "instance", "input", "reason", "when"], shown)


def _flagged(stages: list[StageReport], *, max_rows: int) -> str:
    rows = [[stage.name, row["eid"], row["instance"], Path(row["input"]).name, "; ".join(flags_of(row)),
             "; ".join(notes_of(row))] for stage in stages for row in stage.flagged]
    if not rows:
        return "<p class='ok'>No flagged subjects.</p>"
    shown, note = _capped(rows, max_rows)
    return f"<p>{len(rows)} input(s) done with a flag.</p>" + note + _table(
        ["stage", "eid", "instance", "input", "flags", "notes"], shown)


def _noted(stages: list[StageReport], *, max_rows: int) -> str:
    rows = [[stage.name, row["eid"], row["instance"], Path(row["input"]).name, "; ".join(notes_of(row))]
            for stage in stages for row in stage.noted]
    if not rows:
        return "<p class='ok'>No other notes.</p>"
    shown, note = _capped(rows, max_rows)
    return f"<p>{len(rows)} input(s) done with notes only (no flag).</p>" + note + _table(
        ["stage", "eid", "instance", "input", "notes"], shown)


def _swaps(stages: list[StageReport], *, max_rows: int) -> str:
    rows = [[stage.name, row["eid"], row["instance"], Path(row["input"]).name, row[SWAP_COLUMN]]
            for stage in stages for row in stage.done if has_swaps(row)]
    checked = sum(1 for stage in stages for row in stage.done if SWAP_COLUMN in row)
    if not checked:
        return "<p class='muted'>No stage recorded swap checks.</p>"
    if not rows:
        return f"<p class='ok'>No fat/water swaps in {checked} checked input(s).</p>"
    shown, note = _capped(rows, max_rows)
    return f"<p>{len(rows)} of {checked} checked input(s) have swapped stations.</p>" + note + _table(
        ["stage", "eid", "instance", "input", "swapped stations (1-based)"], shown)


def _seams(stages: list[StageReport], *, max_rows: int) -> str:
    sections = []
    for stage in stages:
        columns = sorted({key for row in stage.rows for key in row if "seam" in key.lower()})
        rows = [row for row in stage.done if any(row.get(c, "") for c in columns)]
        if not columns or not rows:
            continue
        rows.sort(key=lambda row: -_worst(row, columns))
        shown, note = _capped(rows, max_rows)
        table = _table(["eid", "instance", "input", *columns],
                       [[row["eid"], row["instance"], Path(row["input"]).name, *(row.get(c, "") for c in columns)]
                        for row in shown], numeric=set(range(3, 3 + len(columns))))
        sections.append(f"<h3>{_e(stage.name)}</h3><p class='muted'>Worst first (largest figure in any seam "
                        f"column).</p>{note}{table}")
    return "".join(sections) or "<p class='muted'>No stage recorded seam figures.</p>"


def _worst(row: Mapping[str, str], columns: list[str]) -> float:
    values = []
    for column in columns:
        for token in row.get(column, "").replace(",", " ").split():
            try:
                value = abs(float(token.strip("[]")))
            except ValueError:
                continue
            if math.isfinite(value):
                values.append(value)
    return max(values, default=0.0)


def _splits(stages: list[StageReport]) -> str:
    sections = []
    for stage in stages:
        counts = Counter(row["split"] for row in stage.done if row.get("split"))
        if counts:
            rows = [[name, counts[name]] for name in sorted(counts)]
            sections.append(f"<h3>{_e(stage.name)}</h3>" + _table(["split", "pairs"], rows, numeric={1}))
    return "<h2 id='splits'>Splits</h2>" + "".join(sections) if sections else ""


def _pictures(stages: list[StageReport], *, max_pictures: int) -> str:
    sections = []
    for stage in stages:
        if not stage.pictures and not stage.other_pictures:
            continue
        figures = []
        for path in stage.pictures[:max_pictures]:
            try:
                data = base64.b64encode(path.read_bytes()).decode("ascii")
            except OSError as error:
                figures.append(f"<p class='failed'>{_e(path.name)}: {_e(error.strerror)}</p>")
                continue
            figures.append(f"<figure><img src='data:image/png;base64,{data}' alt='{_e(path.name)}'>"
                           f"<figcaption>{_e(path.name)}</figcaption></figure>")
        rest = stage.pictures[max_pictures:]
        more = ""
        if rest:
            names = ", ".join(_e(path.name) for path in rest[:50]) + (" ..." if len(rest) > 50 else "")
            more = f"<p class='note'>{len(rest)} more picture(s) not embedded, in {_e(rest[0].parent)}: {names}</p>"
        if stage.other_pictures:
            more += (f"<p class='muted'>{stage.other_pictures} per-subject picture(s) in sub-folders of "
                     f"{_e(StageFolders(stage.folder, stage.name).qc)}.</p>")
        sections.append(f"<h3>{_e(stage.name)}</h3>" + "".join(figures) + more)
    return "".join(sections) or "<p class='muted'>No QC pictures.</p>"


def write_report(
    stage_dirs: Mapping[str, str | Path],
    *,
    output_dir: Path,
    root: Path,
    max_pictures: int = 24,
    max_rows: int = 1000,
    only_eids: Iterable[int] | None = None,
    exclude_eids: Iterable[int] | None = None,
    raw_inputs: Mapping[str, str | Path] | None = None,
    seam_mismatch_limit: float | None = SEAM_MISMATCH_LIMIT,
) -> Path:
    """Write ``<output_dir>/report-<time>.html`` about the stages in ``stage_dirs`` (name -> output folder);
    ``raw_inputs`` (stage -> the folder of its input zips) lets the status count the inputs not yet run."""
    stages = [read_stage(name, Path(folder), seam_mismatch_limit=seam_mismatch_limit)
              for name, folder in stage_dirs.items()]
    statuses = statuses_from_records([row for stage in stages for row in stage.rows], raw_inputs=raw_inputs,
                                     only_eids=only_eids, exclude_eids=exclude_eids)
    page = render(stages, root=root, statuses=statuses, max_pictures=max_pictures, max_rows=max_rows)
    path = output_dir / f"report-{time.strftime('%Y%m%d-%H%M%S')}.html"
    with atomic_file(path, scratch_dir=output_dir / "tmp") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
