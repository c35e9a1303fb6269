"""The scheduler on its own, with an in-process backend: which failures cost an attempt, and bugs do not loop."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from fakes import synthetic_zip

from ukbb_pipeline.download.bulk import BulkRequest
from ukbb_pipeline.download.fetch import FileResult, RetryPolicy, fetch_all
from ukbb_pipeline.download.tools import ToolRun
from ukbb_pipeline.errors import OutputError

REQUESTS = [BulkRequest(1000000 + i, 20201, 2) for i in range(5)]


class ScriptedBackend:
    """Writes the files of each call in order and stops, with exit code 2, at any file in ``fail_at``
    (each entry is used once): the way ukbfetch works down its batch file."""

    name = "scripted"
    max_per_call = 1000

    def __init__(
        self, fail_at: list[str] | None = None, *, leave_nothing: bool = False, crash: bool = False,
        disk_full: bool = False,
    ):
        self.fail_at = list(fail_at or [])
        self.leave_nothing = leave_nothing
        self.crash = crash
        self.disk_full = disk_full
        self.calls: list[list[str]] = []

    def fetch(self, requests, scratch: Path, children) -> ToolRun:
        self.calls.append([r.stem for r in requests])
        if self.crash:
            raise RuntimeError("a bug")
        if self.disk_full:
            raise OSError(errno.ENOSPC, "No space left on device", str(scratch / "request.bulk"))
        if self.leave_nothing:
            return ToolRun(1, "server unavailable", 0.0)
        for request in requests:
            if request.stem in self.fail_at:
                self.fail_at.remove(request.stem)
                return ToolRun(2, f"Error fetching {request.bulk_line}", 0.0)
            (scratch / request.file_name).write_bytes(synthetic_zip(request.stem))
        return ToolRun(0, "Fetched", 0.0)


def run(backend, tmp_path, *, retries: int) -> dict[str, FileResult]:
    results: dict[str, FileResult] = {}
    fetch_all(
        REQUESTS, backend=backend, destination=lambda r: tmp_path / "out" / r.file_name,
        scratch_root=tmp_path / "scratch", parallel=1, retry=RetryPolicy(retries=retries, backoff_s=0.0),
        on_result=lambda result: results.setdefault(result.request.stem, result),
    )
    assert sorted(results) == sorted(r.stem for r in REQUESTS)  # one result per request, exactly
    return results


def test_a_call_that_stops_part_way_costs_an_attempt_only_to_the_files_it_reached(tmp_path):
    backend = ScriptedBackend(fail_at=["1000001_20201_2_0"])
    results = run(backend, tmp_path, retries=0)
    assert [r.ok for r in results.values()] == [True, False, True, True, True]
    failed = results["1000001_20201_2_0"]
    assert failed.reason == "scripted failed (exit code 2: Error fetching 1000001 20201_2_0); no file"
    assert backend.calls[1] == ["1000002_20201_2_0", "1000003_20201_2_0", "1000004_20201_2_0"]  # straight back
    assert {r.attempts for r in results.values()} == {1}


def test_a_call_that_leaves_no_file_costs_every_file_an_attempt(tmp_path):
    backend = ScriptedBackend(leave_nothing=True)
    results = run(backend, tmp_path, retries=2)
    assert len(backend.calls) == 3  # the first call and two retries, then every file is reported
    reasons = {r.reason for r in results.values()}
    assert reasons == {"after 3 attempts: scripted failed (exit code 1: server unavailable); no file"}


def test_a_bug_is_reported_where_it_happened_and_not_retried(tmp_path):
    backend = ScriptedBackend(crash=True)
    results = run(backend, tmp_path, retries=3)
    assert len(backend.calls) == 1
    reason = results["1000000_20201_2_0"].reason
    assert reason.startswith("unexpected RuntimeError at test_fetch.py:")
    assert reason.endswith(": a bug")
    assert list((tmp_path / "scratch").iterdir()) == []


def test_a_full_disk_stops_the_run_with_one_clear_error(tmp_path):
    with pytest.raises(OutputError, match=r"request\.bulk: No space left on device"):
        run(ScriptedBackend(disk_full=True), tmp_path, retries=3)
    assert list((tmp_path / "scratch").iterdir()) == []
