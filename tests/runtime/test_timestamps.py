"""Manifest timestamps: in UTC with the zone, compared as times (issue 20, case 13)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.manifest import FAILED, OK, ManifestRow, ManifestWriter, read_manifests
from ukbb_pipeline.runtime.state import stage_state

STEM = "1000001_20201_2_0"


def _manifest(meta: Path, name: str, row: ManifestRow) -> Path:
    writer = ManifestWriter(meta, stage="unzip_mri", shard_index=0, shard_count=1)
    writer.path = meta / f"manifest-unzip_mri-{name}.csv"
    writer.add(row)
    writer.flush()
    return writer.path


def _row(status: str, when: str, *, stem: str = STEM) -> ManifestRow:
    ok = status == OK
    return ManifestRow(input=f"/raw/mris/{stem}.zip", status=status, eid=int(stem[:7]), instance=2,
                       output=f"/out/{stem}.h5" if ok else "", reason="" if ok else "damaged",
                       settings_fingerprint="fp", finished_at=when, qc={"swapped_stations": [3]} if ok else {})


@pytest.fixture
def meta(tmp_path) -> Path:
    folder = StageFolders(output=tmp_path / "mris-processed", stage="unzip_mri").meta
    folder.mkdir(parents=True)
    return folder


def test_new_rows_are_stamped_in_utc_with_the_zone(meta):
    path = _manifest(meta, "now", ManifestRow(input=f"/raw/{STEM}.zip", status=OK))
    (stamp,) = [row["finished_at"] for row in read_manifests(meta)]
    moment = datetime.fromisoformat(stamp)
    assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0
    assert abs((datetime.now(timezone.utc) - moment).total_seconds()) < 60
    assert path.exists()


def test_a_later_run_in_another_time_zone_counts_as_later(meta):
    """A run in Helsinki (UTC+2) failed at 00:10 UTC; a run in London made the output at 01:30 UTC. As text the
    Helsinki stamp sorts last; as times the London run is the latest, so the input is done."""
    _manifest(meta, "london", _row(OK, "2026-03-29T01:30:00+00:00"))
    _manifest(meta, "helsinki", _row(FAILED, "2026-03-29T02:10:00+02:00"))
    (latest,) = read_manifests(meta)
    assert latest["status"] == OK
    (record,) = stage_state(meta, cache=False)
    assert record["state"] == "done" and record["flags"] == "swapped station 3"


def test_old_stamps_without_a_zone_still_read_and_sort_with_new_ones(meta):
    _manifest(meta, "old", _row(FAILED, "2020-01-01T12:00:00"))
    _manifest(meta, "new", _row(OK, "2026-03-29T01:30:00+00:00"))
    (record,) = stage_state(meta, cache=False)
    assert record["state"] == "done"
    _manifest(meta, "newer", _row(FAILED, "2027-01-01T12:00:00+00:00"))
    assert stage_state(meta)[0]["state"] == "failed"
