"""Two ukbfetch downloads at once into one root (a resubmission): the second waits for the first, so together they
never exceed UK Biobank's 10 simultaneous downloads per application, and no file is fetched twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fakes import FakeTools, write_key_file

from ukbb_pipeline.download.lock import download_lock, lock_path

REPO = Path(__file__).resolve().parents[2]
EIDS = [1000000 + i for i in range(30)]
STEMS = [f"{eid}_{field}_2_0" for eid in EIDS for field in (20158, 20201)]  # 60 files


def test_two_download_runs_at_once_stay_within_ten_calls_and_fetch_each_file_once(tmp_path, monkeypatch):
    fakes = FakeTools(tmp_path / "fakes").install()
    fakes.publish(STEMS)
    fakes.behave(sleep_per_file=1.0)  # 6 s a call: the two runs overlap however slowly they start
    work = tmp_path / "work"
    work.mkdir()
    (work / "eids.txt").write_text("".join(f"{eid}\n" for eid in EIDS))
    write_key_file(work / ".ukbkey")
    env = {**os.environ, "PATH": fakes.path_with_fakes_first(), "PYTHONPATH": str(REPO)}
    runs = [subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), "stage=download", "stage.eids_file=eids.txt",
         f"stage.output_dir={tmp_path / 'raw'}", f"hydra.run.dir={tmp_path / f'hydra{n}'}"],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for n in range(2)]
    outputs = [run.communicate(timeout=240)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sorted(fakes.requested("ukbfetch")) == sorted(STEMS)  # every file once, across both runs
    assert fakes.peak_concurrency("ukbfetch") <= 10
    assert sum("waiting for it to finish" in output for output in outputs) == 1  # the second said why it waited
    assert len(list((tmp_path / "raw").glob("*/*.zip"))) == 60


def test_the_lock_is_per_application_and_names_its_holder(tmp_path):
    folder = tmp_path / "pipeline-download"
    with download_lock(folder, "12345"), download_lock(folder, "67890") as waited:
        assert waited < 1.0  # another application's run does not wait
        assert lock_path(folder, "12345").read_text().startswith(f"pid {os.getpid()} on ")
