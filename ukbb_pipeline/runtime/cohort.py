"""The cohort's state as typed records: numbers as numbers, lists as lists, and a pandas table on request.

The manifests (and :func:`~ukbb_pipeline.runtime.state.cohort_records`) hold text, as CSV does; a user filtering the
cohort wants ``record["max_seam_mismatch"] > 0.2`` and ``3 in record["swapped_stations"]`` to work. One table,
:data:`COLUMN_TYPES`, says how each known column is read; any other QC column is read by its text (an integer, a
number, ``True``/``False``, space-separated numbers as a list, else text). An empty cell is None (an empty list for a
list column).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ukbb_pipeline.errors import EnvironmentProblem
from ukbb_pipeline.runtime.state import SEAM_MISMATCH_LIMIT, cohort_records


def _items(separator: str | re.Pattern[str], item: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def read(text: str) -> list[Any]:
        parts = re.split(separator, text) if isinstance(separator, re.Pattern) else text.split(separator)
        return [item(part.strip("[] ")) for part in parts if part.strip("[] ")]
    return read


def _text(text: str) -> str | None:
    return text or None


def _bool(text: str) -> bool | None:
    return {"true": True, "false": False, "1": True, "0": False}.get(text.strip().lower())


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value


# column -> how its text is read. The state's own columns first, then the stages' QC columns that are not plain
# numbers (lists, booleans, text that looks like a number).
COLUMN_TYPES: dict[str, Callable[[str], Any]] = {
    "eid": _number,
    "instance": _number,
    "seconds": _number,
    "flags": _items("; ", str),  # what is worth a look: ["swapped station 3", "seam mismatch 0.61"]
    "notes": _items("; ", str),  # what the stage did about a quirk, or why it failed
    "version": _text,  # "0.10" is a version, not a number
    "settings_fingerprint": _text,
    "swapped_stations": _items(" ", int),  # 1-based station numbers: [3], [] when none
    "swapped_regions": _items(re.compile(r"\s+(?=\d+:)"), str),  # ["5:left-leg", "6:right-leg z -215 to -330 mm"]
    "fat_water_fixed": _bool,
    "fat_water_uncertain": _bool,
    "shape": _items("x", int),  # unzip_mri: "224x174x490" -> [224, 174, 490]
    "channels": _items(" ", str),  # extract_slices: ["fat_scan", "water_scan"]
    "pixel_spacing": _items(" ", float),  # unzip_dxa: [row mm, column mm]
    "split": _text,  # collect: train | val | test
}
TEXT_COLUMNS = ("stage", "stem", "state", "status", "reason", "input", "output", "made_at", "finished_at", "manifest")


def typed_value(column: str, text: str) -> Any:
    """One cell read as :data:`COLUMN_TYPES` says, or by its text for a column the table does not name."""
    read = COLUMN_TYPES.get(column)
    if read is not None:
        return read(text)
    if column in TEXT_COLUMNS:
        return text
    if not text:
        return None
    if text in ("True", "False"):
        return text == "True"
    number = _number(text)
    if number is not None:
        return number
    tokens = text.split()
    numbers = [_number(token) for token in tokens]
    if len(tokens) > 1 and all(value is not None for value in numbers):
        return numbers
    return text


def typed_record(record: dict[str, str]) -> dict[str, Any]:
    """A state record (text) with each value typed."""
    return {column: typed_value(column, text) for column, text in record.items()}


def cohort_state(
    folder: Path | str, *, stages: Iterable[str] | None = None, cache: bool = True,
    seam_mismatch_limit: float | None = SEAM_MISMATCH_LIMIT,
) -> list[dict[str, Any]]:
    """Every input's current state under ``folder`` (a data root, or a stage's output folder), one dict per input.

    Columns: ``stage, eid, instance, stem, state`` (done | failed | left out), ``status`` (the latest run's: ok |
    failed | skipped), ``flags`` and ``notes`` (lists of text), ``reason, input, output, settings_fingerprint,
    version, made_at, finished_at, seconds, manifest``, then the stage's QC columns, typed (``max_seam_mismatch`` a
    float, ``swapped_stations`` a list of ints, ``fat_water_uncertain`` a bool). Inputs never run have no record.
    ``stages`` keeps only those stages; ``seam_mismatch_limit`` is where a seam mismatch becomes a flag.
    """
    records = cohort_records(folder, stages=stages, cache=cache, seam_mismatch_limit=seam_mismatch_limit)
    return [typed_record(record) for record in records]


def cohort_table(
    folder: Path | str, *, stages: Iterable[str] | None = None,
    seam_mismatch_limit: float | None = SEAM_MISMATCH_LIMIT,
) -> Any:
    """:func:`cohort_state` as a pandas DataFrame (``pip install pandas``): numeric columns numeric (NaN when a
    stage has no such figure), ``made_at`` and ``finished_at`` as times, lists kept as lists."""
    try:
        import pandas as pd
    except ImportError:
        raise EnvironmentProblem("cohort_table needs pandas: pip install pandas "
                                 "(or use cohort_state, the same records as dicts)") from None
    table = pd.DataFrame(cohort_state(folder, stages=stages, seam_mismatch_limit=seam_mismatch_limit))
    for column in ("made_at", "finished_at"):
        if column in table:
            table[column] = pd.to_datetime(table[column].replace("", None), errors="coerce", utc=True,
                                           format="ISO8601")
    for column in table.columns:
        values = [value for value in table[column] if value is not None and not _is_nan(value)]
        if values and all(isinstance(value, int) and not isinstance(value, bool) for value in values):
            table[column] = table[column].astype("Int64")  # nullable: a stage without the figure has <NA>
        elif values and all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
            table[column] = pd.to_numeric(table[column])
    return table


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
