"""The stage skeleton: skip what is done, redo what changed, survive bad inputs and SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from toy_stage import run_toy, write_inputs

from ukbb_pipeline.errors import ConfigError, StageFailed
from ukbb_pipeline.runtime.manifest import read_manifests
from ukbb_pipeline.runtime.runner import RunOptions, raise_on_failures


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    write_inputs(folder, {1000000 + i: str(i) for i in range(12)})
    return folder


def _value(path: Path) -> float:
    with h5py.File(path) as handle:
        return float(handle["value"][0, 0, 0])


def test_every_input_gets_an_output_and_a_manifest_row(inputs, tmp_path):
    summary = run_toy(inputs, tmp_path / "out", scale=2.0)
    assert summary.counts == {"ok": 12, "failed": 0, "skipped": 0}
    assert _value(tmp_path / "out" / "1000005_99999_2_0.h5") == 10.0
    rows = read_manifests(tmp_path / "out")
    assert len(rows) == 12
    assert {row["status"] for row in rows} == {"ok"}
    row = next(r for r in rows if r["eid"] == "1000005")
    assert (row["instance"], row["value"]) == ("2", "10")


def test_a_second_run_skips_what_is_done_with_the_same_settings(inputs, tmp_path):
    run_toy(inputs, tmp_path / "out")
    again = run_toy(inputs, tmp_path / "out")
    assert again.counts == {"ok": 0, "failed": 0, "skipped": 12}


def test_a_changed_setting_stops_the_run_before_any_work_unless_overwrite(inputs, tmp_path):
    run_toy(inputs, tmp_path / "out", scale=1.0)
    before = sorted(path.name for path in (tmp_path / "out").rglob("*"))
    with pytest.raises(ConfigError, match=r"12 output\(s\) in .* were made with other settings .*overwrite=true"):
        run_toy(inputs, tmp_path / "out", scale=3.0)
    assert sorted(path.name for path in (tmp_path / "out").rglob("*")) == before  # not even a manifest
    assert _value(tmp_path / "out" / "1000004_99999_2_0.h5") == 4.0
    redone = run_toy(inputs, tmp_path / "out", RunOptions(overwrite=True), scale=3.0)
    assert redone.counts["ok"] == 12
    assert _value(tmp_path / "out" / "1000004_99999_2_0.h5") == 12.0
    assert run_toy(inputs, tmp_path / "other", scale=3.0).counts["ok"] == 12  # another output folder


def test_overwrite_redoes_everything(inputs, tmp_path):
    run_toy(inputs, tmp_path / "out")
    redone = run_toy(inputs, tmp_path / "out", RunOptions(overwrite=True))
    assert redone.counts["ok"] == 12
    assert all("overwrite" in row.reason for row in redone.rows)


def test_an_output_that_does_not_open_is_redone(inputs, tmp_path):
    run_toy(inputs, tmp_path / "out")
    damaged = tmp_path / "out" / "1000003_99999_2_0.h5"
    damaged.write_bytes(b"not hdf5")
    again = run_toy(inputs, tmp_path / "out")
    assert again.counts == {"ok": 1, "failed": 0, "skipped": 11}
    assert _value(damaged) == 3.0


def test_a_bad_input_fails_with_its_reason_and_the_others_go_on(inputs, tmp_path):
    write_inputs(inputs, {2000000: "garbage"})
    summary = run_toy(inputs, tmp_path / "out", RunOptions(n_jobs=2))
    assert summary.counts == {"ok": 12, "failed": 1, "skipped": 0}
    [failed] = summary.failed
    assert failed.reason == "'garbage' is not a number"
    assert not (tmp_path / "out" / "2000000_99999_2_0.h5").exists()
    with pytest.raises(StageFailed, match="1 input"):
        raise_on_failures([summary], allow_failures=False)
    raise_on_failures([summary], allow_failures=True)


def test_eid_filters_and_shards(inputs, tmp_path):
    only = frozenset({1000001, 1000002, 1000003})
    summary = run_toy(inputs, tmp_path / "out", RunOptions(only_eids=only, exclude_eids=frozenset({1000002})))
    assert sorted(row.eid for row in summary.rows) == [1000001, 1000003]
    shards = [run_toy(inputs, tmp_path / f"shard{i}", RunOptions(shard_index=i, shard_count=3)) for i in range(3)]
    processed = [row.input for shard in shards for row in shard.rows]
    assert sorted(processed) == sorted(str(path) for path in inputs.glob("*.txt"))


def test_nothing_but_outputs_and_the_metadata_folder_in_the_output_folder(inputs, tmp_path):
    write_inputs(inputs, {2000000: "garbage"})
    run_toy(inputs, tmp_path / "out")
    names = set(os.listdir(tmp_path / "out"))
    assert names == {f"{1000000 + i}_99999_2_0.h5" for i in range(12)} | {"pipeline-toy"}


def test_a_run_killed_mid_way_and_run_again_does_every_input_exactly_once(inputs, tmp_path):
    out = tmp_path / "out"
    script = Path(__file__).parents[1] / "helpers" / "toy_stage.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(script.parent), str(script.parents[2])])}
    process = subprocess.Popen([sys.executable, str(script), str(inputs), str(out), "1", "0.15"], env=env)
    deadline = time.monotonic() + 60
    while len(list(out.glob("*.h5"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    done_before = {path.name for path in out.glob("*.h5")}
    assert 4 <= len(done_before) < 12, "the kill should land mid-run"

    rerun = run_toy(inputs, out, delay=0.0)
    assert rerun.counts == {"ok": 12 - len(done_before), "failed": 0, "skipped": len(done_before)}
    assert {Path(row.output).name for row in rerun.rows if row.status == "skipped"} == done_before
    for i in range(12):
        assert _value(out / f"{1000000 + i}_99999_2_0.h5") == float(i)
    assert list((out / "pipeline-toy" / "tmp").iterdir()) == []  # the dead run's scratch is cleaned up
    assert {row["status"] for row in read_manifests(out)} <= {"ok", "skipped"}


def test_a_full_disk_stops_the_run_with_a_clear_error_and_no_partial_file(inputs, tmp_path, monkeypatch):
    import errno

    from ukbb_pipeline.errors import OutputError
    from ukbb_pipeline.formats import Hdf5Writer

    original = Hdf5Writer.write
    calls = []

    def fill_disk_after_three(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Hdf5Writer, "write", fill_disk_after_three)
    with pytest.raises(OutputError, match="No space left on device"):
        run_toy(inputs, tmp_path / "out")
    assert len(calls) == 4, "the run stops at the first full-disk error"
    assert len(list((tmp_path / "out").glob("*.h5"))) == 3
    assert list((tmp_path / "out" / "pipeline-toy" / "tmp").iterdir()) == []
    assert len(read_manifests(tmp_path / "out")) == 3, "the finished rows are in the manifest"


def test_two_runs_over_the_same_shard_at_once_lose_nothing_and_corrupt_nothing(inputs, tmp_path):
    out = tmp_path / "out"
    script = Path(__file__).parents[1] / "helpers" / "toy_stage.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(script.parent), str(script.parents[2])])}
    runs = [subprocess.Popen([sys.executable, str(script), str(inputs), str(out), "1", "0.02"], env=env)
            for _ in range(2)]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    for i in range(12):
        assert _value(out / f"{1000000 + i}_99999_2_0.h5") == float(i)
    every_row = read_manifests(out, latest=False)
    assert len({row["manifest"] for row in every_row}) == 2, "one manifest file per run"
    assert len(every_row) == 24, "no manifest row is lost"
    assert {row["status"] for row in read_manifests(out)} <= {"ok", "skipped"}


def test_a_changed_input_redoes_its_output_and_says_why(inputs, tmp_path):
    run_toy(inputs, tmp_path / "out")
    (inputs / "1000007_99999_2_0.txt").write_text("70")  # e.g. unzip_mri redone upstream
    again = run_toy(inputs, tmp_path / "out")
    assert again.counts == {"ok": 1, "failed": 0, "skipped": 11}
    [redone] = [row for row in again.rows if row.status == "ok"]
    assert redone.eid == 1000007 and "input changed" in redone.reason
    assert _value(tmp_path / "out" / "1000007_99999_2_0.h5") == 70.0


def test_a_copied_input_is_still_done(inputs, tmp_path):
    import shutil

    run_toy(inputs, tmp_path / "out")
    moved = tmp_path / "moved"
    shutil.copytree(inputs, moved, copy_function=shutil.copyfile)  # new modification times, same content
    assert run_toy(moved, tmp_path / "out").counts["skipped"] == 12


def test_the_stage_travels_to_each_worker_once_not_with_every_input(inputs, tmp_path):
    from toy_stage import CountingStage, toy_job

    from ukbb_pipeline.runtime.runner import file_unit, run_units

    job = toy_job(inputs, tmp_path / "out")
    stage = CountingStage(job)
    summary = run_units(stage, [file_unit(item) for item in job.inputs], RunOptions(n_jobs=2))
    assert summary.counts == {"ok": 12, "failed": 0, "skipped": 0}
    assert 1 <= CountingStage.pickled <= 2  # once per worker; the units travel alone
    assert _value(tmp_path / "out" / "1000007_99999_2_0.h5") == 7.0


def test_a_raised_output_version_redoes_the_outputs_as_the_changelog_says(inputs, tmp_path):
    import dataclasses

    from toy_stage import toy_job

    from ukbb_pipeline.runtime.runner import VERSION_RAISED
    from ukbb_pipeline.stages.file_stage import run_stage

    def job(version: int, scale: float = 1.0):
        plain = toy_job(inputs, tmp_path / "out", scale=scale)
        return dataclasses.replace(plain, settings={"version": version, **plain.settings})

    run_stage(job(2), RunOptions())
    upgraded = run_stage(job(3), RunOptions())  # only the stage's output version moved: an upgrade, not a choice
    assert upgraded.counts["ok"] == 12
    assert {row.reason for row in upgraded.rows} == {VERSION_RAISED}
    with pytest.raises(ConfigError, match="made with other settings"):  # a setting of the user's still stops it
        run_stage(job(3, scale=2.0), RunOptions())


# --- issue 20, case 11: a worker that dies is its input's failure ---------------------------------------------------


@pytest.mark.parametrize(("signum", "hint"), [(signal.SIGKILL, "likely out of memory"),
                                              (signal.SIGSEGV, "a crash in native code")])
def test_a_worker_killed_by_a_signal_fails_its_input_with_the_reason_and_the_run_goes_on(inputs, tmp_path, signum,
                                                                                         hint):
    """One input kills its worker process (as the OOM killer's SIGKILL or a decoder's segfault does): that input
    fails naming the signal, every other input is done, and the run ends normally."""
    killer = inputs / "1000005_99999_2_0.txt"
    killer.write_text(f"signal {int(signum)}")
    summary = run_toy(inputs, tmp_path / "out", RunOptions(n_jobs=2))
    rows = {Path(row.input).name: row for row in summary.rows}
    assert summary.counts == {"ok": 11, "failed": 1, "skipped": 0}
    failed = rows[killer.name]
    assert failed.status == "failed"
    assert failed.reason == (f"its worker process died: killed by signal {int(signum)} ({signum.name}), {hint}"
                             + (" (the kernel's OOM killer, or a job's memory limit)" if signum == signal.SIGKILL
                                else ", e.g. an image decoder"))
    for i in (0, 4, 6, 11):
        assert _value(tmp_path / "out" / f"{1000000 + i}_99999_2_0.h5") == float(i)
    assert {row["status"] for row in read_manifests(tmp_path / "out")} == {"ok", "failed"}


def test_a_rerun_does_not_run_an_input_that_killed_its_worker_until_overwrite(inputs, tmp_path):
    killer = inputs / "1000003_99999_2_0.txt"
    killer.write_text(f"signal {int(signal.SIGKILL)}")
    out = tmp_path / "out"
    run_toy(inputs, out, RunOptions(n_jobs=2))

    again = run_toy(inputs, out, RunOptions(n_jobs=2))
    assert again.counts == {"ok": 0, "failed": 1, "skipped": 11}
    (failed,) = again.failed
    assert failed.reason.startswith("its worker process died: killed by signal 9 (SIGKILL)")
    assert failed.reason.endswith("(not retried: it killed its worker last time; overwrite=true, or more memory, "
                                  "tries it again)")
    assert run_toy(inputs, out, RunOptions(n_jobs=2)).failed[0].reason == failed.reason, "stays failed, said once"

    killer.write_text("3")  # e.g. more memory: with overwrite=true it is tried again
    retried = run_toy(inputs, out, RunOptions(n_jobs=2, overwrite=True))
    assert retried.counts == {"ok": 12, "failed": 0, "skipped": 0}
