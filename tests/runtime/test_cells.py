"""CSV cells that never run as formulas, and log lines that text from a file cannot forge (issue 20, case 15)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from ukbb_pipeline.qc.status import cohort_status, write_status_csv
from ukbb_pipeline.runtime.cells import EscapeControls, csv_cell, csv_value, escape_controls
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.manifest import FAILED, ManifestRow, ManifestWriter, read_manifests
from ukbb_pipeline.runtime.state import stage_state


@pytest.fixture
def meta(tmp_path) -> Path:
    folder = StageFolders(output=tmp_path / "mris-processed", stage="unzip_mri").meta
    folder.mkdir(parents=True)
    return folder


# --- CSV cells -------------------------------------------------------------------------------------------------------

HOSTILE = ["=HYPERLINK(\"http://x\")", "+1+2", "-2+3", "@SUM(A1)", "\tx", "'=quoted", "''", "'", "-3", "+4.5", "1e-3",
           "plain", ""]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_cell_reads_back_as_it_was_written(text):
    cell = csv_cell(text)
    assert csv_value(cell) == text
    assert cell[:1] not in ("=", "+", "@", "\t") or cell in ("+4.5",), cell
    assert not cell.startswith("-") or cell == "-3"


def test_input_names_starting_a_formula_are_quoted_in_manifest_state_and_status(meta, tmp_path):
    names = ["=1+1_20201_2_0", "+cmd_20201_2_0", "@SUM(A1)_20201_2_0", "-2+3_20201_2_0"]
    writer = ManifestWriter(meta, stage="unzip_mri", shard_index=0, shard_count=1)
    for name in names:
        writer.add(ManifestRow(input=f"{name}.zip", status=FAILED, reason=f"=bad {name}", qc={"note": "@x"}))
    writer.flush()
    status_csv = write_status_csv(cohort_status(meta.parent), output_dir=tmp_path / "status", examples=10)
    for path in (writer.path, status_csv, *meta.glob("state.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            cells = [cell for row in csv.reader(handle) for cell in row]
        assert not [cell for cell in cells if cell[:1] in ("=", "+", "@", "-")], path.name
    assert sorted(row["input"] for row in read_manifests(meta)) == sorted(f"{name}.zip" for name in names)
    assert {row["reason"] for row in read_manifests(meta)} == {f"=bad {name}" for name in names}
    records = stage_state(meta)
    assert sorted(record["input"] for record in records) == sorted(f"{name}.zip" for name in names)
    assert (meta / "state.csv").exists()
    assert sorted(record["input"] for record in stage_state(meta)) == sorted(f"{name}.zip" for name in names)


# --- log lines -------------------------------------------------------------------------------------------------------


def test_control_characters_are_escaped_so_one_record_is_one_line():
    assert escape_controls("Arm\n2026-12-06 ERROR forged\x1b[2J") == "Arm\\n2026-12-06 ERROR forged\\x1b[2J"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s: %s", ("a.zip", "ignored Arm\nERROR forged"), None)
    EscapeControls().filter(record)
    assert record.getMessage() == "a.zip: ignored Arm\\nERROR forged"
    summary = logging.LogRecord("x", logging.INFO, __file__, 1, "two\nlines\x07", None, None)
    EscapeControls().filter(summary)
    assert summary.getMessage() == "two\nlines\\x07", "the pipeline's own multi-line messages keep their lines"
