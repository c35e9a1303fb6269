"""A local multirun sweep over shards: a failing shard does not stop the others, and the sweep exits 1 at the end."""

from __future__ import annotations

import pytest

from ukbb_pipeline.runtime.manifest import read_manifests
from ukbb_pipeline.runtime.sharding import shard_of
from ukbb_pipeline.synthetic import Phantom, write_dxa_zip


@pytest.mark.slow
def test_a_failing_shard_does_not_stop_a_local_sweep(tmp_path, run_main):
    raw = tmp_path / "data" / "raw" / "dxas"
    raw.mkdir(parents=True)
    good = range(1000001, 1000007)
    for eid in good:
        write_dxa_zip(raw / f"{eid}_20158_2_0.zip", eid=eid, phantom=Phantom.random(eid))
    bad = next(eid for eid in range(2000000, 2000100) if shard_of(f"{eid}_20158_2_0", count=2) == 0)
    (raw / f"{bad}_20158_2_0.zip").write_bytes(b"junk")  # fails in the first shard to run

    result = run_main("-m", "stage=unzip_dxa", f"paths.root={tmp_path / 'data'}", "shard.count=2",
                      "shard.index=range(2)", f"hydra.sweep.dir={tmp_path / 'sweep'}")

    assert result.returncode == 1, "some inputs failed: exit 1, after every shard ran"
    assert "Traceback" not in result.stdout + result.stderr
    assert "1 of 2 jobs ended with an error" in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("[exit 1]")
    rows = read_manifests(tmp_path / "data" / "dxas-processed")
    assert sorted(int(row["eid"]) for row in rows if row["status"] == "ok") == list(good), "shard 1 ran too"
    assert [row["status"] for row in rows if row["eid"] == str(bad)] == ["failed"]


@pytest.mark.parametrize("sweep", ["stage.n_neighbours=3,5", "experiment=paper,null"])
def test_a_sweep_over_a_stage_setting_is_refused_before_any_job_starts(tmp_path, run_main, sweep):
    result = run_main("-m", "stage=extract_slices", f"paths.root={tmp_path / 'data'}", sweep,
                      f"hydra.sweep.dir={tmp_path / 'sweep'}")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"python main.py: a sweep over {sweep.split('=')[0]} would write every value's outputs into one output "
        "folder: run one command per value, each with its own paths.root=... or stage.output_dir=... "
        "(sweep shards, not settings) [exit 2]"]
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "data").exists()
