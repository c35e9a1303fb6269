"""The spine tracker and the curved slab, checked against the phantom's spine (its curve is known exactly)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.slices.curved import curved_rows
from ukbb_pipeline.slices.spine import track_spine, viterbi_path
from ukbb_pipeline.synthetic import Phantom, sample_truth
from ukbb_pipeline.synthetic.truth import output_axes

PIXEL = 2.232142925262451 * 2  # half the full resolution: the tracker's figures hold there too (benchmark: full)
GRID = {"origin": (-250.0 + PIXEL / 2, -43.5 * PIXEL, 645.25 - 4.0), "spacing": (PIXEL, PIXEL, 8.0),
        "shape": (112, 88, 138)}


def volume(phantom: Phantom, *, seed: int, water_factor: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Fat and water with the table and magnitude noise, as unzip_mri writes them (float32)."""
    rng = np.random.default_rng(seed)
    out = []
    for channel, factor in (("fat", 1.0), ("water", water_factor)):
        clean = sample_truth(phantom, **GRID, channel=channel, include_bed=True) * np.float32(factor)
        noise = rng.normal(0, 6.0, (2, *clean.shape)).astype(np.float32)
        out.append(np.hypot(clean + noise[0], noise[1]))
    return out[0], out[1]


def truth(phantom: Phantom) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The spine's true row and column per z (float indices), and which z are the trunk's (L5 to C7)."""
    xs, ys, zs = output_axes(**GRID)
    x, y = phantom.spine_centre(zs)
    low, high = phantom.trunk_spine_z()
    return (y - ys[0]) / PIXEL, (x - xs[0]) / PIXEL, (zs >= low) & (zs <= high)


SPINES = {  # a straight-ish spine, a strong lordosis with a C scoliosis, a flat back with an S scoliosis
    "mild": {"lordosis": 8.0, "kyphosis": 5.0, "cervical_lordosis": 2.0},
    "curved": {"lordosis": 30.0, "kyphosis": 20.0, "cervical_lordosis": 15.0, "scoliosis": 18.0},
    "s-shaped": {"lordosis": 12.0, "kyphosis": 8.0, "scoliosis": -8.0, "scoliosis_s": 10.0, "fat_scale": 1.8,
                 "spine_depth": 50.0},
}


@pytest.mark.parametrize(("name", "seed"), [("mild", 1), ("curved", 2), ("s-shaped", 3)])
def test_the_tracked_row_and_column_follow_the_phantoms_spine_within_a_voxel(name, seed):
    phantom = dataclasses.replace(Phantom.random(seed), **SPINES[name])
    fat, water = volume(phantom, seed=seed)
    track = track_spine(fat, water, spacing=GRID["spacing"])
    rows, columns, trunk = truth(phantom)
    assert track.failed is None
    assert track.tracked[trunk].all()
    assert np.median(np.abs(track.rows - rows)[trunk]) <= 1.0
    assert np.percentile(np.abs(track.rows - rows)[trunk], 90) <= 2.0
    assert np.median(np.abs(track.columns - columns)[trunk]) <= 1.0
    assert np.ptp(rows[trunk]) > 3  # the curve is not flat: a flat slab would miss it


def test_a_curved_spine_moves_several_voxels_that_a_flat_slab_at_the_median_row_would_miss():
    phantom = dataclasses.replace(Phantom.random(2), **SPINES["curved"])
    rows, _, trunk = truth(phantom)
    track = track_spine(*volume(phantom, seed=2), spacing=GRID["spacing"])
    flat_error = np.abs(track.median_row - rows[trunk])
    curved_error = np.abs(track.rows - rows)[trunk]
    assert flat_error.max() >= 4 > np.percentile(curved_error, 95)


def test_no_marrow_anywhere_fails_the_track_with_a_reason_instead_of_a_wrong_curve():
    phantom = Phantom.random(4)
    fat, water = volume(phantom, seed=4, water_factor=0.02)  # no water: every voxel reads as pure fat
    track = track_spine(fat, water, spacing=GRID["spacing"])
    assert track.failed is not None
    assert track.notes == [f"spine not tracked: {track.failed}"]
    assert not track.tracked.any()


def test_below_the_trunk_the_curve_is_held_flat_and_a_note_says_where():
    phantom = Phantom.random(5)
    track = track_spine(*volume(phantom, seed=5), spacing=GRID["spacing"])
    last = int(np.flatnonzero(track.tracked)[-1])
    assert last < GRID["shape"][2] - 1
    np.testing.assert_array_equal(track.rows[last:], track.rows[last])
    assert any(f"down to z index {last}" in note and "flat plane" in note for note in track.notes)


def test_the_chain_follows_the_best_path_through_a_level_without_evidence():
    scores = np.zeros((5, 20, 9))
    path = [4, 5, 6, 7, 8, 9, 10, 11, 12]
    for k, row in enumerate(path):
        scores[2, row, k] = 1.0
    scores[:, :, 4] = 0.0  # a disc: no evidence at all
    scores[0, 1, 4] = 0.9  # a decoy far off the path
    x, y = viterbi_path(scores, max_step=(1, 1), penalty=(0.05, 0.05))
    assert x.tolist() == [2] * 9
    assert y.tolist() == path


def test_a_curved_window_keeps_its_rows_around_each_centre_and_moves_in_at_the_edges():
    centres, rows, shifts = curved_rows(np.array([10, 12, 2, 38]), n_rows=40, n_neighbours=2, spacing=2)
    assert rows[:, 0].tolist() == [6, 8, 10, 12, 14]
    assert rows[:, 1].tolist() == [8, 10, 12, 14, 16]
    assert rows[:, 2].tolist() == [0, 2, 4, 6, 8] and shifts[2] == 2 and centres[2] == 4
    assert rows[:, 3].tolist() == [31, 33, 35, 37, 39] and shifts[3] == -3 and centres[3] == 35
    with pytest.raises(InputError, match="need 41"):
        curved_rows(np.array([10]), n_rows=40, n_neighbours=10, spacing=2)


def test_the_phantoms_spine_is_curved_like_a_spine_and_its_truth_is_where_the_marrow_is():
    phantom = dataclasses.replace(Phantom(), lordosis=25.0, kyphosis=15.0, scoliosis=12.0)
    zl = np.array([200.0, 450.0])  # L3 and T7 of the nominal body
    x, y = phantom.spine_centre(zl)
    assert y[0] < y[1] - 20  # lumbar lordosis: the low back's vertebrae lie deeper (more anterior) than the thorax's
    assert x[1] > x[0] > phantom.x_shift  # the scoliosis bends the column to the left
    heights = zl[:, None] + np.arange(-15.0, 16.0, 3.0)  # a vertebral body's height, a disc included
    lateral, depth = phantom.spine_centre(heights)
    fraction = {}
    for name, offset in (("centre", 0.0), ("canal", 21.0)):
        fat, water = phantom.signals(lateral.ravel(), (depth + offset).ravel(), heights.ravel())
        fraction[name] = (fat / (fat + water)).reshape(heights.shape)
    marrow = fraction["centre"].max(axis=1)
    assert np.all((marrow > 0.4) & (marrow < 0.7))  # marrow on the curve: intermediate fat fraction
    assert np.all(fraction["centre"].min(axis=1) < 0.3)  # and a water-rich disc at some height
    assert np.all(fraction["canal"] < 0.1)  # just posterior of the bodies: the spinal canal
