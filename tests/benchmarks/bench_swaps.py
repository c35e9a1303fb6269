"""Fat/water swap detection on generated subjects: the false-flag rate on normal subjects (goal 0) and the detection
rate on regional swaps of several sizes, sides and stations (issue 13). Run by hand, not in CI:

    PYTHONPATH=. python tests/benchmarks/bench_swaps.py [--normals 50] [--size small]

Normal subjects have varied anatomy (random phantoms), orientation conventions and position jitter, half with noisy
slab edges. A swap counts as detected when its station is in ``swapped_stations``; a normal subject is falsely
flagged when ``swapped_stations`` is not empty.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ukbb_pipeline.runtime.inputs import parse_input
from ukbb_pipeline.stages.unzip_mri import process_mri_zip
from ukbb_pipeline.synthetic import MriQuirks, Phantom, write_mri_zip

SWAPS = [  # (station, side, top fraction, bottom fraction)
    (5, "left", 0.0, 1.0), (5, "right", 0.0, 1.0), (6, "left", 0.0, 1.0), (6, "right", 0.0, 0.5),
    (3, "both", 0.3, 0.7), (2, "both", 0.5, 1.0), (4, "left", 0.0, 0.5), (1, "both", 0.0, 0.4),
    (5, "both", 0.6, 1.0), (3, "right", 0.2, 0.6),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--normals", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2, help="subjects per regional swap")
    parser.add_argument("--size", default="small")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_swaps_"))
    started = time.perf_counter()
    flagged = []
    for seed in range(args.normals):
        rng = np.random.default_rng(seed)
        quirks = MriQuirks.varied(rng, slab_edge_loss=bool(seed % 2))
        output = _run(folder, 2_000_000 + seed, seed, quirks, args.size)
        if output.attrs["swapped_stations"]:
            flagged.append((seed, output.attrs["swapped_regions"]))
    print(f"normal subjects: {len(flagged)}/{args.normals} falsely flagged ({len(flagged) / args.normals:.1%})")
    for seed, regions in flagged:
        print(f"  seed {seed}: {regions}")
    found = 0
    total = 0
    for index, swap in enumerate(SWAPS):
        for repeat in range(args.repeats):
            seed = 1000 + 10 * index + repeat
            quirks = MriQuirks.varied(np.random.default_rng(seed), swapped_region=swap)
            output = _run(folder, 3_000_000 + seed, seed, quirks, args.size)
            hit = swap[0] in output.attrs["swapped_stations"]
            extra = set(output.attrs["swapped_stations"]) - {swap[0]}
            found += hit
            total += 1
            print(f"  swap {swap} seed {seed}: {'found' if hit else 'MISSED'} {output.attrs['swapped_regions']}"
                  f"{' extra ' + str(sorted(extra)) if extra else ''}")
    print(f"regional swaps: {found}/{total} detected ({found / total:.1%})")
    print(f"({time.perf_counter() - started:.0f} s, size {args.size})")


def _run(folder: Path, eid: int, seed: int, quirks: MriQuirks, size: str):
    path = folder / f"{eid}_20201_2_0.zip"
    write_mri_zip(path, eid=eid, phantom=Phantom.random(seed), quirks=quirks, seed=seed, size=size)
    output = process_mri_zip(parse_input(path))
    path.unlink()
    return output


if __name__ == "__main__":
    main()
