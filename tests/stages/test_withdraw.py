"""UK Biobank withdrawals: after `stage=withdraw`, nothing of a withdrawn participant is left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ukbb_pipeline.qc.sheets import sheet_files, sheet_visits
from ukbb_pipeline.runtime.manifest import read_manifests

REPO = Path(__file__).resolve().parents[2]


def _every_mention(root: Path, eid: int) -> list[str]:
    """Every file or folder under ``root`` whose name or bytes mention ``eid``."""
    needle = str(eid).encode()
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            if str(eid) in name:
                found.append(os.path.join(folder, name))
        for name in files:
            if needle in Path(folder, name).read_bytes():
                found.append(os.path.join(folder, name))
    return found


@pytest.mark.slow
def test_withdraw_leaves_nothing_of_the_participant_and_keeps_the_others(tmp_path, run_main):
    root = tmp_path / "ukbb"
    demo = run_main("stage.subjects=3", f"paths.root={root}", "n_jobs=1", "hydra.run.dir=outputs/runs/demo")
    assert demo.returncode == 0, demo.stderr
    withdrawn, kept = 1000002, 1000001
    assert _every_mention(root, withdrawn), "the demo wrote data of the participant"
    (tmp_path / "w12345_20261126.csv").write_text(f"{withdrawn}\n")

    result = run_main("stage=withdraw", f"paths.root={root}", f"exclude_eids_file={tmp_path / 'w12345_20261126.csv'}",
                      "hydra.run.dir=outputs/runs/withdraw")
    assert result.returncode == 0, result.stderr

    assert _every_mention(root, withdrawn) == []
    assert _every_mention(tmp_path / "outputs", withdrawn) == [], "nor in the run logs"
    assert (root / "raw" / "mris" / f"{kept}_20201_2_0.zip").exists()
    assert (root / "mri-mid-corr-slices" / f"{kept}_20201_2_0.h5").exists()
    assert [row["eid"] for row in read_manifests(root / "dxas-processed")] == ["1000001", "1000003"]

    again = run_main(f"paths.root={root}", f"exclude_eids_file={tmp_path / 'w12345_20261126.csv'}",
                     "stage.subjects=3", "hydra.run.dir=outputs/runs/again")
    assert again.returncode == 0, again.stderr
    assert _every_mention(root, withdrawn) == [], "a re-run (sheets and report made again) does not bring it back"
    (sheet,) = sheet_files(root / "mri-mid-corr-slices" / "pipeline-extract-slices" / "qc")
    assert sheet_visits(sheet) == ["1000001 visit 2", "1000003 visit 2"], "made again from the cohort's state"


@pytest.mark.slow
def test_withdraw_run_from_another_folder_finds_every_run_s_log_folder(tmp_path):
    """Runs started in two folders (one a multirun); the withdrawal, started in a third, cleans all their logs."""
    root = tmp_path / "ukbb"
    lab, cluster, desk = tmp_path / "lab", tmp_path / "cluster", tmp_path / "desk"
    for folder in (lab, cluster, desk):
        folder.mkdir()

    def main(cwd: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(REPO / "main.py"), *overrides], cwd=cwd, capture_output=True,
                              text=True, timeout=600)

    demo = main(lab, "stage.subjects=3", f"paths.root={root}", "n_jobs=1")  # logs in lab/outputs/runs/...
    assert demo.returncode == 0, demo.stderr[-3000:]
    sweep = main(cluster, "-m", "stage=unzip_dxa", f"paths.root={root}", "shard.count=2", "shard.index=0,1",
                 "overwrite=true", "n_jobs=1")  # logs in cluster/outputs/multirun/...
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    withdrawn = 1000002
    assert _every_mention(lab / "outputs", withdrawn) and _every_mention(cluster / "outputs", withdrawn)
    (desk / "w.csv").write_text(f"{withdrawn}\n")

    result = main(desk, "stage=withdraw", f"paths.root={root}", f"exclude_eids_file={desk / 'w.csv'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _every_mention(root, withdrawn) == []
    assert _every_mention(lab, withdrawn) == [], "the demo's logs, in the folder it was started from"
    assert _every_mention(cluster, withdrawn) == [], "the sweep's logs"
    assert _every_mention(desk / "outputs", withdrawn) == [], "nor the withdrawal's own log"
    assert _every_mention(lab / "outputs", 1000003), "the other participants' log lines stay"
