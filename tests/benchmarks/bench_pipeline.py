"""Throughput of the whole pipeline on full-size synthetic subjects (run by hand; the test command does not).

    python tests/benchmarks/bench_pipeline.py [--subjects 4] [--folder outputs/bench/pipeline] [--n-jobs 1]

Generates ``--subjects`` full-size subjects once (DXA and Dixon MRI zips, real geometry: 1,328 DICOMs per MRI zip),
then runs unzip_dxa, unzip_mri and extract_slices through ``main.py`` with default settings (QC on: every picture,
the DXA pictures, the subjects' slab figures and the contact sheets) into a fresh folder, and prints, in one run:

- the floor per subject: inflate every member of its DXA and MRI zips (``ZipFile.read``) and ``pydicom.dcmread`` it,
  once, one process (measured here, between the stages, so on the same machine state);
- each stage's seconds per subject (from its manifest: time inside the worker, process start-up excluded) and its
  wall time per subject (start-up, run-level pictures such as contact sheets included), and their ratios to the floor;
- the whole chain's ratio, subjects per hour per core, and what that means for UK Biobank's ~100,000 imaging
  participants on a cluster of a given size (``--cluster-cores``).

The machine may be shared: read the figures as ratios (``uptime`` is printed before and after).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import pydicom  # noqa: E402

from ukbb_pipeline.runtime.manifest import read_manifests  # noqa: E402
from ukbb_pipeline.synthetic import make_cohort  # noqa: E402

STAGES = ("unzip_dxa", "unzip_mri", "extract_slices")
FOLDERS = {"unzip_dxa": "dxas-processed", "unzip_mri": "mris-processed", "extract_slices": "mri-mid-corr-slices"}
UKBB_IMAGING_PARTICIPANTS = 100_000


def floor_seconds(path: Path) -> float:
    """Wall seconds to inflate every .dcm member of a zip (``ZipFile.read``) and ``pydicom.dcmread`` it, once."""
    started = time.perf_counter()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.lower().endswith(".dcm"):
                pydicom.dcmread(io.BytesIO(archive.read(info)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--folder", type=Path, default=REPO / "outputs" / "bench" / "pipeline")
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--cluster-cores", type=int, default=256)
    args = parser.parse_args()

    raw = args.folder / "raw"
    marker = raw / f".complete-{args.subjects}"
    if not marker.exists():
        started = time.perf_counter()
        make_cohort(raw, n_subjects=args.subjects, size="full", seed=7)
        marker.touch()
        print(f"generated {args.subjects} full-size subjects in {time.perf_counter() - started:.1f} s")

    print(f"load before: {os.getloadavg()[0]:.2f} (1 min)")
    zips = sorted((raw / "mris").glob("*.zip")) + sorted((raw / "dxas").glob("*.zip"))
    floors: list[float] = []
    per_subject: dict[str, float] = {}
    wall: dict[str, float] = {}
    for stage in STAGES:
        floors.append(sum(floor_seconds(path) for path in zips) / args.subjects)  # between stages: same conditions
        shutil.rmtree(args.folder / FOLDERS[stage], ignore_errors=True)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, str(REPO / "main.py"), f"stage={stage}", f"paths.root={args.folder}",
             f"n_jobs={args.n_jobs}", f"hydra.run.dir={args.folder / 'runs' / stage}"],
            check=True, capture_output=True, cwd=REPO,
        )
        wall[stage] = time.perf_counter() - started
        rows = [row for row in read_manifests(args.folder / FOLDERS[stage]) if row["status"] == "ok"]
        assert len(rows) == args.subjects, f"{stage}: {len(rows)} of {args.subjects} ok"
        per_subject[stage] = statistics.mean(float(row["seconds"]) for row in rows)
    floors.append(sum(floor_seconds(path) for path in zips) / args.subjects)
    floor = statistics.median(floors)
    pictures = sorted(p.name for p in args.folder.rglob("*.png"))
    print(f"load after: {os.getloadavg()[0]:.2f}; {len(pictures)} QC pictures written")

    total = sum(per_subject.values())
    total_wall = sum(wall.values()) / args.subjects
    print(f"\nfloor (inflate + dcmread every member of the DXA and MRI zips): {floor:.2f} s per subject "
          f"(median of {len(floors)}: {min(floors):.2f}-{max(floors):.2f})\n")
    print(f"{'stage':16}{'s/subject in worker':>21}{'/ floor':>9}{'wall s/subject':>16}{'/ floor':>9}")
    for stage in STAGES:
        print(f"{stage:16}{per_subject[stage]:21.2f}{per_subject[stage] / floor:9.2f}"
              f"{wall[stage] / args.subjects:16.2f}{wall[stage] / args.subjects / floor:9.2f}")
    print(f"{'chain':16}{total:21.2f}{total / floor:9.2f}{total_wall:16.2f}{total_wall / floor:9.2f}")
    print("(wall includes each stage's process start-up and run-level pictures, e.g. contact sheets, shared by "
          f"{args.subjects} subjects)")
    per_hour_per_core = 3600 / total
    print(f"\nthroughput: {per_hour_per_core:.0f} subjects per hour per core (n_jobs={args.n_jobs}, in worker)")
    hours = UKBB_IMAGING_PARTICIPANTS / (per_hour_per_core * args.cluster_cores)
    print(f"{UKBB_IMAGING_PARTICIPANTS:,} subjects on {args.cluster_cores} cores: about {hours:.1f} hours "
          f"({UKBB_IMAGING_PARTICIPANTS * total / 3600:.0f} core-hours)")


if __name__ == "__main__":
    main()
