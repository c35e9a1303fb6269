"""Throughput of the whole pipeline on full-size synthetic subjects (run by hand; the test command does not).

    python tests/benchmarks/bench_pipeline.py [--subjects 4] [--folder outputs/bench/pipeline] [--n-jobs 1]

Generates ``--subjects`` full-size subjects once (DXA and Dixon MRI zips, real geometry: 1,328 DICOMs per MRI zip),
then runs unzip_dxa, unzip_mri and extract_slices through ``main.py`` with default settings into a fresh folder,
and prints each stage's wall seconds per subject (from its manifest: time inside the workers, process start-up
excluded), the whole pipeline's subjects per hour per core, and what that means for UK Biobank's ~100,000 imaging
participants on a cluster of a given size (``--cluster-cores``). The machine may be shared: read the figures as
estimates, CPU-bound, file system not included.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from ukbb_pipeline.runtime.manifest import read_manifests  # noqa: E402
from ukbb_pipeline.synthetic import make_cohort  # noqa: E402

STAGES = ("unzip_dxa", "unzip_mri", "extract_slices")
FOLDERS = {"unzip_dxa": "dxas-processed", "unzip_mri": "mris-processed", "extract_slices": "mri-mid-corr-slices"}
UKBB_IMAGING_PARTICIPANTS = 100_000


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

    per_subject: dict[str, float] = {}
    wall: dict[str, float] = {}
    for stage in STAGES:
        shutil.rmtree(args.folder / FOLDERS[stage], ignore_errors=True)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, str(REPO / "main.py"), f"stage={stage}", f"paths.root={args.folder}",
             f"n_jobs={args.n_jobs}", "qc=false", f"hydra.run.dir={args.folder / 'runs' / stage}"],
            check=True, capture_output=True, cwd=REPO,
        )
        wall[stage] = time.perf_counter() - started
        rows = [row for row in read_manifests(args.folder / FOLDERS[stage]) if row["status"] == "ok"]
        assert len(rows) == args.subjects, f"{stage}: {len(rows)} of {args.subjects} ok"
        per_subject[stage] = statistics.median(float(row["seconds"]) for row in rows)

    total = sum(per_subject.values())
    per_hour_per_core = 3600 / total
    print(f"\n{'stage':16} {'s/subject (median, in worker)':>30} {'stage wall s (incl. start-up)':>31}")
    for stage in STAGES:
        print(f"{stage:16} {per_subject[stage]:30.2f} {wall[stage]:31.1f}")
    print(f"{'pipeline':16} {total:30.2f}")
    print(f"\nthroughput: {per_hour_per_core:.0f} subjects per hour per core (n_jobs={args.n_jobs})")
    hours = UKBB_IMAGING_PARTICIPANTS / (per_hour_per_core * args.cluster_cores)
    print(f"{UKBB_IMAGING_PARTICIPANTS:,} subjects on {args.cluster_cores} cores: about {hours:.1f} hours "
          f"({UKBB_IMAGING_PARTICIPANTS * total / 3600:.0f} core-hours)")


if __name__ == "__main__":
    main()
