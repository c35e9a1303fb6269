"""The mid-coronal centre and the slab window, checked against the phantom's truth."""

from __future__ import annotations

import numpy as np
import pytest

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.slices.midcoronal import (
    auto_in_plane_step,
    auto_profile_stride,
    estimate_centre,
    profile_rows,
    signal_levels,
    slab_window,
    table_lines,
    weighted_median_row,
)
from ukbb_pipeline.synthetic import Phantom, sample_truth
from ukbb_pipeline.synthetic.truth import output_axes

FULL_PIXEL = 2.232142925262451
STACK_TOP, STACK_HEIGHT = 645.25, 1110.0  # mm: the six stations' z extent (synthetic.stations)


def output_grid(*, size: str, z_spacing: float | None = None) -> dict:
    """unzip_mri's output grid: 224 x 174 at 2.23 mm ("full") or 56 x 44 at 8.93 mm ("small"), neck to knee."""
    factor = 1 if size == "full" else 4
    pixel = FULL_PIXEL * factor
    sz = z_spacing or pixel
    shape = (224 // factor, 174 // factor + (size == "small"), int(STACK_HEIGHT // sz))
    origin = (-250.0 + pixel / 2, -(shape[1] - 1) / 2 * pixel, STACK_TOP - sz / 2)
    return {"origin": origin, "spacing": (pixel, pixel, sz), "shape": shape}


def truth_row(phantom: Phantom, grid: dict) -> int:
    """The phantom's mid-coronal row on the grid: the original rule on the noise-free body alone (no table)."""
    xs, ys, zs = output_axes(**grid)
    return phantom.mid_coronal_index(ys=ys, x=xs, z=zs)


def magnitude(clean: np.ndarray, *, sigma: float, seed: int) -> np.ndarray:
    """A magnitude image as a scanner stores it: Gaussian noise on the signal, absolute value, uint16."""
    if sigma == 0:
        return np.rint(clean).astype(np.uint16)
    noise = np.random.default_rng(seed).standard_normal(clean.shape, dtype=np.float32) * np.float32(sigma)
    return np.rint(np.abs(clean + noise)).astype(np.uint16)


def centre_of(volume: np.ndarray, *, spacing: tuple[float, float, float], stride: int | None = None) -> int:
    return estimate_centre(
        lambda rows: volume[:, rows, :],
        n_rows=volume.shape[1],
        stride=stride or auto_profile_stride(spacing[1]),
        in_plane_step=auto_in_plane_step(spacing[0], spacing[2]),
    ).centre


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("with_table", [False, True], ids=["body", "body+table"])
def test_centre_is_within_one_row_of_the_phantom_truth_small(seed, with_table):
    phantom = Phantom.random(seed)
    grid = output_grid(size="small")
    fat = magnitude(sample_truth(phantom, **grid, include_bed=with_table), sigma=6.0, seed=seed)
    assert abs(centre_of(fat, spacing=grid["spacing"]) - truth_row(phantom, grid)) <= 1


@pytest.mark.parametrize("seed", [11, 12])
def test_centre_is_within_one_row_of_the_truth_on_the_real_row_spacing(seed):
    """2.23 mm rows, as real stitched volumes have: the profile is measured on every 6th row plus a few near the
    centre, which is what keeps HDF5 reads cheap (z is coarse here only to keep the test fast)."""
    phantom = Phantom.random(seed)
    grid = output_grid(size="full", z_spacing=12.0)
    fat = magnitude(sample_truth(phantom, **grid, include_bed=True), sigma=6.0, seed=seed)
    assert auto_profile_stride(grid["spacing"][1]) == 6
    assert abs(centre_of(fat, spacing=grid["spacing"]) - truth_row(phantom, grid)) <= 1


def test_the_table_would_pull_a_plain_weighted_median_but_not_the_estimate():
    """Summing all fat, as the original script did, lets the table move the centre ~10 mm posterior."""
    phantom = Phantom.random(3)
    grid = output_grid(size="full", z_spacing=24.0)
    fat = magnitude(sample_truth(phantom, **grid, include_bed=True), sigma=6.0, seed=3)
    every_row = np.arange(fat.shape[1])
    plain = weighted_median_row(fat.sum(axis=(0, 2), dtype=np.float64), rows=every_row, n_rows=fat.shape[1])
    truth = truth_row(phantom, grid)
    assert plain - truth >= 3
    assert abs(centre_of(fat, spacing=grid["spacing"]) - truth) <= 1


def test_station_gains_and_strong_noise_keep_the_centre_within_a_row():
    """Each station scaled by its own gain steps the table's signal along z; strong noise fills the air."""
    phantom = Phantom.random(5)
    grid = output_grid(size="small")
    clean = sample_truth(phantom, **grid, include_bed=True)
    gains = np.repeat([0.8, 1.25, 1.0, 0.9, 1.2, 0.85], -(-clean.shape[2] // 6))[: clean.shape[2]]
    fat = magnitude(clean * gains.astype(np.float32), sigma=25.0, seed=5)
    assert abs(centre_of(fat, spacing=grid["spacing"]) - truth_row(phantom, grid)) <= 1


def test_a_missing_station_padded_with_zeros_does_not_hide_the_table():
    phantom = Phantom.random(4)
    grid = output_grid(size="small")
    fat = magnitude(sample_truth(phantom, **grid, include_bed=True), sigma=6.0, seed=4)
    n_z = fat.shape[2]
    fat[:, :, n_z // 3 : n_z // 3 + n_z // 6] = 0
    assert abs(centre_of(fat, spacing=grid["spacing"]) - truth_row(phantom, grid)) <= 1


def test_table_lines_are_the_table_rows_and_not_the_body():
    phantom = Phantom.random(1)
    grid = output_grid(size="small")
    fat = magnitude(sample_truth(phantom, **grid, include_bed=True), sigma=6.0, seed=1).astype(np.float32)
    body = sample_truth(phantom, **grid)
    table = fat - body
    levels = signal_levels(fat)
    lines = table_lines(fat, threshold=levels.threshold)[..., 0]
    solid_table = np.median(table, axis=2) > 0.8 * table.max()
    assert lines[solid_table].mean() > 0.9
    table_rows = np.flatnonzero(np.median(table, axis=2).max(axis=0) > levels.threshold)
    body_rows = np.flatnonzero(body.max(axis=(0, 2)) > levels.threshold)
    only_body = np.setdiff1d(body_rows, table_rows)
    assert only_body.size > 20
    assert not lines[:, only_body].any()


def test_noise_estimate_follows_the_noise_added():
    phantom = Phantom.random(2)
    grid = output_grid(size="small")
    clean = sample_truth(phantom, **grid, include_bed=True)
    for sigma in (6.0, 20.0):
        levels = signal_levels(magnitude(clean, sigma=sigma, seed=2))
        assert 0.6 * sigma < levels.noise_sigma < 1.4 * sigma
        assert levels.threshold >= 5 * levels.noise_sigma


def test_a_volume_of_zeros_is_an_input_error():
    with pytest.raises(InputError, match="no signal"):
        signal_levels(np.zeros((8, 6, 10), np.uint16))


@pytest.mark.parametrize("with_table", [False, True], ids=["noise", "noise+table"])
def test_a_volume_without_a_body_is_an_input_error(with_table):
    grid = output_grid(size="small")
    clean = np.zeros(grid["shape"], np.float32)
    if with_table:
        clean = sample_truth(Phantom.random(0), **grid, include_bed=True) - sample_truth(Phantom.random(0), **grid)
    fat = magnitude(clean, sigma=6.0, seed=0)
    with pytest.raises(InputError, match="no body"):
        centre_of(fat, spacing=grid["spacing"])


def test_a_profile_without_signal_is_an_input_error():
    with pytest.raises(InputError, match="no body"):
        weighted_median_row(np.zeros(12), rows=np.arange(12), n_rows=12)


def test_weighted_median_is_the_row_where_the_cumulative_profile_reaches_half():
    profile = np.array([0, 0, 1, 1, 1, 1, 6, 0, 0, 0], dtype=float)  # total 10: half is reached at row 5
    assert weighted_median_row(profile, rows=np.arange(10), n_rows=10) == 5
    linear = np.linspace(0.0, 1.0, 41)  # a linear ramp measured on every 8th row interpolates exactly
    sparse = profile_rows(41, stride=8)
    assert weighted_median_row(linear[sparse], rows=sparse, n_rows=41) == weighted_median_row(
        linear, rows=np.arange(41), n_rows=41
    )


def test_profile_rows_reach_both_ends():
    assert profile_rows(20, stride=6).tolist() == [0, 6, 12, 18, 19]
    assert profile_rows(19, stride=6).tolist() == [0, 6, 12, 18]
    assert profile_rows(5, stride=1).tolist() == [0, 1, 2, 3, 4]


def test_the_centre_is_found_from_a_fraction_of_the_rows():
    """On 2.23 mm rows only ~1/6 of the rows, plus a few near the centre, are read."""
    phantom = Phantom.random(0)
    grid = output_grid(size="full", z_spacing=24.0)
    fat = magnitude(sample_truth(phantom, **grid, include_bed=True), sigma=6.0, seed=0)
    read: set[int] = set()

    def reader(rows: np.ndarray) -> np.ndarray:
        read.update(int(row) for row in rows)
        return fat[:, rows, :]

    estimate = estimate_centre(reader, n_rows=fat.shape[1], stride=6)
    assert len(read) <= fat.shape[1] // 6 + 6
    assert set(estimate.rows.tolist()) == read
    assert abs(estimate.centre - truth_row(phantom, grid)) <= 1


def test_window_is_centred_when_it_fits():
    window = slab_window(40, n_rows=100, n_neighbours=5, spacing=2)
    assert window.rows.tolist() == list(range(30, 51, 2))
    assert window.shift == 0
    assert window.centre == 40


@pytest.mark.parametrize(
    ("centre", "first", "shift"),
    [(3, 0, 7), (0, 0, 10), (97, 79, -8), (99, 79, -10)],
    ids=["near-row-0", "at-row-0", "near-last-row", "at-last-row"],
)
def test_window_moves_inward_at_both_edges(centre, first, shift):
    window = slab_window(centre, n_rows=100, n_neighbours=5, spacing=2)
    assert window.rows.tolist() == list(range(first, first + 21, 2))
    assert window.shift == shift
    assert window.centre == centre  # the chosen row, before the shift
    assert window.rows[0] == centre - 10 + shift


def test_three_neighbours_spacing_one_gives_seven_adjacent_rows():
    assert slab_window(20, n_rows=50, n_neighbours=3, spacing=1).rows.tolist() == list(range(17, 24))


def test_a_window_wider_than_the_volume_is_an_input_error():
    with pytest.raises(InputError, match="20 coronal rows"):
        slab_window(10, n_rows=20, n_neighbours=5, spacing=2)
    assert slab_window(10, n_rows=21, n_neighbours=5, spacing=2).rows.tolist() == list(range(0, 21, 2))
