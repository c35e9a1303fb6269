"""The zips' ``manifest.cvs``: comma-separated, unquoted, with its real defects (ukbb-format.md 1.2).

The header misspells ``series discription``; the ``date`` value contains a comma (``Aug 30, 2015 1:13:10 PM``),
so a naive CSV reader shifts every column after it; some manifests have run-on records (a missing line break) and
a truncated last line. The exact header text is unknown outside UK Biobank; the column order follows ML4H's parser
(filename, patientid, studyid, studydescription, date, seriesid, series discription, modality, aet, host).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

HEADER = "filename,patientid,studyid,studydescription,date,seriesid,series discription,modality,aet,host"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
AE_TITLE = "UKBB_IMG"
HOST = "ukbb-archive"


@dataclass(frozen=True)
class ManifestRow:
    filename: str
    patient_id: str
    study_uid: str
    study_description: str
    when: datetime
    series_uid: str
    series_description: str
    modality: str


def manifest_date(when: datetime) -> str:
    """``Aug 30, 2015 1:13:10 PM``: the medium date-time format, comma included."""
    hour = when.hour % 12 or 12
    half = "AM" if when.hour < 12 else "PM"
    return f"{_MONTHS[when.month - 1]} {when.day}, {when.year} {hour}:{when.minute:02d}:{when.second:02d} {half}"


def manifest_text(rows: Sequence[ManifestRow], *, malformed: bool = False, rng: np.random.Generator) -> str:
    """The manifest: header, one line per file; ``malformed`` adds a run-on record and a truncated last line."""
    lines = [
        ",".join(
            (
                row.filename,
                row.patient_id,
                row.study_uid,
                row.study_description,
                manifest_date(row.when),
                row.series_uid,
                row.series_description,
                row.modality,
                AE_TITLE,
                HOST,
            )
        )
        for row in rows
    ]
    if not malformed or len(lines) < 3:
        return "\n".join([HEADER, *lines]) + "\n"
    joined = int(rng.integers(0, len(lines) - 2))
    lines[joined : joined + 2] = [lines[joined] + lines[joined + 1]]  # a lost line break
    last_fields = lines[-1].split(",")
    lines[-1] = ",".join(last_fields[: int(rng.integers(1, 3))])  # cut off after one or two fields
    return "\n".join([HEADER, *lines])  # and no final line break
