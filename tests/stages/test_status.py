"""`stage=status` and the cohort's state: what a researcher sees about a root, the same after every re-run."""

from __future__ import annotations

import csv
import dataclasses
import html
import re
from pathlib import Path

import pytest

import ukbb_pipeline
from ukbb_pipeline import registry
from ukbb_pipeline.config import UnzipMriConfig
from ukbb_pipeline.formats import Hdf5Writer
from ukbb_pipeline.qc.sheets import sheet_files, sheet_visits
from ukbb_pipeline.qc.status import cohort_status, flag_kind
from ukbb_pipeline.runtime import provenance
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.manifest import FAILED, OK, ManifestRow, ManifestWriter
from ukbb_pipeline.stages.file_stage import FileStage

REPO = Path(__file__).resolve().parents[2]


def manifest(root: Path, output: str, stage: str, rows: list[ManifestRow], *, name: str = "run1") -> None:
    folders = StageFolders(output=root / output, stage=stage)
    writer = ManifestWriter(folders.meta, stage=stage, shard_index=0, shard_count=1)
    writer.path = folders.meta / f"manifest-{stage}-{name}.csv"
    for row in rows:
        writer.add(row)
    writer.flush()


MRI_VERSION = str(registry.output_version("unzip_mri"))


def mri(eid: int, status: str = OK, *, reason: str = "", version: str = ukbb_pipeline.__version__, output="",
        output_version: str = MRI_VERSION, **qc) -> ManifestRow:
    stem = f"{eid}_20201_2_0"
    return ManifestRow(input=f"/raw/mris/{stem}.zip", status=status, eid=eid, instance=2, reason=reason,
                       output=output, version=version, output_version=output_version,
                       finished_at="2026-01-01T00:00:00", qc=qc)


@pytest.fixture
def root(tmp_path) -> Path:
    """Five MRI zips: two done (one swapped, one from before versions were recorded), two failed, one never run."""
    raw = tmp_path / "raw" / "mris"
    raw.mkdir(parents=True)
    for eid in range(1000001, 1000006):
        (raw / f"{eid}_20201_2_0.zip").write_bytes(b"")
    (raw / "1000009_20201_2_0.zip").write_bytes(b"")  # excluded below
    out = tmp_path / "mris-processed"
    out.mkdir()
    for eid in (1000001, 1000002):
        (out / f"{eid}_20201_2_0.h5").write_bytes(b"")
    manifest(tmp_path, "mris-processed", "unzip_mri", [
        mri(1000001, output=str(out / "1000001_20201_2_0.h5"), swapped_stations=[3], max_seam_mismatch=0.71),
        mri(1000002, output=str(out / "1000002_20201_2_0.h5"), version="", output_version="", swapped_stations=[],
            max_seam_mismatch=0.02),
        mri(1000003, FAILED, reason="member 'a/1.dcm' is damaged (Bad CRC-32)"),
        mri(1000004, FAILED, reason="member 'b/7.dcm' is damaged (Bad CRC-32)"),
    ])
    return tmp_path


def test_status_counts_done_failed_by_reason_flagged_by_flag_missing_excluded_and_out_of_date(root):
    (status,) = cohort_status(root, raw_inputs={"unzip_mri": root / "raw" / "mris"},
                              only_eids=[1000001, 1000002, 1000003, 1000004, 1000005, 1000007, 1000008],
                              exclude_eids=[1000009])
    assert status.stage == "unzip_mri"
    assert status.done == 2
    assert status.failed == {"member '...' is damaged (Bad CRC-N)": ["1000003 visit 2", "1000004 visit 2"]}
    assert status.flagged == {"swapped station": ["1000001 visit 2"], "seam mismatch": ["1000001 visit 2"]}
    assert status.missing["EIDs in eids_file with no input"] == ["1000007", "1000008"]
    assert status.missing["inputs not yet run"] == ["1000005 visit 2"]
    assert status.excluded == 1
    assert status.out_of_date == ["1000002 visit 2"]  # made before versions were recorded
    lines = {(line["what"], line["detail"]): line for line in status.lines()}
    assert lines[("failed", "")]["count"] == "2"
    assert lines[("excluded", "")]["count"] == "1"
    assert lines[("out of date", "")]["examples"] == "1000002 visit 2"
    assert lines[("flagged", "")]["count"] == "1"  # one subject, two flags
    assert lines[("missing", "EIDs in eids_file with no input")]["examples"] == "1000007, 1000008"


def test_an_output_that_is_gone_is_missing_not_done(root):
    (root / "mris-processed" / "1000001_20201_2_0.h5").unlink()
    (status,) = cohort_status(root)
    assert status.done == 1
    assert status.missing["output gone (recorded as done)"] == ["1000001 visit 2"]


def test_flag_kinds():
    assert flag_kind("swapped station 3 5 (fixed)") == "swapped station (fixed)"
    assert flag_kind("seam mismatch 0.61") == "seam mismatch"
    assert flag_kind("window moved +3") == "window moved"


def test_out_of_date_means_made_with_an_older_output_version_than_the_stage_table_says():
    current = registry.output_version("unzip_mri")
    assert provenance.out_of_date("unzip_mri", "")  # recorded before output versions were
    assert provenance.out_of_date("unzip_mri", str(current - 1))
    assert not provenance.out_of_date("unzip_mri", str(current))
    assert not provenance.out_of_date("download", "")  # downloaded zips have no output version
    assert not provenance.out_of_date("a_stage_of_another_version", "")


def test_the_output_version_in_the_fingerprint_is_the_one_the_manifest_records(tmp_path, monkeypatch):
    """One mechanism: raising a stage's version in the table redoes its outputs and makes the old ones out of date."""
    from ukbb_pipeline.stages import unzip_mri

    config = UnzipMriConfig(input_dir=str(tmp_path / "raw"), output_dir=str(tmp_path / "out"))
    job = unzip_mri.make_job(config, inputs=[], writer=Hdf5Writer())
    assert job.settings["version"] == registry.output_version("unzip_mri")
    before = FileStage(job).fingerprint()
    bumped = tuple(dataclasses.replace(entry, version=entry.version + 1) if entry.name == "unzip_mri" else entry
                   for entry in registry.STAGES)
    monkeypatch.setattr(registry, "STAGES", bumped)
    assert FileStage(unzip_mri.make_job(config, inputs=[], writer=Hdf5Writer())).fingerprint() != before
    assert provenance.out_of_date("unzip_mri", str(registry.output_version("unzip_mri") - 1))


def test_the_changelog_names_no_second_table_of_versions():
    text = (REPO / "CHANGELOG.md").read_text()
    assert "ukbb_pipeline/registry.py" in text
    assert not re.findall(r"^\| (\w+) \| (\d+(\.\d+)*) \|$", text, flags=re.MULTILINE)


def test_every_manifest_row_and_output_records_the_package_version(root):
    rows = ukbb_pipeline.read_manifests(root / "mris-processed")
    assert {row["version"] for row in rows} == {ukbb_pipeline.__version__, ""}
    assert ukbb_pipeline.__version__ != ""


# ----------------------------------------------------------------------------------------------------------------
# Through main.py: the demo twice


def _section(page: Path, start: str, end: str) -> str:
    text = html.unescape(" ".join(re.sub(r"<[^>]+>", " ", page.read_text()).split()))
    return text[text.index(start) : text.index(end)]


def _status_csv(root: Path) -> list[dict[str, str]]:
    (path,) = sorted((root / "pipeline-status").glob("status-*.csv"))[-1:]
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _flags(root: Path) -> dict[tuple[str, str], tuple[str, str, str]]:
    return {(r["stage"], r["stem"]): (r["state"], r["flags"], r.get("swapped_stations"))
            for r in ukbb_pipeline.cohort_state(root)}  # typed: flags a list, swapped_stations a list of ints


@pytest.mark.slow
def test_the_demo_run_twice_shows_the_same_flags_swaps_and_seams(tmp_path, run_main):
    root = tmp_path / "demo"
    first = run_main(f"paths.root={root}", "stage.subjects=3", "n_jobs=1")
    assert first.returncode == 0, first.stderr[-3000:]
    state_first = _flags(root)
    assert state_first[("unzip_mri", "1000002_20201_2_0")][:3:2] == ("done", [3])
    assert state_first[("unzip_mri", "1000002_20201_2_0")][1][0].startswith("swapped station 3")
    (report_first,) = sorted((root / "pipeline-report").glob("report-*.html"))
    sheets_first = {path.name: sheet_visits(path) for path in sheet_files(
        StageFolders(root / "mri-mid-corr-slices", "extract_slices").qc)}
    assert sum(len(visits) for visits in sheets_first.values()) == 3

    second = run_main(f"paths.root={root}", "stage.subjects=3", "n_jobs=1", "hydra.run.dir=outputs/runs/second")
    assert second.returncode == 0, second.stderr[-3000:]
    assert " 0 ok " in second.stderr + second.stdout  # everything was skipped
    assert _flags(root) == state_first
    report_second = max((root / "pipeline-report").glob("report-*.html"), key=lambda path: path.stat().st_mtime_ns)
    assert report_second != report_first
    for start, end in (("Flagged subjects", "Fat/water swaps"), ("Fat/water swaps", "Seam mismatch"),
                       ("Seam mismatch", "QC pictures")):
        shown = _section(report_second, start, end)
        assert shown == _section(report_first, start, end)
    assert "1000002" in _section(report_second, "Flagged subjects", "Fat/water swaps")
    assert "1 of 3 checked input(s) have swapped stations" in _section(report_second, "Fat/water", "Seam")

    status = run_main("stage=status", f"paths.root={root}", "hydra.run.dir=outputs/runs/status")
    assert status.returncode == 0, status.stderr[-3000:]
    lines = {(line["stage"], line["what"], line["detail"]): line for line in _status_csv(root)}
    assert lines[("unzip_mri", "done", "")]["count"] == "3"
    assert lines[("unzip_mri", "flagged", "swapped station")]["examples"] == "1000002 visit 2"
    assert lines[("extract_slices", "done", "")]["count"] == "3"
    assert "swapped station: 1" in status.stderr + status.stdout

    # one EID again, redone: every contact sheet keeps its subjects
    (tmp_path / "one.txt").write_text("1000002\n")
    again = run_main("stage=extract_slices", f"paths.root={root}", f"eids_file={tmp_path / 'one.txt'}",
                     "overwrite=true", "hydra.run.dir=outputs/runs/one")
    assert again.returncode == 0, again.stderr[-3000:]
    assert {path.name: sheet_visits(path) for path in sheet_files(
        StageFolders(root / "mri-mid-corr-slices", "extract_slices").qc)} == sheets_first


@pytest.mark.slow
def test_status_lists_eids_without_a_zip_and_counts_the_excluded(tmp_path, run_main):
    root = tmp_path / "demo"
    assert run_main(f"paths.root={root}", "stage.subjects=3", "n_jobs=1", "qc=false").returncode == 0
    (tmp_path / "eids.txt").write_text("1000001\n1000002\n1000003\n1000077\n1000078\n")
    (tmp_path / "withdrawn.txt").write_text("1000003\n")
    overrides = [f"paths.root={root}", f"eids_file={tmp_path / 'eids.txt'}",
                 f"exclude_eids_file={tmp_path / 'withdrawn.txt'}"]
    run = run_main("stage=unzip_mri", *overrides, "hydra.run.dir=outputs/runs/mri")
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stderr + run.stdout
    assert "unzip_mri: 2 EID(s) of eids_file have no input" in log and "1000077, 1000078" in log
    assert "unzip_mri: 1 input(s) of EIDs in exclude_eids_file left out" in log
    status = run_main("stage=status", *overrides, "hydra.run.dir=outputs/runs/status")
    assert status.returncode == 0, status.stderr[-3000:]
    lines = {(line["stage"], line["what"], line["detail"]): line for line in _status_csv(root)}
    assert lines[("unzip_mri", "missing", "EIDs in eids_file with no input")]["examples"] == "1000077, 1000078"
    assert lines[("unzip_dxa", "excluded", "")]["count"] == "1"


def test_status_shows_the_withdrawal_register_and_counts_withdrawn_inputs_apart(tmp_path):
    from ukbb_pipeline.qc.status import cohort_status, format_register, format_status
    from ukbb_pipeline.runtime.register import record_withdrawal

    raw = tmp_path / "raw" / "mris"
    raw.mkdir(parents=True)
    for eid in (1000001, 1000002):
        (raw / f"{eid}_20201_2_0.zip").write_bytes(b"")
    assert format_register(tmp_path).startswith("withdrawal register: none")
    withdrawn_list = tmp_path / "w12345_20261126.csv"
    withdrawn_list.write_text("1000002\n")
    record_withdrawal(tmp_path, [1000002], list_path=withdrawn_list)

    (status,) = cohort_status(tmp_path, raw_inputs={"unzip_mri": raw})
    assert (status.withdrawn, status.excluded) == (1, 0)
    assert status.missing["inputs not yet run"] == ["1000001 visit 2"]  # the withdrawn one is not "to do"
    assert "  withdrawn: 1" in format_status([status])
    assert format_register(tmp_path).splitlines() == [
        f"withdrawal register ({tmp_path / 'pipeline-runs' / 'withdrawals.csv'}): 1 participant(s), left out by "
        "every run:", f"  {withdrawn_list}: 1 (applied " + format_register(tmp_path).split("(applied ")[1]]
