"""Stitching whole stations of a known body: odd geometries still land where the body is."""

from __future__ import annotations

import dataclasses

import numpy as np
from mri_fakes import body, small_layout, station_series, truth_on_grid

from ukbb_pipeline.mri.assemble import stitch_stations
from ukbb_pipeline.mri.stations import group_stations


def _stitch(series, **settings):
    stations = group_stations(series, required=["F", "W"], allow_missing=True).stations
    return stitch_stations(stations, channels=["F", "W"], **{"dtype": "float32", **settings})


def _correlation_with_truth(stitched, channel="F"):
    volume = stitched.volumes[channel]  # (x, y, z) float32
    grid = stitched.grid
    fat, water = truth_on_grid(grid.origin, grid.spacing, grid.shape)
    expected = fat if channel == "F" else water
    inside = (fat + water) > 300
    return float(np.corrcoef(volume[inside], expected[inside])[0, 1]), volume


def test_water_on_another_pixel_grid_is_resampled_in_plane():
    layout = small_layout()
    series = []
    for station in layout:
        channels = station_series(station, noise=3.0, seed=station.number)
        if station.number == 3:  # W of station 3 on a finer grid, shifted by a fraction of a pixel
            finer = dataclasses.replace(station, spacing=station.spacing * 0.8)
            finer_x0, finer_y0 = finer.x0 + 2.1, finer.y0 + 1.3
            x = finer_x0 + np.arange(70) * finer.spacing
            y = finer_y0 + np.arange(54) * finer.spacing
            _, water = body(x[None, None, :], y[None, :, None], np.asarray(station.z)[:, None, None])
            w = next(s for s in channels if s.channel == "W")
            channels[channels.index(w)] = dataclasses.replace(
                w, volume=np.rint(water).astype(np.uint16), x0=finer_x0, y0=finer_y0, sx=finer.spacing,
                sy=finer.spacing)
        series.extend(channels)
    stitched = _stitch(series)
    assert any("pixel spacing differs" in note for note in stitched.notes)
    assert stitched.swapped == []
    correlation, _ = _correlation_with_truth(stitched, "W")
    assert correlation > 0.995


def test_a_missing_middle_station_leaves_an_empty_gap_and_the_rest_in_place():
    series = [s for station in small_layout() if station.number != 3 for s in station_series(station, noise=3.0)]
    stitched = _stitch(series)
    assert stitched.stations == [1, 2, 4, 5, 6]
    assert any("gap of" in note and "stations 2 and 4" in note for note in stitched.notes)
    _, volume = _correlation_with_truth(stitched)
    z = stitched.grid.z
    layout = small_layout()
    station3_only = (z < layout[1].z[-1] - 10) & (z > layout[3].z[0] + 10)
    assert station3_only.any()
    assert np.all(volume[:, :, station3_only] == 0)
    imaged = (z >= layout[1].z[-1]) | (z <= layout[3].z[0])  # the stations that are there are where they belong
    fat, water = truth_on_grid(stitched.grid.origin, stitched.grid.spacing, stitched.grid.shape)
    inside = ((fat + water) > 300) & imaged[None, None, :]
    assert np.corrcoef(volume[inside], fat[inside])[0, 1] > 0.995
    assert len(stitched.seams) == 3  # 1|2, 4|5, 5|6


def test_a_single_station_is_stitched_alone_and_checked_by_its_pattern():
    station = small_layout()[2]
    stitched = _stitch(station_series(station, noise=3.0, swapped=True))
    assert stitched.stations == [3]  # its series numbers (9-12) say which station it is
    assert stitched.swapped == [3]
    assert stitched.seams == []
