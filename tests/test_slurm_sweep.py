"""A shard sweep through the `slurm` preset on a real (local) SLURM cluster, the way users launch one."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from ukbb_pipeline.runtime.manifest import read_manifests
from ukbb_pipeline.runtime.sharding import shard_of
from ukbb_pipeline.synthetic import Phantom, write_dxa_zip

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_a_shard_sweep_processes_every_input_once_in_one_job_per_shard(local_slurm, accounting, tmp_path, run_main):
    raw = tmp_path / "data" / "raw" / "dxas"
    raw.mkdir(parents=True)
    for eid in range(1000001, 1000006):
        write_dxa_zip(raw / f"{eid}_20158_2_0.zip", eid=eid, phantom=Phantom.random(eid))
    (raw / "1000006_20158_2_0.zip").write_bytes(b"truncated download")
    sweep = tmp_path / "sweep"

    result = run_main(
        "-m",
        "stage=unzip_dxa",
        f"paths.root={tmp_path / 'data'}",
        "shard.count=3",
        "shard.index=range(3)",
        "hydra/launcher=slurm",
        f"hydra.launcher.partition={local_slurm['LOCAL_SLURM_PARTITION']}",
        "hydra.launcher.timeout_min=5",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        f"hydra.sweep.dir={sweep}",
        timeout=600,
    )
    assert result.returncode != 0, "a failed subject makes the sweep exit non-zero"

    rows = read_manifests(tmp_path / "data" / "dxas-processed", latest=False)
    assert sorted(row["eid"] for row in rows) == [str(eid) for eid in range(1000001, 1000007)], "each input once"
    shards_with_inputs = {shard_of(f"{eid}_20158_2_0", count=3) for eid in range(1000001, 1000007)}
    assert len({row["manifest"] for row in rows}) == len(shards_with_inputs), "one manifest per shard with inputs"
    by_eid = {row["eid"]: row for row in rows}
    assert by_eid["1000006"]["status"] == "failed"
    assert "not a zip" in by_eid["1000006"]["reason"]
    assert all(by_eid[str(eid)]["status"] == "ok" for eid in range(1000001, 1000006))
    assert len(list((tmp_path / "data" / "dxas-processed").glob("*.h5"))) == 5

    # one array task per shard: submitit keeps a folder per task, <array id>_<task index>
    job_ids = sorted(path.name for path in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", path.name))
    assert len(job_ids) == 3, f"one SLURM job per shard, got {job_ids}"
    accounted: list[str] = []
    deadline = time.monotonic() + 60  # slurmctld hands finished jobs to slurmdbd a moment later
    while sorted(accounted) != job_ids and time.monotonic() < deadline:
        time.sleep(0.5)
        accounted = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "JobID", "-j", ",".join(job_ids)],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.split()
    assert sorted(accounted) == job_ids, "SLURM accounted exactly those jobs"
    states = dict(
        line.split("|")[:2]
        for line in subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.split()
    )
    failing = f"{job_ids[0].split('_')[0]}_{shard_of('1000006_20158_2_0', count=3)}"
    assert states[failing].startswith("FAILED"), f"the shard with a failed input fails visibly in sacct: {states}"
    assert all(state == "COMPLETED" for job, state in states.items() if job != failing), states
