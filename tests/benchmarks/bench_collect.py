"""Benchmark of ``collect`` and the reader on full-size synthetic inputs; prints figures (run by hand).

    python tests/benchmarks/bench_collect.py [--pairs 20] [--jobs 2]

Inputs are real-sized: slabs (224, 11, 500) uint16 at 2.232 mm, DXA (791, 272) uint8 at ~2.4 mm. Figures: seconds
per pair to build a shard (one worker and ``--jobs``), bytes per pair on disk, and items per second read back (raw
and normalised).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))  # for paired_inputs

from ukbb_pipeline.config import CollectConfig
from ukbb_pipeline.formats import Hdf5Writer, Output
from ukbb_pipeline.pairs.dataset import PairedDataset
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.runner import RunOptions
from ukbb_pipeline.stages import collect as collect_stage


def write_inputs(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    slab_shape, dxa_shape = (224, 11, 500), (791, 272)
    x, z = np.meshgrid(np.linspace(-1, 1, slab_shape[0]), np.linspace(-1, 1, slab_shape[2]), indexing="ij")
    body = np.exp(-(x**2 / 0.3 + z**2 / 0.8))[:, None, :]
    r, c = np.meshgrid(np.linspace(-1, 1, dxa_shape[0]), np.linspace(-1, 1, dxa_shape[1]), indexing="ij")
    projection = np.exp(-(r**2 / 0.6 + c**2 / 0.2))
    for index in range(n):
        eid = 1_000_001 + index
        noise = rng.normal(0, 20, (slab_shape[0], slab_shape[1], slab_shape[2]))
        slabs = {name: np.clip(scale * body + noise, 0, None).astype(np.uint16)
                 for name, scale in (("fat_scan", 1000), ("water_scan", 700))}
        Hdf5Writer().write(StageFolders(root / "slices", "extract_slices"), f"{eid}_20201_2_0",
                           Output(arrays=slabs, attrs={"spacing": [2.232, 4.464, 2.232], "origin": [-248.9, 0, 300]},
                                  spacing_attr="spacing"), fingerprint="bench")
        images = {name: np.clip(scale * projection + rng.normal(0, 3, dxa_shape), 0, 249).astype(np.uint8)
                  for name, scale in (("tissue", 200), ("bone", 150))}
        Hdf5Writer().write(StageFolders(root / "dxa", "unzip_dxa"), f"{eid}_20158_2_0",
                           Output(arrays=images, attrs={"pixel_spacing": [1920 / 791, 658 / 272]},
                                  spacing_attr="pixel_spacing"), fingerprint="bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_inputs(root, args.pairs)
        config = CollectConfig(input_dir=str(root / "slices"), dxa_dir=str(root / "dxa"), output_dir=str(root / "out"))
        for jobs in sorted({1, args.jobs}):
            started = time.perf_counter()
            collect_stage.run(config, options=RunOptions(n_jobs=jobs, overwrite=True), writer=Hdf5Writer())
            seconds = time.perf_counter() - started
            print(f"collect, n_jobs={jobs}: {seconds / args.pairs * 1000:.0f} ms per pair "
                  f"({args.pairs} pairs in {seconds:.2f} s)")
        shard = root / "out" / "collection-shard0of1.h5"
        print(f"shard file: {shard.stat().st_size / args.pairs / 1e6:.2f} MB per pair (gzip level 1 + shuffle)")
        for normalise in (False, True):
            data = PairedDataset(shard, normalise=normalise)
            started = time.perf_counter()
            for index in range(len(data)):
                data[index]
            seconds = time.perf_counter() - started
            print(f"reader, normalise={normalise}: {len(data) / seconds:.0f} items/s in one process")
            data.close()


if __name__ == "__main__":
    main()
