"""The cohort's state: each input's current outcome, QC and flags across every run and shard."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ukbb_pipeline
from ukbb_pipeline.qc.status import reason_group
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.manifest import FAILED, OK, SKIPPED, ManifestRow, ManifestWriter
from ukbb_pipeline.runtime.state import CACHE_NAME, cohort_records, stage_folders, stage_state

FP = "settings1-input1"


def write_run(meta: Path, rows: list[ManifestRow], *, name: str) -> Path:
    """One run's manifest, written by the pipeline's own writer under a chosen file name."""
    writer = ManifestWriter(meta, stage="unzip_mri", shard_index=0, shard_count=1)
    writer.path = meta / f"manifest-unzip_mri-{name}.csv"
    for row in rows:
        writer.add(row)
    writer.flush()
    return writer.path


def row(eid: int, status: str, when: str, *, qc: dict | None = None, reason: str = "", fp: str = FP) -> ManifestRow:
    stem = f"{eid}_20201_2_0"
    return ManifestRow(input=f"/raw/mris/{stem}.zip", status=status, eid=eid, instance=2,
                       output="" if status == FAILED else f"/out/{stem}.h5", reason=reason, settings_fingerprint=fp,
                       finished_at=when, qc=qc or {})


@pytest.fixture
def meta(tmp_path) -> Path:
    folder = StageFolders(output=tmp_path / "mris-processed", stage="unzip_mri").meta
    folder.mkdir(parents=True)
    return folder


def test_a_skipped_input_keeps_the_qc_and_flags_of_the_run_that_made_its_output(meta):
    write_run(meta, [row(1000001, OK, "2026-01-01T10:00:00", qc={"swapped_stations": [3], "max_seam_mismatch": 0.61},
                         reason="station 3: fat/water swapped")], name="first")
    write_run(meta, [row(1000001, SKIPPED, "2026-01-02T10:00:00", reason="done earlier")], name="second")
    (record,) = stage_state(meta)
    assert record["state"] == "done" and record["status"] == SKIPPED
    assert record["swapped_stations"] == "3" and record["max_seam_mismatch"] == "0.61"
    assert record["flags"] == "swapped station 3; seam mismatch 0.61"
    assert record["notes"] == "station 3: fat/water swapped"
    assert record["made_at"] == "2026-01-01T10:00:00" and record["finished_at"] == "2026-01-02T10:00:00"
    assert record["version"] == ukbb_pipeline.__version__
    assert record["stage"] == "unzip_mri" and record["eid"] == "1000001" and record["instance"] == "2"


def test_the_latest_outcome_wins_and_a_failure_after_success_is_a_failure(meta):
    write_run(meta, [row(1000001, FAILED, "2026-01-01T10:00:00", reason="member 'a.dcm' is damaged"),
                     row(1000002, OK, "2026-01-01T10:00:00")], name="first")
    write_run(meta, [row(1000001, OK, "2026-01-02T10:00:00"),
                     row(1000002, FAILED, "2026-01-02T10:00:00", reason="not a zip file", fp="settings2-input1")],
              name="second")
    records = {r["eid"]: r for r in stage_state(meta)}
    assert records["1000001"]["state"] == "done" and records["1000001"]["flags"] == ""
    assert records["1000002"]["state"] == FAILED and records["1000002"]["notes"] == "not a zip file"


def test_a_skip_whose_maker_left_no_row_is_done_without_qc(meta):
    write_run(meta, [row(1000001, OK, "2026-01-01T10:00:00", qc={"swapped_stations": [2]}, fp="other-fp")],
              name="first")
    write_run(meta, [row(1000001, SKIPPED, "2026-01-02T10:00:00")], name="second")
    (record,) = stage_state(meta)
    assert record["state"] == "done" and record["flags"] == "" and record["made_at"] == ""
    assert "swapped_stations" not in record


def test_shards_and_runs_read_as_one_table_and_manifests_keep_their_statuses(meta):
    write_run(meta, [row(1000001, OK, "2026-01-01T10:00:00"), row(1000003, OK, "2026-01-01T10:00:00")],
              name="shard0of2")
    write_run(meta, [row(1000002, FAILED, "2026-01-01T10:00:01", reason="x")], name="shard1of2")
    write_run(meta, [row(1000001, SKIPPED, "2026-01-03T10:00:00")], name="rerun")
    states = [(r["eid"], r["state"], r["status"]) for r in stage_state(meta)]
    assert states == [("1000001", "done", SKIPPED), ("1000002", FAILED, FAILED), ("1000003", "done", OK)]
    assert {r["status"] for r in ukbb_pipeline.read_manifests(meta)} == {SKIPPED, FAILED, OK}


def test_the_cache_folds_new_and_grown_manifests_and_starts_again_when_one_shrinks(meta):
    write_run(meta, [row(1000001, OK, "2026-01-01T10:00:00", qc={"swapped_stations": [4]})], name="a")
    assert stage_state(meta)[0]["flags"] == "swapped station 4"
    assert (meta / CACHE_NAME).exists()
    write_run(meta, [row(1000001, SKIPPED, "2026-01-02T10:00:00"), row(1000002, OK, "2026-01-02T10:00:00")],
              name="b")
    cached = stage_state(meta)
    assert cached == stage_state(meta, cache=False)
    assert [(r["eid"], r["flags"]) for r in cached] == [("1000001", "swapped station 4"), ("1000002", "")]
    # a withdrawal rewrites a manifest without a row: the cache cannot hold it any more
    write_run(meta, [row(1000001, SKIPPED, "2026-01-02T10:00:00")], name="b")
    assert [r["eid"] for r in stage_state(meta)] == ["1000001"]
    (meta / "manifest-unzip_mri-a.csv").unlink()
    assert stage_state(meta)[0]["flags"] == ""  # the row that made it is gone: no QC known


def test_the_cache_is_used_the_manifests_it_folded_are_not_read_again(meta, monkeypatch):
    write_run(meta, [row(1000001, OK, "2026-01-01T10:00:00")], name="a")
    stage_state(meta)
    opened = []
    real_open = open

    def spying_open(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spying_open)
    stage_state(meta)
    assert opened == [CACHE_NAME]


def test_a_root_gives_every_stage_in_pipeline_order(tmp_path):
    for output, stage in (("mri-mid-corr-slices", "extract_slices"), ("dxas-processed", "unzip_dxa"),
                          ("raw", "download")):
        folder = StageFolders(output=tmp_path / output, stage=stage).meta
        folder.mkdir(parents=True)
        writer = ManifestWriter(folder, stage=stage, shard_index=0, shard_count=1)
        writer.add(row(1000001, OK, "2026-01-01T10:00:00"))
        writer.flush()
    (tmp_path / "pipeline-report").mkdir()  # no manifests: not a stage
    os.makedirs(tmp_path / "dxas-processed" / "1000001_20158_2_0")  # a per-subject folder is never looked into
    assert list(stage_folders(tmp_path)) == ["download", "unzip_dxa", "extract_slices"]
    assert [r["stage"] for r in cohort_records(tmp_path)] == ["download", "unzip_dxa", "extract_slices"]
    assert [r["stage"] for r in ukbb_pipeline.cohort_state(tmp_path / "dxas-processed")] == ["unzip_dxa"]
    assert [r["stage"] for r in cohort_records(tmp_path, stages=["download"])] == ["download"]


def test_failure_reasons_group_by_kind():
    assert reason_group("member 'x/1.dcm' is damaged (Bad CRC-32)") == "member '...' is damaged (Bad CRC-N)"
    assert reason_group("5 of 6 stations in the zip (station 6 missing); note") == (
        "N of N stations in the zip (station N missing)")


def test_empty_qc_cells_and_a_maker_behind_a_failure_survive_the_cache(meta):
    write_run(meta, [row(1000001, OK, "2026-01-01T10:00:00", qc={"swapped_stations": [], "n_stations": 6})],
              name="a")
    write_run(meta, [row(1000001, FAILED, "2026-01-02T10:00:00", reason="input changed and broke")], name="b")
    stage_state(meta)  # cached: a failed record, with the ok row behind it set aside
    write_run(meta, [row(1000001, SKIPPED, "2026-01-03T10:00:00")], name="c")  # the input came back
    cached, fresh = stage_state(meta), stage_state(meta, cache=False)
    assert cached == fresh
    (record,) = cached
    assert record["state"] == "done" and record["swapped_stations"] == "" and record["n_stations"] == "6"
    assert record["made_at"] == "2026-01-01T10:00:00"


def test_a_pair_collect_left_out_is_left_out_not_done(tmp_path):
    meta = StageFolders(output=tmp_path / "collection", stage="collect").meta
    meta.mkdir(parents=True)
    write_run(meta, [row(1000002, SKIPPED, "2026-01-01T10:00:00",
                         reason="left out: swapped station 3 not fixed (stage.keep_flagged=true keeps it)")],
              name="a")
    (record,) = stage_state(meta)
    assert record["state"] == "left out" and record["notes"].startswith("left out: swapped station 3")


def test_two_runs_in_the_same_second_and_process_keep_both_manifests(tmp_path):
    # the Python API can run a fast stage twice within a second: the second run must not overwrite the first's rows
    meta = StageFolders(output=tmp_path, stage="unzip_dxa").meta
    meta.mkdir(parents=True)
    for eid in (1000001, 1000002):
        writer = ManifestWriter(meta, stage="unzip_dxa", shard_index=0, shard_count=1)
        writer.add(ManifestRow(input=str(tmp_path / f"{eid}_20158_2_0.zip"), status=OK, eid=eid, instance=2))
        writer.flush()
    assert len(list(meta.glob("manifest-*.csv"))) == 2
    assert [record["eid"] for record in stage_state(meta, stage="unzip_dxa")] == ["1000001", "1000002"]
