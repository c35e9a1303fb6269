"""One positional tolerance: a fraction of a voxel, so that micrometres of DS text never matter."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from mri_fakes import small_layout, station_series

from ukbb_pipeline.mri.assemble import _shared_slices
from ukbb_pipeline.mri.tolerance import same_positions, tolerance


def test_the_tolerance_is_a_fraction_of_the_voxel_step():
    assert tolerance(3.0) == pytest.approx(0.15) and tolerance(13.2) > tolerance(3.0)
    z = np.array([10.0, 7.0, 4.0])
    assert same_positions(z + 0.002, z, step=3.0).all()
    assert not same_positions(z + 1.5, z, step=3.0).any()


def test_fat_and_water_micrometres_apart_still_share_their_slices():
    series = station_series(small_layout()[4])
    fat, water = series[2], series[3]
    jittered = dataclasses.replace(water, z=water.z + 0.002, x0=water.x0 - 0.003, y0=water.y0 + 0.001)
    volumes = _shared_slices([fat, jittered])
    assert volumes is not None and volumes[0].shape == fat.volume.shape
