"""Stage ``download`` with ukbfetch: a fake ukbfetch on PATH serves synthetic zips and fails on request.

Covered: chunking into calls, the cap on simultaneous calls (peak observed from the fake's log), retries of transient
errors and truncated files, failures recorded with their reason, resume after a failure and after SIGKILL,
exclusions, refusals at start-up, and that the key's content appears in no output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import PASSWORD, FakeTools, write_key_file

from ukbb_pipeline.config import DownloadConfig
from ukbb_pipeline.download.fetch import RetryPolicy
from ukbb_pipeline.download.keyfile import KeyFileError
from ukbb_pipeline.download.tools import ToolNotFound
from ukbb_pipeline.errors import InputError, StageFailed
from ukbb_pipeline.runtime.manifest import read_manifests
from ukbb_pipeline.runtime.runner import RunOptions, raise_on_failures
from ukbb_pipeline.stages import download

REPO = Path(__file__).resolve().parents[2]
EIDS = [1000000 + i for i in range(24)]
STEMS = [f"{eid}_{field}_2_0" for eid in EIDS for field in (20158, 20201)]  # 48 files


@pytest.fixture
def fakes(tmp_path, monkeypatch) -> FakeTools:
    tools = FakeTools(tmp_path / "fakes").install()
    tools.publish(STEMS)
    monkeypatch.setenv("PATH", tools.path_with_fakes_first())
    return tools


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """The user's current folder, with the EID list and the key file."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "eids.txt").write_text("".join(f"{eid}\n" for eid in EIDS))
    write_key_file(folder / ".ukbkey")
    monkeypatch.chdir(folder)
    return folder


def make_config(tmp_path: Path, **overrides) -> DownloadConfig:
    settings = {"output_dir": str(tmp_path / "raw"), "eids_file": "eids.txt", "retry_backoff_s": 0.0}
    return DownloadConfig(**{**settings, **overrides})


def raw_file(tmp_path: Path, stem: str) -> Path:
    folder = "dxas" if "_20158_" in stem else "mris"
    return tmp_path / "raw" / folder / f"{stem}.zip"


def rows_by_input(summary) -> dict[str, object]:
    return {row.input: row for row in summary.rows}


def test_every_requested_file_arrives_whole_in_its_raw_folder(tmp_path, fakes, work):
    [summary] = download.run(make_config(tmp_path), options=RunOptions())
    assert summary.counts == {"ok": 48, "failed": 0, "skipped": 0}
    for stem in STEMS:
        assert raw_file(tmp_path, stem).read_bytes() == (fakes.served / f"{stem}.zip").read_bytes()
    rows = read_manifests(tmp_path / "raw")
    assert len(rows) == 48
    row = next(r for r in rows if r["input"] == "1000003_20201_2_0")
    assert (row["eid"], row["instance"], row["status"]) == ("1000003", "2", "ok")
    assert row["output"] == str(raw_file(tmp_path, "1000003_20201_2_0"))
    assert row["bytes"] == str(raw_file(tmp_path, "1000003_20201_2_0").stat().st_size)
    assert sorted(os.listdir(tmp_path / "raw")) == ["dxas", "mris", "pipeline-download"]
    assert list((tmp_path / "raw" / "pipeline-download" / "tmp").iterdir()) == []  # scratch folders removed
    assert sorted(os.listdir(work)) == [".ukbkey", "eids.txt"]  # nothing written where the user stands


def test_48_files_with_parallel_10_run_as_10_ukbfetch_calls_with_glued_flags(tmp_path, fakes, work):
    download.run(make_config(tmp_path, parallel=10), options=RunOptions())
    calls = fakes.calls("ukbfetch")
    assert sorted(len(call["requested"]) for call in calls) == [4, 4] + [5] * 8
    assert sorted(stem for call in calls for stem in call["requested"]) == sorted(STEMS)
    scratch = tmp_path / "raw" / "pipeline-download" / "tmp"
    for call in calls:
        key, batch, first, count = call["argv"]
        assert key == f"-a{work / '.ukbkey'}"
        assert batch == f"-b{Path(call['cwd']) / 'request.bulk'}"
        assert (first, count) == ("-s1", f"-m{len(call['requested'])}")
        assert Path(call["cwd"]).parent == scratch  # each call in its own scratch folder
    assert len({call["cwd"] for call in calls}) == len(calls)


@pytest.mark.parametrize("parallel", [3, 10])
def test_never_more_simultaneous_calls_than_parallel(tmp_path, fakes, work, parallel):
    fakes.behave(sleep_per_file=0.08)  # calls long enough to overlap however slow the machine
    download.run(make_config(tmp_path, parallel=parallel), options=RunOptions())
    peak = fakes.peak_concurrency("ukbfetch")
    assert 2 <= peak <= parallel


def test_transient_errors_and_truncated_files_are_retried_until_whole(tmp_path, fakes, work):
    fakes.behave(transient={1000003: 2}, truncate={"1000005_20201_2_0": 1})
    [summary] = download.run(make_config(tmp_path, retries=3), options=RunOptions())
    assert summary.counts == {"ok": 48, "failed": 0, "skipped": 0}
    rows = rows_by_input(summary)
    assert rows["1000005_20201_2_0"].qc["attempts"] == 2
    assert rows["1000005_20201_2_0"].reason == "fetched at attempt 2"
    assert rows["1000003_20201_2_0"].qc["attempts"] == 3
    assert fakes.requested().count("1000005_20201_2_0") == 2
    for stem in STEMS:
        assert raw_file(tmp_path, stem).read_bytes() == (fakes.served / f"{stem}.zip").read_bytes()


def test_files_still_failing_after_the_retries_are_recorded_with_the_reason(tmp_path, fakes, work):
    fakes.behave(missing=[1000007], transient={"1000009_20158_2_0": 99}, truncate={"1000011_20201_2_0": 99})
    [summary] = download.run(make_config(tmp_path, retries=1), options=RunOptions())
    assert summary.counts == {"ok": 44, "failed": 4, "skipped": 0}
    rows = rows_by_input(summary)
    # missing: served by no call; the last call may also have failed on another file, then the reason says so first
    assert rows["1000007_20158_2_0"].reason.startswith("after 2 attempts: ")
    assert rows["1000007_20158_2_0"].reason.endswith("(Datafile 1000007 20158_2_0 is not available)")
    assert rows["1000009_20158_2_0"].reason == (
        "after 2 attempts: ukbfetch failed (exit code 2: Error fetching 1000009 20158_2_0: connection reset by peer);"
        " no file"
    )
    assert rows["1000011_20201_2_0"].reason.startswith("after 2 attempts: downloaded file is not a complete zip")
    for stem in ("1000007_20158_2_0", "1000007_20201_2_0", "1000009_20158_2_0", "1000011_20201_2_0"):
        assert not raw_file(tmp_path, stem).exists()
        assert rows[stem].status == "failed"
        assert rows[stem].output == ""
    with pytest.raises(StageFailed, match="4 input"):
        raise_on_failures([summary], allow_failures=False)


def test_a_rerun_skips_what_is_present_and_fetches_only_the_rest(tmp_path, fakes, work):
    fakes.behave(missing=[1000007, 1000008])
    download.run(make_config(tmp_path, retries=0), options=RunOptions())
    fakes.behave()
    first_run_calls = len(fakes.calls())
    [again] = download.run(make_config(tmp_path), options=RunOptions())
    assert again.counts == {"ok": 4, "failed": 0, "skipped": 44}
    second_run = [stem for call in fakes.calls()[first_run_calls:] for stem in call["requested"]]
    assert sorted(second_run) == ["1000007_20158_2_0", "1000007_20201_2_0", "1000008_20158_2_0", "1000008_20201_2_0"]
    assert {row.reason for row in again.rows if row.status == "skipped"} == {"present and valid (verified earlier)"}
    assert {row["status"] for row in read_manifests(tmp_path / "raw")} == {"ok", "skipped"}


def test_a_damaged_file_in_the_raw_folder_is_set_aside_and_fetched_again(tmp_path, fakes, work):
    download.run(make_config(tmp_path), options=RunOptions())
    damaged = raw_file(tmp_path, "1000002_20201_2_0")
    damaged.write_bytes(damaged.read_bytes()[:-100])
    [again] = download.run(make_config(tmp_path), options=RunOptions())
    assert again.counts == {"ok": 1, "failed": 0, "skipped": 47}
    row = rows_by_input(again)["1000002_20201_2_0"]
    assert row.reason.startswith("redone: the file present was not a complete zip")
    assert damaged.read_bytes() == (fakes.served / damaged.name).read_bytes()
    assert (tmp_path / "raw" / "pipeline-download" / "rejected" / damaged.name).exists()


def test_a_file_placed_by_hand_is_verified_before_it_is_skipped(tmp_path, fakes, work):
    placed = raw_file(tmp_path, "1000004_20158_2_0")
    placed.parent.mkdir(parents=True)
    placed.write_bytes((fakes.served / placed.name).read_bytes())
    [summary] = download.run(make_config(tmp_path), options=RunOptions())
    assert rows_by_input(summary)["1000004_20158_2_0"].reason == "present and valid (verified now)"
    assert "1000004_20158_2_0" not in fakes.requested()


def test_overwrite_fetches_everything_again(tmp_path, fakes, work):
    download.run(make_config(tmp_path, fields=[20201]), options=RunOptions())
    [again] = download.run(make_config(tmp_path, fields=[20201]), options=RunOptions(overwrite=True))
    assert again.counts == {"ok": 24, "failed": 0, "skipped": 0}
    assert all(row.reason == "redone: overwrite=true" for row in again.rows)


@pytest.mark.slow
def test_a_run_killed_mid_way_and_run_again_fetches_each_file_once(tmp_path, fakes, work):
    # Three participants fail once, so the run is still alive (waiting to retry them) whatever the machine's speed.
    fakes.behave(sleep_per_file=0.05, transient={1000020: 1, 1000021: 1, 1000022: 1})
    command = [
        sys.executable, str(REPO / "main.py"), "stage=download", "stage.eids_file=eids.txt",
        f"stage.output_dir={tmp_path / 'raw'}", "stage.parallel=2", f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=work, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list((tmp_path / "raw").glob("*/*.zip"))) < 6 and time.monotonic() < deadline:  # placed, not scratch
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the run and the ukbfetch processes it started
    process.wait(timeout=30)
    before = {path.stem for path in (tmp_path / "raw").glob("*/*.zip")}
    assert 6 <= len(before) < 48, "the kill should land mid-run"
    calls_before = len(fakes.calls())

    fakes.behave()
    [rerun] = download.run(make_config(tmp_path), options=RunOptions())
    fetched_again = [stem for call in fakes.calls()[calls_before:] for stem in call["requested"]]
    assert sorted(fetched_again) == sorted(set(STEMS) - before)
    assert rerun.counts == {"ok": 48 - len(before), "failed": 0, "skipped": len(before)}
    for stem in STEMS:
        assert raw_file(tmp_path, stem).read_bytes() == (fakes.served / f"{stem}.zip").read_bytes()
    assert list((tmp_path / "raw" / "pipeline-download" / "tmp").iterdir()) == []  # the dead run's scratch is gone


def test_excluded_eids_are_never_downloaded(tmp_path, fakes, work):
    excluded = frozenset({1000001, 1000010})
    [summary] = download.run(make_config(tmp_path), options=RunOptions(exclude_eids=excluded))
    assert summary.counts["ok"] == 44
    assert not any(int(stem.split("_")[0]) in excluded for stem in fakes.requested())
    assert not any(row.eid in excluded for row in summary.rows)


def test_the_top_level_eids_file_is_the_request_list_when_the_stage_has_none(tmp_path, fakes, work):
    config = make_config(tmp_path, eids_file=None, fields=[20158], instances=[2])
    [summary] = download.run(config, options=RunOptions(only_eids=frozenset({1000002, 1000001})))
    assert sorted(row.input for row in summary.rows) == ["1000001_20158_2_0", "1000002_20158_2_0"]


def test_a_call_that_hangs_is_stopped_and_reported(tmp_path, fakes, work):
    fakes.behave(sleep_per_file=5.0)
    config = make_config(tmp_path, eids_file=None, fields=[20201], retries=0, timeout_per_file_s=0.3)
    [summary] = download.run(config, options=RunOptions(only_eids=frozenset({1000001})))
    [row] = summary.rows
    assert row.status == "failed"
    assert row.reason == "ukbfetch failed (timed out after 0.3 s); no file"


def test_the_key_never_appears_in_any_output(tmp_path, fakes, work, caplog, capsys):
    fakes.behave(leak_key=True, missing=[1000007], transient={"1000009_20158_2_0": 99})
    [summary] = download.run(make_config(tmp_path, retries=1), options=RunOptions())
    assert summary.counts["failed"] == 3
    # the failed call's last line, which goes into the reason, was the key: scrubbed
    assert rows_by_input(summary)["1000009_20158_2_0"].reason == (
        "after 2 attempts: ukbfetch failed (exit code 2: Authenticated 12345 with <key>); "
        "no file (Error fetching 1000009 20158_2_0: connection reset by peer)"
    )
    captured = capsys.readouterr()
    assert PASSWORD not in caplog.text + captured.out + captured.err
    for path in (tmp_path / "raw").rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_the_key_never_appears_in_main_py_output_or_the_saved_config(tmp_path, fakes, work, run_main):
    fakes.behave(leak_key=True, missing=[1000007])
    result = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "stage=download", "stage.eids_file=eids.txt", "stage.retries=0",
         f"stage.output_dir={tmp_path / 'raw'}", f"hydra.run.dir={tmp_path / 'hydra'}"],
        cwd=work, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0  # 1000007 failed
    assert "1000007_20158_2_0" in result.stderr + result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    saved = list((tmp_path / "hydra").rglob("*"))
    assert any(path.name == "config.yaml" for path in saved)
    for path in saved:
        if path.is_file():
            assert PASSWORD not in path.read_text(errors="replace"), path


@pytest.mark.parametrize(
    ("overrides", "options", "error", "message"),
    [
        ({"key_file": "missing.key"}, RunOptions(), KeyFileError, r"missing.key does not exist"),
        ({"ukbfetch": "not-installed"}, RunOptions(), ToolNotFound, r"not-installed not found on PATH"),
        ({"ukbfetch": "/nowhere/ukbfetch"}, RunOptions(), ToolNotFound, r"/nowhere/ukbfetch does not exist"),
        ({"eids_file": None}, RunOptions(), ValueError, r"stage.eids_file"),
    ],
)
def test_bad_settings_are_refused_before_any_download(tmp_path, fakes, work, overrides, options, error, message):
    with pytest.raises(error, match=message):
        download.run(make_config(tmp_path, **overrides), options=options)
    assert fakes.calls() == []


def test_bad_lines_in_the_eid_list_are_refused_with_their_numbers(tmp_path, fakes, work):
    (work / "eids.txt").write_text("1000001\n1000002\n100000X\n1000003\n")
    with pytest.raises(InputError, match=r"eids.txt: bad lines: line 3 \('100000X'"):
        download.run(make_config(tmp_path), options=RunOptions())
    assert fakes.calls() == []


@pytest.mark.slow
def test_the_command_line_refuses_shards_and_more_than_10_downloads(run_main):
    result = run_main("stage=download", "paths.root=.", "stage.parallel=12")
    assert result.returncode != 0
    assert "stage.parallel=12 is refused" in result.stderr
    result = run_main("stage=download", "paths.root=.", "shard.count=3")
    assert result.returncode != 0
    assert "download refuses shard.count=3" in result.stderr


def test_retry_waits_grow_and_are_capped():
    policy = RetryPolicy(retries=5, backoff_s=30.0, max_backoff_s=100.0)
    assert [policy.delay(attempt) for attempt in (1, 2, 3, 4)] == [30.0, 60.0, 100.0, 100.0]


def test_a_ukbconv_bulk_file_is_fetched_line_by_line_for_the_configured_instances(tmp_path, fakes, work):
    fakes.publish(["1000001_20201_3_0"])
    (work / "ukb12345.bulk").write_text("1000001 20201_2_0\n1000001 20201_3_0\n1000002 20201_2_0\n1000003 20158_2_0\n")
    config = make_config(tmp_path, eids_file="ukb12345.bulk", fields=[20201], instances=[2, 3])
    [summary] = download.run(config, options=RunOptions())
    assert summary.counts == {"ok": 3, "failed": 0, "skipped": 0}
    assert sorted(fakes.requested()) == ["1000001_20201_2_0", "1000001_20201_3_0", "1000002_20201_2_0"]
    assert raw_file(tmp_path, "1000001_20201_3_0").exists()
