"""Fat/water swaps of shapes drawn independently of the detector (issue 21), and false flags on normal subjects.
Run by hand, not in CI:

    PYTHONPATH=. python tests/benchmarks/bench_swaps.py [--normals 50] [--size full] [--swaps-per-subject 2]

Each subject is a random phantom acquired as the generator acquires it (six stations on UK Biobank's grid, table,
station gains 0.8-1.25, magnitude noise; half with noisy slab edges) and read as Series, as the reader hands them on.
Normal subjects: a flag is any swapped station or uncertain fat/water. Swapped subjects: the same stations with one
shape from ``synthetic/swap_shapes.py`` (blobs, lateral strips of 10-30 % of the width, one arm, irregular patches;
stations 1-6) exchanged in F and W; the shape generator knows nothing of the detector. Per shape:

- detected: the station is in ``swapped_stations`` and one of its regions overlaps the shape;
- fixed share: of the shape's body voxels (the phantom's body, not the table), those the detector's regions mark
  (and ``fix_swaps`` exchanges back);
- spoiled share: of the station's other body voxels, those marked (a fix would spoil them).

The fat-fraction step at seams (issue 21.3) is measured on the normal subjects: at each seam, the median fat fraction
20-40 mm above the overlap minus 20-40 mm below it, against the truth's same difference, for the output (one gain per
station) and for the former per-channel scales (the same output with F and W of each station rescaled by the ratio of
its two per-channel scales, which the seams' per-channel ratios give).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ukbb_pipeline.mri import assemble
from ukbb_pipeline.mri.assemble import stitch_stations
from ukbb_pipeline.mri.harmonise import chain_scales
from ukbb_pipeline.mri.parameters import StitchParameters
from ukbb_pipeline.mri.series import Series
from ukbb_pipeline.mri.stations import Station, group_stations
from ukbb_pipeline.synthetic import Phantom, acquisition
from ukbb_pipeline.synthetic.stations import station_geometries
from ukbb_pipeline.synthetic.swap_shapes import KINDS, draw_shape
from ukbb_pipeline.synthetic.truth import output_axes

FLOAT = StitchParameters(dtype="float32")
PREFIX = {1: "Dixon_noBH", 2: "Dixon_BH_17s", 3: "Dixon_BH_17s", 4: "Dixon_BH_17s", 5: "Dixon_noBH", 6: "Dixon_noBH"}


def acquire(phantom: Phantom, *, size: str, seed: int, edges: bool) -> list[Station]:
    rng = np.random.default_rng([seed, 77])
    gains = rng.uniform(0.8, 1.25, 6)
    series = []
    for geometry in station_geometries(size):
        factors = acquisition.edge_factors(geometry, rng=rng) if edges else None
        clean = acquisition.clean_channels(phantom, geometry, gain=float(gains[geometry.station - 1]), factors=factors)
        images = acquisition.acquire(clean, noise_sigma=6.0, factors=factors, corrupted=False, rng=rng)
        for offset, channel in enumerate(("F", "W")):
            series.append(Series(uid=f"{geometry.station}-{channel}", number=4 * geometry.station + offset,
                                 description=f"{PREFIX[geometry.station]}_{channel}", channel=channel,
                                 acquired="20200101120000", volume=images[channel], z=np.asarray(geometry.zs),
                                 x0=float(geometry.xs[0]), y0=float(geometry.ys[0]), sx=geometry.pixel_spacing,
                                 sy=geometry.pixel_spacing))
    return group_stations(series, required=["F", "W"]).stations


def with_swap(stations: list[Station], number: int, mask_of) -> tuple[list[Station], np.ndarray]:
    out = []
    mask = None
    for station in stations:
        if station.number != number:
            out.append(station)
            continue
        fat, water = station.channels["F"], station.channels["W"]
        x = fat.x0 + np.arange(fat.volume.shape[2]) * fat.sx
        y = fat.y0 + np.arange(fat.volume.shape[1]) * fat.sy
        mask = mask_of(x[None, None, :], y[None, :, None], fat.z[:, None, None])
        channels = {"F": fat.replace_volume(np.where(mask, water.volume, fat.volume), fat.z),
                    "W": water.replace_volume(np.where(mask, fat.volume, water.volume), water.z)}
        out.append(Station(number=number, channels=channels, notes=[]))
    assert mask is not None
    return out, mask


def marked(station: Station, index: int) -> np.ndarray:
    """The voxels (full resolution) the detector's regions of ``station`` mark."""
    fat = station.channels["F"]
    out = np.zeros(fat.volume.shape, dtype=bool)
    for region in assemble._regions(station, index):
        for k in range(fat.z.size):
            plane = region.slice_mask(float(fat.z[k]), fat.volume.shape[1:], z_step=fat.z_step)
            if plane is not None and region.certain:
                out[k] |= plane
    return out


def seam_steps(stitched, phantom: Phantom) -> list[tuple[float, float]]:
    """Per seam: (output step error, former per-channel scaling's step error) of the fat fraction."""
    grid = stitched.grid
    fat, water = (stitched.volumes[c].astype(np.float64) for c in ("F", "W"))
    xs, ys, zs = output_axes(origin=grid.origin, spacing=grid.spacing, shape=fat.shape)
    ratios = {c: {(i, i + 1): (np.log(1 / s.ratio[c]) if np.isfinite(s.ratio.get(c, np.nan)) else None)
                  for i, s in enumerate(stitched.seams)} for c in ("F", "W")}
    per_channel = {c: chain_scales(len(stitched.stations), ratios[c]) for c in ("F", "W")}
    out = []
    for i, seam in enumerate(stitched.seams):
        rows = []
        for sign in (1, -1):
            band = (sign * (zs - seam.z_mm) > 20 + abs(seam.overlap_mm) / 2) & \
                   (sign * (zs - seam.z_mm) < 40 + abs(seam.overlap_mm) / 2)
            station = i if sign > 0 else i + 1
            f, w = fat[:, :, band], water[:, :, band]
            ratio = per_channel["F"][station] / per_channel["W"][station]
            tf, tw = phantom.grid(xs=xs, ys=ys, zs=zs[band])
            tf, tw = tf.transpose(2, 1, 0), tw.transpose(2, 1, 0)
            body = (tf + tw > 300) & (f + w > 0)  # inside the body (not the table), and imaged
            rows.append((np.median(f[body] / (f[body] + w[body])),
                         np.median(f[body] * ratio / (f[body] * ratio + w[body])),
                         np.median(tf[body] / np.maximum(tf[body] + tw[body], 1e-6))))
        (now_a, old_a, true_a), (now_b, old_b, true_b) = rows
        out.append((abs((now_a - now_b) - (true_a - true_b)), abs((old_a - old_b) - (true_a - true_b))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--normals", type=int, default=50)
    parser.add_argument("--swaps-per-subject", type=int, default=2)
    parser.add_argument("--size", default="full")
    args = parser.parse_args()
    started = time.perf_counter()
    flagged, steps, results = [], [], []
    rng = np.random.default_rng(2026)
    for seed in range(args.normals):
        phantom = Phantom.random(5000 + seed)
        stations = acquire(phantom, size=args.size, seed=seed, edges=bool(seed % 2))
        stitched = stitch_stations(stations, channels=["F", "W"], params=FLOAT)
        if stitched.swapped or stitched.uncertain:
            flagged.append((seed, stitched.regions, [n for n in stitched.notes if "uncertain" in n]))
        steps += seam_steps(stitched, phantom)
        for _ in range(args.swaps_per_subject):
            kind = KINDS[len(results) % len(KINDS)]
            number = int(rng.integers(1, 7))
            station = next(s for s in stations if s.number == number)
            z = station.channels["F"].z
            shape = draw_shape(kind, phantom=phantom, station=number, z_range=(float(z.min()), float(z.max())),
                               rng=rng)
            swapped, mask = with_swap(stations, number, shape.mask)
            fat = swapped[number - 1].channels["F"]
            x = fat.x0 + np.arange(fat.volume.shape[2]) * fat.sx
            y = fat.y0 + np.arange(fat.volume.shape[1]) * fat.sy
            body = phantom.body_mask(x[None, None, :], y[None, :, None], fat.z[:, None, None])  # not the table
            if not (mask & body).sum():
                continue
            found = stitch_stations(swapped, channels=["F", "W"], params=FLOAT)
            marks = marked(swapped[number - 1], number - 1)
            hit = number in found.swapped and bool((marks & mask).any())
            fixed = float((marks & mask & body).sum() / (mask & body).sum())
            spoiled = float((marks & ~mask & body).sum() / max((~mask & body).sum(), 1))
            results.append((kind, number, shape.description, hit, fixed, spoiled, found.regions))
            print(f"  subject {seed} station {number} {shape.description}: {'found' if hit else 'MISSED'}, "
                  f"fixed {fixed:.0%}, spoiled {spoiled:.2%} {found.regions}", flush=True)
    print(f"\nnormal subjects: {len(flagged)}/{args.normals} flagged (swapped or uncertain)")
    for seed, regions, notes in flagged:
        print(f"  seed {seed}: {regions} {notes}")
    for kind in KINDS:
        rows = [r for r in results if r[0] == kind]
        if rows:
            hits = sum(r[3] for r in rows)
            print(f"{kind:10s}: detected {hits}/{len(rows)}; fixed share median {np.median([r[4] for r in rows]):.0%}"
                  f" (min {min(r[4] for r in rows):.0%}); spoiled share median {np.median([r[5] for r in rows]):.2%}"
                  f" (max {max(r[5] for r in rows):.2%})")
    hits = sum(r[3] for r in results)
    print(f"all shapes: detected {hits}/{len(results)}")
    now, old = np.array(steps).T
    print(f"fat-fraction step error at seams (|output step - true step|, {now.size} seams): one gain per station "
          f"median {np.median(now):.4f} max {now.max():.4f}; per-channel scales median {np.median(old):.4f} "
          f"max {old.max():.4f}")
    print(f"({time.perf_counter() - started:.0f} s, size {args.size})")


if __name__ == "__main__":
    main()
