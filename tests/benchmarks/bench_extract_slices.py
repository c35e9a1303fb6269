"""Benchmark: per-subject mid-coronal extraction from full-size HDF5 volumes, against reading the whole volume.

Writes full-size volumes (224 x 174 x ~500 at 2.23 mm, uint16 fat and water, the phantom on its table with noise)
through the project's HDF5 writer, then times ``process_volume`` per subject without QC pictures (what the issue
asks to stay well under a tenth of a second), the rows it decompresses, a plain read of the whole fat volume for
comparison, and the per-subject QC figure on its own. Run by hand (timings are noisy on a shared machine):

    python tests/benchmarks/bench_extract_slices.py [--subjects 4] [--repeats 5] [--compression gzip lzf none]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ukbb_pipeline.formats import Hdf5Writer, Output
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import parse_input
from ukbb_pipeline.stages import extract_slices
from ukbb_pipeline.synthetic import Phantom, sample_truth

PIXEL = 2.232142925262451
GRID = {"origin": (-250 + PIXEL / 2, -86.5 * PIXEL, 645.25 - PIXEL / 2), "spacing": (PIXEL, PIXEL, PIXEL),
        "shape": (224, 174, 497)}
SETTINGS = extract_slices.SlabSettings(n_neighbours=5, spacing=2, profile_stride=None)


def full_size_volumes(n_subjects: int) -> list[dict[str, np.ndarray]]:
    """Fat and water of ``n_subjects`` phantoms on the full-size grid, with table and noise (uint16)."""
    rng = np.random.default_rng(0)
    volumes = []
    for seed in range(n_subjects):
        phantom = Phantom.random(seed)
        channels = {}
        for name in ("fat", "water"):
            clean = sample_truth(phantom, **GRID, channel=name, include_bed=True)
            noisy = np.abs(clean + rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(6.0))
            channels[f"{name}_scan"] = np.rint(noisy).astype(np.uint16)
        volumes.append(channels)
    return volumes


def write_all(folder: Path, volumes: list[dict[str, np.ndarray]], compression: str | None) -> list[Path]:
    writer = Hdf5Writer(compression=compression)
    folders = StageFolders(output=folder, stage="unzip_mri")
    paths = []
    for index, arrays in enumerate(volumes):
        output = Output(arrays=arrays, attrs={"spacing": list(GRID["spacing"]), "origin": list(GRID["origin"])},
                        spacing_attr="spacing")
        paths.append(writer.write(folders, f"{1000001 + index}_20201_2_0", output, fingerprint="bench"))
    return paths


def timed(function, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def rows_read(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    original = extract_slices.open_volume

    def counting(*args, **kwargs):
        volume = original(*args, **kwargs)
        close = volume.close

        def close_and_count():
            counts.update({channel: volume.rows_read(channel) for channel in volume.info.channels})
            close()

        volume.close = close_and_count
        return volume

    extract_slices.open_volume = counting
    try:
        extract_slices.process_volume(parse_input(path), settings=SETTINGS)
    finally:
        extract_slices.open_volume = original
    return counts


def read_whole_fat(path: Path) -> None:
    with h5py.File(path) as handle:
        handle["fat_scan"][()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compression", nargs="+", default=["gzip", "lzf", "none"], choices=["gzip", "lzf", "none"])
    args = parser.parse_args()
    print(f"making {args.subjects} full-size volumes {GRID['shape']} ...", flush=True)
    volumes = full_size_volumes(args.subjects)
    with tempfile.TemporaryDirectory(prefix="bench-extract-slices-") as scratch:
        root = Path(scratch)
        for compression in args.compression:
            paths = write_all(root / compression, volumes, None if compression == "none" else compression)
            size_mb = statistics.mean(path.stat().st_size for path in paths) / 1e6
            extract, whole = [], []
            for path in paths:
                extract_slices.process_volume(parse_input(path), settings=SETTINGS)  # warm the file cache
                extract += timed(lambda p=path: extract_slices.process_volume(parse_input(p), settings=SETTINGS),
                                 args.repeats)
                whole += timed(lambda p=path: read_whole_fat(p), args.repeats)
            counts = rows_read(paths[0])
            print(f"\n{compression}: {size_mb:.1f} MB per file (fat + water)")
            print(f"  extract one subject (no QC): median {1e3 * statistics.median(extract):6.1f} ms, "
                  f"min {1e3 * min(extract):6.1f} ms, max {1e3 * max(extract):6.1f} ms "
                  f"({len(extract)} runs)")
            print(f"  rows decompressed: fat {counts['fat_scan']} of {GRID['shape'][1]}, "
                  f"water {counts['water_scan']}")
            print(f"  read the whole fat volume: median {1e3 * statistics.median(whole):6.1f} ms")
        qc_dir = root / "qc"
        qc_times = timed(lambda: extract_slices.process_volume(parse_input(paths[0]), settings=SETTINGS,
                                                               qc_dir=qc_dir), args.repeats)
        print(f"\nextract + per-subject QC figure: median {1e3 * statistics.median(qc_times):6.1f} ms")


if __name__ == "__main__":
    main()
