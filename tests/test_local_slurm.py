"""The local SLURM cluster works: srun, submitit jobs with sacct states, cancelled jobs that raise."""

from __future__ import annotations

import operator
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from local_slurm import _run, with_deadline

pytestmark = pytest.mark.slurm


def _executor(folder: Path, partition: str) -> Any:
    import submitit

    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    executor.update_parameters(slurm_partition=partition, timeout_min=5, cpus_per_task=1, mem_gb=1)
    return executor


def test_srun_hostname(local_slurm: dict[str, str]) -> None:
    proc = _run(["srun", "-p", local_slurm["LOCAL_SLURM_PARTITION"], "-t", "1", "hostname"], timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == socket.gethostname()


def test_submitit_job_returns_and_sacct_knows(local_slurm: dict[str, str], accounting: None, tmp_path: Path) -> None:
    # Functions from the standard library pickle by reference and import anywhere.
    job = _executor(tmp_path, local_slurm["LOCAL_SLURM_PARTITION"]).submit(operator.add, 2, 3)
    assert with_deadline(job.result, 60, f"job {job.job_id}.result()") == 5

    # slurmctld pushes the final state to slurmdbd within about a second; submitit
    # caches states, so force a fresh sacct call.
    deadline = time.monotonic() + 20
    state = None
    while time.monotonic() < deadline:
        state = job.get_info(mode="force").get("State")
        if state == "COMPLETED":
            break
        time.sleep(0.5)
    assert state == "COMPLETED"
    proc = _run(["sacct", "-n", "-X", "-P", "-j", str(job.job_id), "-o", "State"], timeout=20)
    assert proc.stdout.split() == ["COMPLETED"], proc.stdout + proc.stderr


def test_cancelled_job_raises(local_slurm: dict[str, str], accounting: None, tmp_path: Path) -> None:
    from submitit.core.utils import UncompletedJobError

    job = _executor(tmp_path, local_slurm["LOCAL_SLURM_PARTITION"]).submit(time.sleep, 300)
    deadline = time.monotonic() + 30
    while job.get_info(mode="force").get("State") != "RUNNING":
        assert time.monotonic() < deadline, f"job {job.job_id} did not start within 30 s"
        time.sleep(0.5)
    job.cancel(check=True)
    # Without sacct (no slurmdbd) this would wait forever: the job leaves no result.
    with pytest.raises(UncompletedJobError, match="CANCELLED"):
        with_deadline(job.result, 60, f"cancelled job {job.job_id}.result()")
