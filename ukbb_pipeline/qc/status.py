"""The status of a cohort: per stage, how many inputs are done, failed (by reason), flagged (by flag), missing,
excluded and out of date, from the cohort's state (:mod:`ukbb_pipeline.runtime.state`).

"Missing" is of two kinds: EIDs of the ``eids_file`` with no input at all (no zip was downloaded), and inputs with
no output (never run, or their output has gone). A stage's inputs are the zips in its raw folder (``unzip_dxa``,
``unzip_mri``) or what the stage before it made (``extract_slices`` from ``unzip_mri``). "Out of date" counts
outputs made with an older output version of their stage than the current one (:mod:`ukbb_pipeline.registry`): the
outputs a re-run would redo.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ukbb_pipeline import registry
from ukbb_pipeline.flags import SEAM_MISMATCH_LIMIT
from ukbb_pipeline.runtime.atomic import atomic_file
from ukbb_pipeline.runtime.cells import csv_cell
from ukbb_pipeline.runtime.inputs import discover_inputs
from ukbb_pipeline.runtime.provenance import out_of_date
from ukbb_pipeline.runtime.register import Withdrawals, register_path, withdrawn_lists
from ukbb_pipeline.runtime.state import DONE, FAILED, LEFT_OUT, cohort_records

log = logging.getLogger(__name__)

RAW_SUFFIX = ".zip"
# A quoted name opens after a non-word character and closes before one: the apostrophe of "exam's" is not a quote.
_NAMES_IN_REASON = re.compile(r"(?<!\w)'[^']*'(?!\w)|(?<!\w)\"[^\"]*\"(?!\w)|\d+(\.\d+)?")


def reason_group(reason: str) -> str:
    """A failure reason with its particulars (member names, numbers) blanked, to count failures by kind."""
    first = reason.split("; ")[0]
    return _NAMES_IN_REASON.sub(lambda match: "'...'" if match.group(0)[:1] in "'\"" else "N", first).strip()

COLUMNS = ("stage", "what", "detail", "count", "examples")


@dataclass
class StageStatus:
    """One stage's counts; ``failed``, ``flagged`` and ``missing`` are kind -> the visits (``<eid> visit <i>``)."""

    stage: str
    done: int = 0
    failed: dict[str, list[str]] = field(default_factory=dict)
    flagged: dict[str, list[str]] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    noted: int = 0  # done inputs with notes (a repeat chosen, an image passed over): worth knowing, not a flag
    excluded: int = 0
    withdrawn: int = 0  # inputs of participants in the root's withdrawal register (left out by every run)
    out_of_date: list[str] = field(default_factory=list)
    left_out: dict[str, list[str]] = field(default_factory=dict)  # collect: reason -> visits not collected
    versions: Counter = field(default_factory=Counter)  # the package versions that made the done outputs

    def lines(self, *, examples: int = 5) -> list[dict[str, str]]:
        """The status as table rows (the CSV's): stage, what, detail, count, examples."""
        def line(what: str, detail: str, items: list[str] | int) -> dict[str, str]:
            count = items if isinstance(items, int) else len(items)
            shown = "" if isinstance(items, int) else ", ".join(items[:examples]) + (" ..." if count > examples else "")
            return {"stage": self.stage, "what": what, "detail": detail, "count": str(count), "examples": shown}

        rows = [line("done", "", self.done), line("failed", "", sum(len(v) for v in self.failed.values()))]
        rows += [line("failed", kind, visits) for kind, visits in _by_size(self.failed)]
        rows.append(line("flagged", "", len({v for visits in self.flagged.values() for v in visits})))
        rows += [line("flagged", kind, visits) for kind, visits in _by_size(self.flagged)]
        rows.append(line("with notes", "", self.noted))
        rows += [line("missing", kind, visits) for kind, visits in self.missing.items()]
        rows += [line("left out", kind, visits) for kind, visits in _by_size(self.left_out)]
        rows.append(line("excluded", "", self.excluded))
        rows.append(line("withdrawn", "", self.withdrawn))  # inputs of EIDs in exclude_eids_file
        rows.append(line("out of date", "", self.out_of_date))  # made before the last change to the stage's outputs
        rows += [line("version", version, count) for version, count in sorted(self.versions.items())]
        return rows


def _by_size(groups: Mapping[str, list[str]]) -> list[tuple[str, list[str]]]:
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))


def flags_of(record: Mapping[str, str]) -> list[str]:
    """A done input's flags (what is worth a look): the one definition status and the report count by."""
    return [flag for flag in record.get("flags", "").split("; ") if flag]


def notes_of(record: Mapping[str, str]) -> list[str]:
    """A done input's notes (what the stage did about a quirk), without a mere redo."""
    return [note for note in record.get("notes", "").split("; ") if note and not note.startswith("redone:")]


def visit(record: Mapping[str, str]) -> str:
    return f"{record['eid']} visit {record['instance']}" if record.get("eid") else record.get("stem", "")


def flag_kind(flag: str) -> str:
    """``swapped station 3 (fixed)`` -> ``swapped station (fixed)``; ``seam mismatch 0.61`` -> ``seam mismatch``."""
    return " ".join(re.sub(r"[+-]?\d+(\.\d+)?(e[+-]?\d+)?", " ", flag).split())


def cohort_status(
    root: Path,
    *,
    raw_inputs: Mapping[str, str | Path] | None = None,
    only_eids: Iterable[int] | None = None,
    exclude_eids: Iterable[int] | None = None,
    seam_mismatch_limit: float | None = SEAM_MISMATCH_LIMIT,
    check_outputs: bool = True,
) -> list[StageStatus]:
    """Every stage's status under ``root``. ``raw_inputs`` maps a stage to the folder of its input zips; inputs of
    participants in the root's withdrawal register are counted as withdrawn, never as not yet run."""
    records = cohort_records(root, seam_mismatch_limit=seam_mismatch_limit)
    return statuses_from_records(records, raw_inputs=raw_inputs, only_eids=only_eids, exclude_eids=exclude_eids,
                                 check_outputs=check_outputs, withdrawn=Withdrawals.of_root(root))


def statuses_from_records(
    records: Iterable[dict[str, str]],
    *,
    raw_inputs: Mapping[str, str | Path] | None = None,
    only_eids: Iterable[int] | None = None,
    exclude_eids: Iterable[int] | None = None,
    check_outputs: bool = True,
    withdrawn: Container[object] = (),
) -> list[StageStatus]:
    """The status of each stage in ``records`` (state records of one or more stages, as ``cohort_records`` gives)."""
    by_stage: dict[str, list[dict[str, str]]] = defaultdict(list)
    for record in records:
        by_stage[record["stage"]].append(record)
    raw_inputs = dict(raw_inputs or {})
    only = None if only_eids is None else set(only_eids)
    exclude = set(exclude_eids or ())
    names = sorted(set(by_stage) | {name for name, folder in raw_inputs.items() if Path(folder).is_dir()},
                   key=registry.stage_rank)
    statuses = []
    for name in names:
        status = _stage_status(name, by_stage.get(name, []), check_outputs=check_outputs)
        inputs = _inputs(name, raw_inputs, by_stage)
        if inputs is not None:
            _missing(status, by_stage.get(name, []), inputs, only=only, exclude=exclude, withdrawn=withdrawn)
        statuses.append(status)
    return statuses


def _stage_status(name: str, records: list[dict[str, str]], *, check_outputs: bool) -> StageStatus:
    status = StageStatus(stage=name)
    failed: dict[str, list[str]] = defaultdict(list)
    flagged: dict[str, list[str]] = defaultdict(list)
    gone = []
    left_out: dict[str, list[str]] = defaultdict(list)
    for record in records:
        if record["state"] == LEFT_OUT:
            reason = re.sub(r"\s*\(stage\.keep_flagged=true keeps it\)", "", record["notes"].removeprefix("left out: "))
            left_out[reason_group(reason)].append(visit(record))
            continue
        if record["state"] == FAILED:
            failed[reason_group(record["notes"]) or "no reason"].append(visit(record))
            continue
        if record["state"] != DONE:
            continue
        if check_outputs and record["output"] and not os.path.exists(record["output"]):
            gone.append(visit(record))
            continue
        status.done += 1
        status.versions[record.get("version") or "unknown"] += 1
        if out_of_date(name, record.get("output_version", "")):
            status.out_of_date.append(visit(record))
        for flag in flags_of(record):
            flagged[flag_kind(flag)].append(visit(record))
        status.noted += bool(notes_of(record))
    status.failed, status.flagged, status.left_out = dict(failed), dict(flagged), dict(left_out)
    if gone:
        status.missing["output gone (recorded as done)"] = gone
    return status


def _inputs(name: str, raw_inputs: Mapping[str, str | Path], by_stage: Mapping[str, list[dict[str, str]]]
            ) -> dict[str, tuple[int | None, str]] | None:
    """The stage's inputs: stem -> (eid, visit), or None when the stage's inputs are not known here."""
    if name in raw_inputs and Path(raw_inputs[name]).is_dir():
        found = discover_inputs(Path(raw_inputs[name]), suffix=RAW_SUFFIX)
        return {item.stem: (item.eid, f"{item.eid} visit {item.instance}" if item.eid else item.stem)
                for item in found}
    upstream = registry.stage(name).upstream if name in registry.STAGE_NAMES else None
    if upstream is not None and upstream in by_stage:
        return {record["stem"]: (int(record["eid"]) if record["eid"].isdigit() else None, visit(record))
                for record in by_stage[upstream] if record["state"] == DONE}
    return None


def _missing(status: StageStatus, records: list[dict[str, str]], inputs: Mapping[str, tuple[int | None, str]],
             *, only: set[int] | None, exclude: set[int], withdrawn: Container[object] = ()) -> None:
    known = {record["stem"] for record in records}
    with_input = {eid for eid, _ in inputs.values() if eid is not None}
    gone = {stem for stem, (eid, _) in inputs.items() if eid is not None and eid in withdrawn}
    kept = {stem: value for stem, value in inputs.items()
            if value[0] not in exclude and (only is None or value[0] in only) and stem not in gone}
    status.excluded = sum(1 for eid, _ in inputs.values() if eid in exclude)
    status.withdrawn = len(gone)
    if only is not None:
        no_input = sorted(eid for eid in only - with_input if eid not in exclude)
        status.missing["EIDs in eids_file with no input"] = [str(eid) for eid in no_input]
    not_run = [value[1] for stem, value in sorted(kept.items()) if stem not in known]
    status.missing["inputs not yet run"] = not_run


def register_lines(root: Path) -> list[dict[str, str]]:
    """The root's withdrawal register as status rows: one per list applied (``stage=withdraw``), with its count."""
    return [{"stage": "withdrawal register", "what": "list", "detail": name, "count": str(count),
             "examples": f"applied {when}"} for name, when, count in withdrawn_lists(root)]


def format_register(root: Path) -> str:
    """The withdrawal register as text: where it is and the lists applied (every run leaves those participants out)."""
    rows = register_lines(root)
    if not rows:
        return f"withdrawal register: none ({register_path(root)} does not exist)"
    total = sum(int(row["count"]) for row in rows)
    lines = [f"withdrawal register ({register_path(root)}): {total} participant(s), left out by every run:"]
    lines += [f"  {row['detail']}: {row['count']} ({row['examples']})" for row in rows]
    return "\n".join(lines)


def format_status(statuses: list[StageStatus], *, examples: int = 5) -> str:
    """The status as text, one block per stage."""
    lines = []
    for status in statuses:
        lines.append(f"{status.stage}:")
        for row in status.lines(examples=examples):
            if row["what"] in ("version",) or (row["detail"] and row["count"] == "0"):
                continue
            detail = f" {row['detail']}" if row["detail"] else ""
            examples_text = f"  ({row['examples']})" if row["examples"] else ""
            lines.append(f"  {row['what']}{detail}: {row['count']}{examples_text}")
    return "\n".join(lines) if lines else "no stage has run here yet"


def write_status_csv(statuses: list[StageStatus], *, output_dir: Path, examples: int = 5,
                     extra: Iterable[dict[str, str]] = ()) -> Path:
    """Write ``<output_dir>/status-<time>.csv`` (columns stage, what, detail, count, examples), atomically."""
    path = output_dir / f"status-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    with atomic_file(path, scratch_dir=output_dir / "tmp") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            for lines in [*(status.lines(examples=examples) for status in statuses), list(extra)]:
                writer.writerows({key: csv_cell(str(value)) for key, value in line.items()}
                                 for line in lines)  # no cell a spreadsheet runs
    return path
