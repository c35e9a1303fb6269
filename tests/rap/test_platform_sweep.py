"""The sweep line on a fake Research Analysis Platform (tests/helpers/fake_dx.py, written from dx-toolkit's docs):
the chain unzip_dxa, unzip_mri, extract_slices, collect, report, then status, each stage 3 jobs (shards), on 12
synthetic subjects dispensed as UK Biobank dispenses bulk files, one MRI zip truncated."""

from __future__ import annotations

import collections
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_dx import FakePlatform

from ukbb_pipeline.synthetic.cohort import make_cohort

REPO = Path(__file__).resolve().parents[2]
BULK = {"dxas": "/Bulk/DXA/DXA", "mris": "/Bulk/Whole Body MRI/Dixon"}  # the DXA folder: found by field_id
FOLDER = "/ukbb-pipeline"
BAD = "1000005_20201_2_0.zip"


def sweep(platform: FakePlatform, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "main.py"), "-m", *args, "hydra/launcher=rap",
               f"hydra.launcher.project={platform.project}", f"hydra.launcher.folder={FOLDER}",
               "hydra.launcher.instance_type=mem1_ssd1_v2_x4", "hydra.launcher.poll_s=0.5",
               f"hydra.sweep.dir={tmp_path / 'sweeps' / args[0].replace('=', '-')}"]
    env = {**os.environ, **platform.env(), "PYTHONPATH": str(REPO), "UKBB_RAP_UPLOAD_EVERY_S": "1"}
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def platform(tmp_path) -> FakePlatform:
    platform = FakePlatform(tmp_path / "store")
    raw = tmp_path / "bulk"
    make_cohort(raw, n_subjects=12, seed=5)
    bad = raw / "mris" / BAD
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    for local, folder in BULK.items():
        for path in sorted((raw / local).glob("*.zip")):
            nested = raw / local / path.name[:2]
            nested.mkdir(exist_ok=True)
            path.rename(nested / path.name)  # /Bulk/<Category>/<group>/<first two digits of eid>/
        platform.seed(raw / local, folder, properties=lambda p: {"field_id": p.name.split("_")[1],
                                                                 "eid": p.name.split("_")[0]})
    return platform


@pytest.mark.slow
def test_the_chain_runs_as_platform_jobs_and_uploads_every_good_output_once(platform, tmp_path):
    shards = ["shard.count=3", "shard.index=0,1,2"]
    for stage in ("unzip_dxa", "unzip_mri", "extract_slices", "collect"):
        done = sweep(platform, tmp_path, f"stage={stage}", *shards)
        if stage == "unzip_mri":  # the bad zip fails its shard's job, after that job uploaded the rest
            assert done.returncode == 1 and "1 of 3 platform jobs failed" in done.stderr, done.stderr
        else:
            assert done.returncode == 0, done.stderr[-3000:]
    assert sweep(platform, tmp_path, "stage=report").returncode == 0
    assert sweep(platform, tmp_path, "stage=status").returncode == 0

    jobs = platform.jobs()
    assert len(jobs) == 14
    assert sorted(job["input"]["overrides"][-1] for job in jobs if "stage=unzip_mri" in job["input"]["overrides"]) \
        == ["shard.index=0", "shard.index=1", "shard.index=2"]
    outputs = [f for f in platform.files(FOLDER) if f["folder"].count("/") == 2 and f["name"].endswith(".h5")]
    by_path = collections.Counter(f"{f['folder']}/{f['name']}" for f in outputs)
    assert max(by_path.values()) == 1  # every output once
    assert sum(p.startswith(f"{FOLDER}/mris-processed/") for p in by_path) == 11  # the good MRI zips
    assert sum(p.startswith(f"{FOLDER}/dxas-processed/") for p in by_path) == 12
    assert sum(p.startswith(f"{FOLDER}/mri-mid-corr-slices/") for p in by_path) == 11
    names = [f["name"] for f in platform.files(FOLDER)]
    assert any(name.startswith("report-") for name in names)
    assert sum(name.startswith("collection-shard") for name in names) == 3
    [status] = list(platform.files(f"{FOLDER}/pipeline-status"))
    rows = list(csv.DictReader(io.StringIO(platform.read(status).decode())))
    [failed] = [row for row in rows if row["stage"] == "unzip_mri" and row["what"] == "failed" and row["detail"]]
    assert failed["count"] == "1" and failed["examples"] == "1000005 visit 2" and "not a zip" in failed["detail"]

    # a re-run uploads nothing twice; submitted without waiting, its jobs' states are in stage=status
    before = len(platform.files(FOLDER))
    assert sweep(platform, tmp_path, "stage=unzip_dxa", *shards, "hydra.launcher.wait=false").returncode == 0
    ids = [job["id"] for job in json.loads((tmp_path / "sweeps" / "stage-unzip_dxa" / "rap-jobs.json").read_text())
           ["jobs"]]
    subprocess.run(["dx", "wait", *ids], env={**os.environ, **platform.env()}, check=True, capture_output=True)
    new = list(platform.files(FOLDER))[before:]
    assert len(new) == 3 and all("manifest" in f["name"] for f in new), [f["name"] for f in new]
    shown = subprocess.run([sys.executable, str(REPO / "main.py"), "stage=status",
                            f"stage.jobs={tmp_path / 'sweeps' / 'stage-unzip_dxa'}", f"paths.root={tmp_path / 'none'}",
                            f"hydra.run.dir={tmp_path / 'status-run'}"],
                           env={**os.environ, **platform.env(), "PYTHONPATH": str(REPO)}, capture_output=True,
                           text=True, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "platform jobs: 3: 3 done" in shown.stdout + shown.stderr
    assert all(job_id in shown.stdout + shown.stderr for job_id in ids)

    # withdrawal, as a platform job: the participant's outputs leave the project, the rest stays
    (tmp_path / "withdrawals").mkdir()
    (tmp_path / "withdrawals" / "w12345.csv").write_text("1000001\n")
    platform.seed(tmp_path / "withdrawals", "/withdrawals")
    assert sweep(platform, tmp_path, "stage=withdraw", "exclude_eids_file=/mnt/project/withdrawals/w12345.csv"
                 ).returncode == 0
    left = [f"{f['folder']}/{f['name']}" for f in platform.files(FOLDER)]
    assert not [path for path in left if "/1000001_" in path]
    assert sum("/1000002_" in path for path in left) >= 4
    assert not [f for f in platform.files(FOLDER) if "manifest" in f["name"] and b"1000001_" in platform.read(f)]


def test_the_dry_run_prints_one_dx_run_line_per_shard_and_an_estimate(platform, tmp_path):
    done = sweep(platform, tmp_path, "stage=unzip_mri", "shard.count=4", "shard.index=range(4)",
                 "hydra.launcher.dry_run=true")
    assert done.returncode == 0, done.stderr
    runs = [line for line in done.stdout.splitlines() if " run " in line and "-ioverrides=" in line]
    assert len(runs) == 4 and all(f"shard.index={i}" in runs[i] for i in range(4))
    assert all("--priority low" in line and "--instance-type mem1_ssd1_v2_x4" in line for line in runs)
    assert "machine-hours" in done.stdout and "estimate" in done.stdout
    assert all("'-iinputs=20201=/Bulk/Whole Body MRI/Dixon'" in line for line in runs)  # found by field_id
    assert platform.jobs() == []

    given = sweep(platform, tmp_path, "stage=unzip_dxa", "hydra.launcher.dry_run=true",
                  "hydra.launcher.inputs.20158=/Bulk/Somewhere/Else")
    assert given.returncode == 0 and "-iinputs=20158=/Bulk/Somewhere/Else" in given.stdout, given.stderr
    platform.seed(tmp_path / "bulk" / "dxas", "/Bulk/Copy", properties=lambda p: {"field_id": "20158"})
    twice = sweep(platform, tmp_path, "stage=unzip_dxa", "hydra.launcher.dry_run=true")
    assert twice.returncode == 2 and "field 20158: its files lie in 2 folders" in twice.stderr
    assert "hydra.launcher.inputs.<field>=<folder>" in twice.stderr


def test_a_spot_interrupted_job_restarts_and_finishes_only_what_is_missing(platform, tmp_path):
    platform.configure(interrupt_after_uploads=3)
    done = sweep(platform, tmp_path, "stage=unzip_dxa")
    assert done.returncode == 0, done.stderr[-3000:]
    [job] = platform.jobs()
    assert job["try"] == 1 and job["state"] == "done"
    outputs = collections.Counter(f["name"] for f in platform.files(f"{FOLDER}/dxas-processed")
                                  if f["folder"] == f"{FOLDER}/dxas-processed")
    assert len(outputs) == 12 and max(outputs.values()) == 1
    assert json.loads((tmp_path / "sweeps" / "stage-unzip_dxa" / "rap-jobs.json").read_text())["jobs"][0]["id"] \
        == job["id"]
