"""The cohort's state as typed records: numbers are numbers, lists are lists, and a pandas table filters as expected."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import ukbb_pipeline
from ukbb_pipeline.runtime.cohort import typed_value
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.manifest import ManifestRow, ManifestWriter


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """unzip_mri's manifest as the stage writes it: one clean volume, one with a swap and a bad seam, one failure."""
    writer = ManifestWriter(StageFolders(tmp_path / "mris-processed", "unzip_mri").meta, stage="unzip_mri",
                            shard_index=0, shard_count=1)
    qc = {"n_stations": 6, "shape": "224x174x490", "fat_water_uncertain": False}
    writer.add(ManifestRow(input="/raw/1000001_20201_2_0.zip", status="ok", eid=1000001, instance=2, seconds=1.5,
                           qc={**qc, "swapped_stations": [], "swapped_regions": [], "max_seam_mismatch": 0.03}))
    writer.add(ManifestRow(input="/raw/1000002_20201_2_0.zip", status="ok", eid=1000002, instance=2, seconds=2.0,
                           reason="fat and water swapped in station 3 (3:whole); station 5 acquired twice",
                           qc={**qc, "swapped_stations": [3, 5],
                               "swapped_regions": ["3:whole", "5:left-leg z -215 to -330 mm"],
                               "max_seam_mismatch": 0.61}))
    writer.add(ManifestRow(input="/raw/1000003_20201_2_0.zip", status="failed", eid=1000003, instance=3,
                           reason="5 of 6 stations in the zip (station 6 missing)"))
    writer.flush()
    return tmp_path


def test_records_carry_numbers_lists_and_booleans(root):
    clean, swapped, failed = ukbb_pipeline.cohort_state(root)
    assert (clean["eid"], clean["instance"], clean["seconds"]) == (1000001, 2, 1.5)
    assert clean["max_seam_mismatch"] == 0.03 and clean["n_stations"] == 6
    assert clean["swapped_stations"] == [] and clean["flags"] == [] and clean["notes"] == []
    assert clean["shape"] == [224, 174, 490] and clean["fat_water_uncertain"] is False
    assert swapped["swapped_stations"] == [3, 5]
    assert swapped["swapped_regions"] == ["3:whole", "5:left-leg z -215 to -330 mm"]
    assert swapped["flags"] == ["swapped station 3 5", "seam mismatch 0.61"]
    assert swapped["notes"] == ["fat and water swapped in station 3 (3:whole)", "station 5 acquired twice"]
    assert (failed["state"], failed["instance"], failed["max_seam_mismatch"]) == ("failed", 3, None)
    assert [r["eid"] for r in ukbb_pipeline.cohort_state(root) if (r["max_seam_mismatch"] or 0) > 0.2] == [1000002]


def test_the_pandas_table_filters_by_number_and_by_flag(root):
    table = ukbb_pipeline.cohort_table(root)
    assert table["max_seam_mismatch"].dtype == "float64"
    assert str(table["eid"].dtype) == "Int64"
    assert table[table["max_seam_mismatch"] > 0.2]["eid"].tolist() == [1000002]
    swapped = table[table["flags"].map(lambda flags: any(flag.startswith("swapped") for flag in flags))]
    assert swapped["swapped_stations"].tolist() == [[3, 5]]
    assert table.groupby("state").size().to_dict() == {"done": 2, "failed": 1}
    assert isinstance(table["made_at"].dtype, pd.DatetimeTZDtype)


@pytest.mark.parametrize(("column", "text", "value"), [
    ("version", "0.10", "0.10"),  # a version is text, never 0.1
    ("centre_index", "28", 28),
    ("noise_sigma", "4.89396", 4.89396),
    ("channels", "fat_scan water_scan", ["fat_scan", "water_scan"]),
    ("seam_mismatch", "0.02 0.61", [0.02, 0.61]),
    ("some_text", "left-leg", "left-leg"),
    ("window_shift", "", None),
])
def test_each_cell_is_read_by_its_column(column, text, value):
    assert typed_value(column, text) == value
