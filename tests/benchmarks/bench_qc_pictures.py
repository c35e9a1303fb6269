"""What extract_slices' per-subject QC picture costs (``python tests/benchmarks/bench_qc_pictures.py ROOT``).

ROOT holds full-size synthetic subjects through unzip_mri (``raw/mris/*.zip`` and ``mris-processed/*.h5``), e.g.
``python -m ukbb_pipeline.synthetic`` with size full, then ``python main.py stage=unzip_mri paths.root=ROOT``.
Prints, per subject (best of ``--rounds``): the floor (inflate every member of the zip and ``pydicom.dcmread`` it,
unzip_mri's floor), ``process_volume`` without and with the picture, and the picture's cost as a ratio to the floor
(issue 15's goal: at most 0.05).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import zipfile
from pathlib import Path

import pydicom

from ukbb_pipeline.runtime.inputs import parse_input
from ukbb_pipeline.stages.extract_slices import SlabSettings, process_volume


def floor(zip_path: Path) -> None:
    with zipfile.ZipFile(zip_path) as archive:
        for name in archive.namelist():
            if name.endswith(".dcm"):
                pydicom.dcmread(io.BytesIO(archive.read(name)))


def best(function, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    volumes = sorted((args.root / "mris-processed").glob("*.h5"))
    settings = SlabSettings(n_neighbours=5, spacing=2, profile_stride=None)
    with tempfile.TemporaryDirectory() as scratch:
        qc = Path(scratch) / "qc"
        rows = []
        for volume in volumes:
            item = parse_input(volume)
            zip_path = args.root / "raw" / "mris" / f"{item.stem}.zip"
            floor_s = best(lambda zip_path=zip_path: floor(zip_path), args.rounds)
            plain = best(lambda item=item: process_volume(item, settings=settings), args.rounds)
            drawn = best(lambda item=item: process_volume(item, settings=settings, qc_dir=qc,
                                                          scratch_dir=Path(scratch) / "tmp"), args.rounds)
            size = next(qc.rglob(f"{item.stem}.png")).stat().st_size
            rows.append((item.stem, floor_s, plain, drawn, size))
    header = ("floor s", "slab s", "slab+pic s", "picture ms", "/floor", "PNG KB")
    print(f"{'subject':20} " + " ".join(f"{name:>10}" for name in header))
    for stem, floor_s, plain, drawn, size in rows:
        picture = drawn - plain
        print(f"{stem:20} {floor_s:10.3f} {plain:10.3f} {drawn:10.3f} {1e3 * picture:10.1f} {picture / floor_s:10.3f}"
              f" {size / 1e3:10.0f}")


if __name__ == "__main__":
    main()
