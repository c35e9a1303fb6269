"""The spine tracker against the phantom's spine on many random subjects (issue 21): the distribution of the row
error (voxels) over the trunk (L5 to C7), the lateral error, and how often tracking fails. Run by hand, not in CI:

    PYTHONPATH=. python tests/benchmarks/bench_spine.py [--subjects 40] [--pixel 2.232] [--z-spacing 3.0]

Each subject is a random phantom (body size, depth, fat, position, and spine: lordosis, kyphosis, cervical lordosis,
C and S scoliosis, depth under the back's fat), sampled with the table on unzip_mri's full-size grid (224 columns,
2.23 mm pixels, neck to knee) with magnitude noise. The truth is the phantom's vertebral-body centre per z.
The weighted-median row (the default method) is reported beside it, as the distance of its flat slab from the spine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ukbb_pipeline.slices.midcoronal import estimate_centre
from ukbb_pipeline.slices.spine import track_spine
from ukbb_pipeline.synthetic import Phantom, sample_truth
from ukbb_pipeline.synthetic.truth import output_axes

STACK_TOP, STACK_HEIGHT = 645.25, 1110.0


def grid(pixel: float, z_spacing: float) -> dict:
    shape = (round(500 / pixel), round(390 / pixel), int(STACK_HEIGHT // z_spacing))
    return {"origin": (-250.0 + pixel / 2, -(shape[1] - 1) / 2 * pixel, STACK_TOP - z_spacing / 2),
            "spacing": (pixel, pixel, z_spacing), "shape": shape}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--pixel", type=float, default=2.232142925262451)
    parser.add_argument("--z-spacing", type=float, default=3.0)
    args = parser.parse_args()
    g = grid(args.pixel, args.z_spacing)
    xs, ys, zs = output_axes(**g)
    errors, lateral, medians, flat, failed, seconds = [], [], [], [], [], []
    for seed in range(args.subjects):
        phantom = Phantom.random(10_000 + seed)
        rng = np.random.default_rng(seed)
        channels = []
        for name in ("fat", "water"):
            clean = sample_truth(phantom, **g, channel=name, include_bed=True)
            noise = rng.normal(0, 6.0, (2, *clean.shape)).astype(np.float32)
            channels.append(np.rint(np.hypot(clean + noise[0], noise[1])).astype(np.uint16))
        started = time.perf_counter()
        track = track_spine(channels[0], channels[1], spacing=g["spacing"])
        seconds.append(time.perf_counter() - started)
        x, y = phantom.spine_centre(zs)
        low, high = phantom.trunk_spine_z()
        trunk = (zs >= low) & (zs <= high)
        rows, columns = (y - ys[0]) / args.pixel, (x - xs[0]) / args.pixel
        median_row = estimate_centre(lambda r, fat=channels[0]: fat[:, r, :], n_rows=g["shape"][1]).centre
        flat.append(float(np.median(np.abs(median_row - rows[trunk]))))
        if track.failed:
            failed.append((seed, track.failed))
            continue
        error = np.abs(track.rows - rows)[trunk]
        errors.append(error)
        lateral.append(np.abs(track.columns - columns)[trunk])
        medians.append(float(np.median(error)))
        untracked = float(1 - track.tracked[trunk].mean())
        print(f"subject {seed:3d}: median {medians[-1]:.2f} p90 {np.percentile(error, 90):.2f} max {error.max():.2f} "
              f"rows; lateral median {np.median(lateral[-1]):.2f}; trunk untracked {untracked:.0%}; "
              f"weighted-median row {flat[-1]:.1f} rows off the spine ({seconds[-1]:.1f} s)")
    every = np.concatenate(errors) if errors else np.zeros(0)
    print(f"\n{args.subjects} subjects, pixel {args.pixel:.3f} mm, z {args.z_spacing} mm; failed: {len(failed)} "
          f"{failed if failed else ''}")
    if every.size:
        print("row error over the trunk, all levels (voxels): median {:.2f}, p75 {:.2f}, p90 {:.2f}, p99 {:.2f}, "
              "max {:.2f}".format(*np.percentile(every, [50, 75, 90, 99, 100])))
        within = sum(m <= 1 for m in medians)
        print(f"per-subject median row error (voxels): median {np.median(medians):.2f}, max {max(medians):.2f}; "
              f"subjects <= 1 voxel: {within}/{len(medians)}")
        print("lateral error (columns): median {:.2f}, p90 {:.2f}".format(*np.percentile(np.concatenate(lateral),
                                                                                          [50, 90])))
    print(f"weighted-median row's distance from the spine (voxels, per-subject median): median {np.median(flat):.1f}, "
          f"range {min(flat):.1f}-{max(flat):.1f}")
    print(f"tracking time per subject: median {np.median(seconds):.1f} s")


if __name__ == "__main__":
    main()
