"""Stitching whole stations of a known body: odd geometries still land where the body is."""

from __future__ import annotations

import dataclasses

import numpy as np
from mri_fakes import body, small_layout, station_series, truth_on_grid

from ukbb_pipeline.mri.assemble import stitch_stations
from ukbb_pipeline.mri.parameters import StitchParameters
from ukbb_pipeline.mri.stations import group_stations


def _stitch(series, **settings):
    stations = group_stations(series, required=["F", "W"], allow_missing=True).stations
    return stitch_stations(stations, channels=["F", "W"], params=StitchParameters(**{"dtype": "float32", **settings}))


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


def test_a_seam_whose_fat_water_agreement_cannot_tell_is_flagged_uncertain():
    series = [s for station in small_layout() for s in station_series(station, noise=5.0)]
    clear = _stitch(series)
    assert not clear.uncertain and clear.swapped == []
    # station 3's F and W hold the same mixture: its seams can no longer tell fat from water
    mixed = {s.number: s for s in series}
    blend = ((mixed[11].volume.astype(np.float32) + mixed[12].volume) / 2).astype(np.uint16)
    for number in (11, 12):
        mixed[number] = dataclasses.replace(mixed[number], volume=blend)
    stitched = _stitch(list(mixed.values()))
    assert stitched.uncertain
    assert any("fat/water agreement uncertain at the seam of stations 2 and 3" in note for note in stitched.notes)


def test_a_regional_swap_is_undone_exactly_there_with_fix_swaps():
    series = [s for station in small_layout() for s in station_series(station, noise=5.0)]
    by_number = {s.number: s for s in series}
    fat, water = by_number[19].volume.copy(), by_number[20].volume.copy()  # station 5
    columns = by_number[19].x0 + np.arange(fat.shape[2]) * by_number[19].sx > 0
    fat[6:18][..., columns], water[6:18][..., columns] = by_number[20].volume[6:18][..., columns], \
        by_number[19].volume[6:18][..., columns]
    by_number[19] = dataclasses.replace(by_number[19], volume=fat)
    by_number[20] = dataclasses.replace(by_number[20], volume=water)
    found = _stitch(list(by_number.values()))
    assert found.swapped == [5] and len(found.regions) == 1 and found.regions[0].startswith("5:left-half z ")
    fixed = _stitch(list(by_number.values()), fix_swaps=True)
    assert fixed.fixed
    assert _correlation_with_truth(fixed, "F")[0] > 0.995 > _correlation_with_truth(found, "F")[0]
