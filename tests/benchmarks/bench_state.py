"""How long reading a cohort's state takes at 100,000 inputs (``python tests/benchmarks/bench_state.py``).

Writes one ok run and ``--reruns`` skipped runs of ``--inputs`` rows (unzip_mri's QC columns) and times
``stage_state``: from the manifests alone (no cache), with the cache current, and with one new run to fold in.
The floor is reading the same manifests with ``csv.reader`` and doing nothing with the rows.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.manifest import ManifestRow, ManifestWriter
from ukbb_pipeline.runtime.state import CACHE_NAME, stage_state


def write_run(meta: Path, n: int, *, status: str, name: str, when: str) -> None:
    writer = ManifestWriter(meta, stage="unzip_mri", shard_index=0, shard_count=1, flush_every_s=1e9)
    writer.path = meta / f"manifest-unzip_mri-{name}.csv"
    qc = {"n_stations": 6, "swapped_stations": "", "max_seam_mismatch": 0.031, "min_fat_water_agreement": 0.9,
          "missing_slices": 0, "shape": "224 174 541"} if status == "ok" else {}
    for index in range(n):
        stem = f"{1000000 + index}_20201_2_0"
        writer.add(ManifestRow(input=f"/data/raw/mris/{stem}.zip", status=status, eid=1000000 + index, instance=2,
                               output=f"/data/mris-processed/{stem}.h5", settings_fingerprint="0123456789abcdef-f00d",
                               finished_at=when, qc=qc))
    writer.flush()


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--reruns", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        meta = StageFolders(output=Path(folder), stage="unzip_mri").meta
        meta.mkdir(parents=True)
        write_run(meta, args.inputs, status="ok", name="run0", when="2026-01-01T00:00:00")
        for run in range(1, args.reruns + 1):
            write_run(meta, args.inputs, status="skipped", name=f"run{run}", when=f"2026-01-0{run + 1}T00:00:00")
        rows = args.inputs * (args.reruns + 1)

        def floor() -> None:
            for path in meta.glob("manifest-*.csv"):
                with open(path, newline="") as handle:
                    for _ in csv.reader(handle):
                        pass

        floor_s = timed(floor)
        cold = timed(lambda: stage_state(meta, cache=False))
        first = timed(lambda: stage_state(meta))  # folds everything, writes the cache
        warm = timed(lambda: stage_state(meta))
        write_run(meta, args.inputs, status="skipped", name="run-new", when="2026-02-01T00:00:00")
        incremental = timed(lambda: stage_state(meta))
        size = (meta / CACHE_NAME).stat().st_size
    print(f"{args.inputs} inputs, {args.reruns + 1} runs ({rows} manifest rows)")
    print(f"floor: csv.reader over every manifest        {floor_s:6.2f} s")
    print(f"state from the manifests (no cache)          {cold:6.2f} s  ({cold / floor_s:.1f}x floor)")
    print(f"first read, writing the cache                {first:6.2f} s")
    print(f"cache current (nothing new)                  {warm:6.2f} s  ({warm / floor_s:.2f}x floor)")
    print(f"one new run to fold in                       {incremental:6.2f} s")
    print(f"cache file: {size / 1e6:.1f} MB, {1e3 * warm / args.inputs:.3f} ms per input when current")


if __name__ == "__main__":
    main()
