"""UK Biobank withdrawals: after `stage=withdraw`, nothing of a withdrawn participant is left."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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


# --- issue 20: a withdrawal that removes exactly what it must ---------------------------------------------------------

WITHDRAWN, KEPT = 1000002, 1000001


def _stage(compose, *overrides: str):
    from ukbb_pipeline.stages import run_stage_from_config

    return run_stage_from_config(compose(list(overrides)))


def _dxa_root(root: Path, compose, *, raw: Path | None = None, output: Path | None = None) -> Path:
    """A root with three participants' DXA zips (in ``raw``, linked from the root when given) and their outputs,
    pictures, contact sheets and manifests (in ``output`` when given)."""
    from ukbb_pipeline.synthetic import Phantom, write_dxa_zip

    for eid in (KEPT, WITHDRAWN, 1000003):
        write_dxa_zip((raw or root / "raw") / "dxas" / f"{eid}_20158_2_0.zip", eid=eid, phantom=Phantom.random(eid),
                      seed=eid)
    if raw is not None:
        root.mkdir(parents=True, exist_ok=True)
        (root / "raw").symlink_to(raw, target_is_directory=True)  # raw data on another disk
    overrides = ["stage=unzip_dxa", f"paths.root={root}", "n_jobs=1"]
    if output is not None:
        overrides.append(f"stage.output_dir={output}")
    _stage(compose, *overrides)
    return root


def _withdraw(compose, root: Path, listed: Path, *more: str):
    return _stage(compose, "stage=withdraw", f"paths.root={root}", f"exclude_eids_file={listed}", *more)


def test_withdraw_follows_symbolic_links_under_the_root(tmp_path, compose):
    """Case 1: raw/ is a link to another disk; the participant's zips there go too."""
    disk = tmp_path / "other-disk" / "raw"
    root = _dxa_root(tmp_path / "ukbb", compose, raw=disk)
    assert (disk / "dxas" / f"{WITHDRAWN}_20158_2_0.zip").exists()
    (tmp_path / "w.csv").write_text(f"{WITHDRAWN}\n")
    _withdraw(compose, root, tmp_path / "w.csv")
    assert not (disk / "dxas" / f"{WITHDRAWN}_20158_2_0.zip").exists()
    assert (disk / "dxas" / f"{KEPT}_20158_2_0.zip").exists()
    assert _every_mention(root, WITHDRAWN) == [] and _every_mention(disk, WITHDRAWN) == []
    assert [row["eid"] for row in read_manifests(root / "dxas-processed")] == [str(KEPT), "1000003"]


def test_withdraw_never_changes_the_user_s_files_and_lists_those_that_mention_the_participant(tmp_path, compose,
                                                                                              caplog):
    """Case 2: a phenotype table, results with companions of the same stem, notes, and a table of floats whose
    digits contain the EID: none is changed; the three that mention the participant are listed."""
    root = _dxa_root(tmp_path / "ukbb", compose)
    user = {
        "phenotypes.csv": "eid,age\n" + "".join(f"{1000000 + i},{40 + i % 30}\n" for i in range(10007)),
        "analysis/results.csv": f"eid,score\n{WITHDRAWN},0.5\n{KEPT},0.7\n",
        "analysis/results.py": "print('results')\n",
        "analysis/results.tex": "\\\\section{Results}\n",
        "notes.txt": f"check {WITHDRAWN} again\nall fine\n",
        "floats.csv": "value\n0.1000002\n1000002.5\n",
    }
    for name, text in user.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "w.csv").write_text(f"{WITHDRAWN}\n")
    with caplog.at_level("WARNING"):
        _withdraw(compose, root, tmp_path / "w.csv")
    for name, text in user.items():
        assert (root / name).read_text() == text, f"{name} is the user's: never changed"
    listed = [message for message in caplog.messages if "mentions a withdrawn participant" in message]
    assert sorted(message.split(" (line")[0].removeprefix("withdraw: ") for message in listed) == sorted(
        str(root / name) for name in ("phenotypes.csv", "analysis/results.csv", "notes.txt"))
    assert f"{root / 'phenotypes.csv'} (line 4)" in " ".join(listed), "the line is named"
    assert not (root / "dxas-processed" / f"{WITHDRAWN}_20158_2_0.h5").exists()


def test_the_withdrawal_list_under_the_root_is_never_touched_and_later_runs_honour_it_without_it(tmp_path, compose):
    """Cases 3, 4 and 5: lists kept under the root, with several EIDs on a line and a byte-order mark, stay as they
    are; a later run given no list (the zips back in place, as on a read-only mount) leaves the participants out."""
    root = _dxa_root(tmp_path / "ukbb", compose)
    zips = root / "raw" / "dxas"
    saved = {eid: (zips / f"{eid}_20158_2_0.zip").read_bytes() for eid in (KEPT, WITHDRAWN, 1000003)}
    text_list, csv_list = root / f"w_{WITHDRAWN}.txt", root / "w12345_20261126.csv"
    text_list.write_text(f"{WITHDRAWN}\n")
    csv_list.write_bytes(f"\ufeff{WITHDRAWN},1000003\r\n".encode())
    _withdraw(compose, root, text_list)
    _withdraw(compose, root, csv_list)
    assert text_list.read_text() == f"{WITHDRAWN}\n"
    assert csv_list.read_bytes() == f"\ufeff{WITHDRAWN},1000003\r\n".encode()
    assert sorted(os.listdir(zips)) == [f"{KEPT}_20158_2_0.zip"]

    for eid, data in saved.items():  # the zips are back (read in place from a mount the withdrawal cannot change)
        (zips / f"{eid}_20158_2_0.zip").write_bytes(data)
    [summary] = _stage(compose, "stage=unzip_dxa", f"paths.root={root}", "n_jobs=1", "overwrite=true")
    assert [row.eid for row in summary.rows] == [KEPT], "no exclude_eids_file, and still left out"
    assert sorted(p.name for p in (root / "dxas-processed").glob("*.h5")) == [f"{KEPT}_20158_2_0.h5"]


def test_a_run_already_going_honours_a_withdrawal_made_meanwhile(tmp_path):
    """Case 5: a withdrawal registered while a run goes: the participant's output is not written and no manifest
    row of theirs is flushed, from memory or otherwise."""
    import threading

    from toy_stage import run_toy, write_inputs

    from ukbb_pipeline.runtime.register import Withdrawals, record_withdrawal
    from ukbb_pipeline.runtime.runner import RunOptions

    root = tmp_path / "root"
    write_inputs(root / "in", {1000000 + i: str(i) for i in range(8)})
    out = root / "out"
    options = RunOptions(n_jobs=1, withdrawals=Withdrawals.of_root(root))
    done: list = []
    thread = threading.Thread(target=lambda: done.append(run_toy(root / "in", out, options, delay=0.3)))
    thread.start()
    while len(list(out.glob("*.h5"))) < 2:
        time.sleep(0.01)
    early, late = 1000000, 1000007  # one already written and recorded, one still to come
    record_withdrawal(root, [early, late], list_path=tmp_path / "w.csv")
    thread.join(timeout=60)
    (summary,) = done
    assert not (out / f"{late}_99999_2_0.h5").exists(), "not written once withdrawn"
    assert {row.eid for row in summary.rows} == {1000000 + i for i in range(1, 7)}
    assert {row["eid"] for row in read_manifests(out)} == {str(1000000 + i) for i in range(1, 7)}


def test_outputs_written_outside_the_root_are_withdrawn_too(tmp_path, compose):
    """Case 7: each run records its output folder; the withdrawal cleans it wherever it is."""
    elsewhere = tmp_path / "scratch" / "dxa-out"
    root = _dxa_root(tmp_path / "ukbb", compose, output=elsewhere)
    assert (elsewhere / f"{WITHDRAWN}_20158_2_0.h5").exists()
    (tmp_path / "w.csv").write_text(f"{WITHDRAWN}\n")
    _withdraw(compose, root, tmp_path / "w.csv")
    assert _every_mention(elsewhere, WITHDRAWN) == []
    assert (elsewhere / f"{KEPT}_20158_2_0.h5").exists()


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_a_root_that_does_not_exist_or_holds_no_pipeline_folders_is_an_error(tmp_path, run_main, where):
    """Case 8: a mistyped root is exit 2 with one line, not "removed 0 files"."""
    root = tmp_path / "ukbb-typo"
    if where == "empty":
        (root / "something").mkdir(parents=True)
    (tmp_path / "w.csv").write_text(f"{WITHDRAWN}\n")
    result = run_main("stage=withdraw", f"paths.root={root}", f"exclude_eids_file={tmp_path / 'w.csv'}")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"paths.root={root}" in line and ("does not exist" if where == "missing" else "no pipeline folders") in line


@pytest.mark.slow
def test_withdraw_cleans_the_submitit_files_of_a_sweep(tmp_path, run_main):
    """Case 6: a sweep through hydra-submitit-launcher (its local executor: the same .submitit/ files as on SLURM);
    its job logs and pickles name the participant; after the withdrawal nothing there does."""

    from ukbb_pipeline.synthetic import Phantom, write_dxa_zip

    root = tmp_path / "ukbb"
    for eid in (KEPT, WITHDRAWN, 1000003):
        write_dxa_zip(root / "raw" / "dxas" / f"{eid}_20158_2_0.zip", eid=eid, phantom=Phantom.random(eid), seed=eid)
    for eid in (KEPT, WITHDRAWN):  # damaged: their failures name them in the job logs and result pickles
        (root / "raw" / "dxas" / f"{eid}_20158_2_0.zip").write_bytes(b"PK\x03\x04 truncated")
    sweep = run_main("-m", "stage=unzip_dxa", f"paths.root={root}", "hydra/launcher=submitit_local", "n_jobs=1",
                     "shard.count=2", "shard.index=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert sweep.returncode == 1, sweep.stderr[-3000:]
    submitit = tmp_path / "sweep" / ".submitit"
    assert {Path(path).suffix for path in _every_mention(submitit, WITHDRAWN)} >= {".out", ".pkl"}
    (tmp_path / "w.csv").write_text(f"{WITHDRAWN}\n")
    result = run_main("stage=withdraw", f"paths.root={root}", f"exclude_eids_file={tmp_path / 'w.csv'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert _every_mention(tmp_path / "sweep", WITHDRAWN) == []
    assert _every_mention(submitit, KEPT), "the other participants' lines stay"
