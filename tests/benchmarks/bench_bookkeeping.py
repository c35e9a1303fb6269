"""Benchmark of the runner's bookkeeping at cohort scale (run by hand, on a quiet machine):

    python tests/benchmarks/bench_bookkeeping.py [--inputs 100000] [--jobs 2] [--main-inputs 10000]

On ``--inputs`` tiny inputs it times each part of a run: discovery, the EID filters, shard selection, the skip check
of done outputs, dispatch to ``--jobs`` workers (inputs that fail at once inside the worker) and the manifest; then a
whole re-run of a fully done root; then ``main.py stage=unzip_dxa n_jobs=<jobs>`` end to end on ``--main-inputs``
inputs that each fail at once in the worker (empty zips). Figures are milliseconds per input, and as a ratio to a
floor measured in the same run (one ``os.stat`` per input). Goals (issue 12): under 5 ms per input in every part, a
re-run of a done 100,000-input root under 2 minutes, and under 5 ms per input end to end.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.formats import Hdf5Writer, Output
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile, discover_inputs
from ukbb_pipeline.runtime.manifest import ManifestRow, ManifestWriter
from ukbb_pipeline.runtime.runner import RunOptions, Task, file_unit, select_units
from ukbb_pipeline.stages.file_stage import FileStage, StageJob, content_fingerprint, run_stage

ROOT = Path(__file__).resolve().parents[2]
logging.getLogger("ukbb_pipeline").setLevel(logging.CRITICAL)  # the runner is timed, not the console


def tiny_output(item: InputFile, *, fail: bool) -> Output:
    """A toy process: fails at once (``fail``), or a 1-value output."""
    if fail:
        raise InputError("fails at once, as a damaged zip would")
    return Output(arrays={"value": np.zeros((2, 2), np.uint8)}, attrs={"spacing": [1.0, 1.0]}, spacing_attr="spacing")


def job(inputs: list[InputFile], output: Path, *, fail: bool) -> StageJob:
    return StageJob(name="bench", folders=StageFolders(output=output, stage="bench"), inputs=inputs,
                    process=functools.partial(tiny_output, fail=fail), writer=Hdf5Writer(), settings={"v": 1})


def make_done_root(stage: FileStage, units: list) -> None:
    """Outputs and a manifest as a finished run leaves them (written without a run's fsyncs: not what is timed)."""
    manifest = ManifestWriter(stage.folders.meta, stage=stage.name, shard_index=0, shard_count=1, flush_every_s=1e9)
    stage.folders.scratch.mkdir(parents=True, exist_ok=True)
    fingerprint = stage.fingerprint()
    for unit in units:
        task = Task(unit, "", content_fingerprint(fingerprint, unit.item.path))
        output = tiny_output(unit.item, fail=False)
        final = stage.output_path(unit)
        with h5py.File(f"{unit.key}.h5", "w", driver="core", backing_store=False) as handle:
            handle.create_dataset("value", data=output.arrays["value"])
            handle.attrs["settings_fingerprint"] = task.fingerprint
            handle.flush()
            final.write_bytes(handle.id.get_file_image())
        stat = os.stat(final)
        manifest.add(ManifestRow(input=unit.input, status="ok", eid=unit.eid, instance=unit.instance,
                                 output=str(final), settings_fingerprint=task.fingerprint,
                                 qc={"output_bytes": stat.st_size, "output_mtime_ns": stat.st_mtime_ns}))
    manifest.flush()


def timed(label: str, n: int, floor: float, function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    seconds = time.perf_counter() - started
    print(f"{label:<44} {seconds:8.2f} s  {1000 * seconds / n:8.3f} ms/input  {seconds / floor:8.1f} x floor")
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--main-inputs", type=int, default=10_000)
    args = parser.parse_args()
    n = args.inputs
    with tempfile.TemporaryDirectory(prefix="bench-bookkeeping-") as tmp:
        raw = Path(tmp) / "raw"
        raw.mkdir()
        for index in range(n):
            (raw / f"{1_000_000 + index}_20158_2_0.zip").write_bytes(index.to_bytes(4, "big"))
        started = time.perf_counter()
        for entry in os.scandir(raw):
            os.stat(entry.path)
        floor = time.perf_counter() - started
        print(f"{n} inputs, {args.jobs} workers; floor (one os.stat per input): {1000 * floor / n:.4f} ms/input")

        inputs, _ = timed("discovery (discover_inputs)", n, floor, discover_inputs, raw, suffix=".zip")
        units = [file_unit(item) for item in inputs]
        only = frozenset(1_000_000 + i for i in range(0, n, 2))
        exclude = frozenset(1_000_000 + i for i in range(0, n, 10))
        timed("EID filters (eids_file, exclude_eids_file)", n, floor, select_units, units,
              RunOptions(only_eids=only, exclude_eids=exclude))
        timed("shard selection (shard 1 of 4)", n, floor, select_units, units, RunOptions(shard_index=1, shard_count=4))

        done = Path(tmp) / "done"
        stage = FileStage(job(inputs, done, fail=False))
        timed("making a done root (outputs + manifest)", n, floor, make_done_root, stage, units)
        timed("skip check of done outputs", n, floor,
              lambda: list(stage.check_done(units, fingerprint=stage.fingerprint(), overwrite=False)))

        def rerun():
            found = discover_inputs(raw, suffix=".zip")
            return run_stage(job(found, done, fail=False), RunOptions(n_jobs=args.jobs))

        summary, rerun_s = timed("re-run of the done root (discovery + run)", n, floor, rerun)
        assert summary.counts["skipped"] == n, summary.counts
        failing = Path(tmp) / "failing"
        summary, _ = timed(f"dispatch to {args.jobs} workers (each fails at once)", n, floor, run_stage,
                           job(inputs, failing, fail=True), RunOptions(n_jobs=args.jobs))
        assert summary.counts["failed"] == n, summary.counts

        manifest = ManifestWriter(Path(tmp) / "manifest", stage="bench", shard_index=0, shard_count=1,
                                  flush_every_s=1e9)
        rows = summary.rows
        timed("manifest (add every row, write the CSV)", n, floor,
              lambda: ([manifest.add(row) for row in rows], manifest.flush()))
        print(f"re-run of a done root: {rerun_s:.1f} s for {n} inputs (goal: under 120 s at 100,000)")

        m = args.main_inputs
        zips = Path(tmp) / "main" / "raw" / "dxas"
        zips.mkdir(parents=True)
        for index in range(m):
            (zips / f"{2_000_000 + index}_20158_2_0.zip").write_bytes(b"")
        command = [sys.executable, str(ROOT / "main.py"), "stage=unzip_dxa", f"n_jobs={args.jobs}", "qc=false",
                   "allow_failures=true", f"paths.root={Path(tmp) / 'main'}", f"hydra.run.dir={Path(tmp) / 'run'}"]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        seconds = time.perf_counter() - started
        print(f"main.py stage=unzip_dxa n_jobs={args.jobs}, {m} empty zips (each fails in the worker): "
              f"{seconds:.1f} s, {1000 * seconds / m:.2f} ms/input (goal: under 5)")


if __name__ == "__main__":
    main()
