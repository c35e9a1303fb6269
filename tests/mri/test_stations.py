"""Grouping series into stations: repeats keep the newest, F/W size mismatches are cropped, gaps are reasons."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from mri_fakes import small_layout, station_series

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.mri.stations import group_stations


def _all_series(layout=None, **kwargs):
    layout = layout or small_layout()
    return [series for station in layout for series in station_series(station, **kwargs)]


def test_six_stations_are_numbered_head_to_feet_whatever_the_input_order():
    series = _all_series()
    found = group_stations(series[::-1], required=["F", "W"])
    assert [station.number for station in found.stations] == [1, 2, 3, 4, 5, 6]
    tops = [station.z_top for station in found.stations]
    assert tops == sorted(tops, reverse=True)
    assert all(set(station.channels) == {"F", "W", "in", "opp"} for station in found.stations)
    assert found.notes == []


def test_a_repeated_station_keeps_the_most_recent_acquisition_and_says_so():
    series = _all_series()
    station3 = [s for s in series if s.number in (9, 10, 11, 12)]
    repeat = [
        dataclasses.replace(s, uid=s.uid + ".repeat", number=25 + i, acquired="20200101130000", volume=s.volume + 1)
        for i, s in enumerate(station3)
    ]
    found = group_stations(series + repeat, required=["F", "W"])
    assert len(found.stations) == 6
    chosen = found.stations[2].channels
    assert {channel: s.number for channel, s in chosen.items()} == {"in": 25, "opp": 26, "F": 27, "W": 28}
    assert any("station 3 acquired more than once" in note and "dropped series 9/10/11/12" in note
               for note in found.notes)


def test_fat_and_water_of_different_sizes_are_cropped_to_their_common_region():
    series = _all_series()
    water5 = next(s for s in series if s.number == 20)
    series[series.index(water5)] = dataclasses.replace(water5, volume=water5.volume[:, 1:-2, :-3],
                                                       y0=water5.y0 + water5.sy)
    found = group_stations(series, required=["F", "W"])
    station = found.stations[4]
    fat, water = station.channels["F"], station.channels["W"]
    assert fat.volume.shape == water.volume.shape == (water5.volume.shape[0], water5.volume.shape[1] - 3,
                                                      water5.volume.shape[2] - 3)
    assert (fat.x0, fat.y0) == pytest.approx((water.x0, water.y0))
    np.testing.assert_array_equal(fat.volume, next(s for s in series if s.number == 19).volume[:, 1:-2, :-3])
    assert any("station 5: channels differ in size" in note for note in found.notes)


def test_a_missing_station_is_a_failure_naming_it():
    series = [s for s in _all_series() if not 13 <= s.number <= 16]
    with pytest.raises(InputError, match=r"5 of 6 stations .*station 4 missing"):
        group_stations(series, required=["F", "W"])


def test_a_missing_station_is_allowed_when_asked_and_the_others_keep_their_numbers():
    series = [s for s in _all_series() if not 13 <= s.number <= 16]
    found = group_stations(series, required=["F", "W"], allow_missing=True)
    assert [station.number for station in found.stations] == [1, 2, 3, 5, 6]
    assert any("station 4 missing" in note for note in found.notes)


def test_a_missing_channel_is_a_failure_unless_missing_stations_are_allowed():
    series = [s for s in _all_series() if s.number != 8]  # station 2 water
    with pytest.raises(InputError, match="station 2 has no W series"):
        group_stations(series, required=["F", "W"])
    found = group_stations(series, required=["F", "W"], allow_missing=True)
    assert [station.number for station in found.stations] == [1, 3, 4, 5, 6]
    # a channel nobody asked for may be missing
    assert len(group_stations(series, required=["F"]).stations) == 6


def _later(series_list, first_number, *, acquired="20200101130000", shift=0.0, keep=None):
    """Another acquisition of the same series, later (optionally moved ``shift`` mm down, or only slices ``keep``)."""
    out = []
    for i, s in enumerate(series_list):
        volume, z = (s.volume, s.z) if keep is None else (s.volume[keep], s.z[keep])
        out.append(dataclasses.replace(s, uid=f"{s.uid}.later", number=first_number + i, acquired=acquired,
                                       volume=volume + 1, z=z - shift))
    return out


def test_a_partial_repeat_replaces_only_what_it_covers():
    series = _all_series()
    station3 = [s for s in series if 9 <= s.number <= 12]
    aborted = _later(station3, 25, keep=slice(0, 7))  # the repeat stopped after 7 of 15 slices
    found = group_stations(series + aborted, required=["F", "W"])
    fat = found.stations[2].channels["F"]
    original = next(s for s in station3 if s.channel == "F")
    np.testing.assert_allclose(fat.z, original.z)  # the whole station is still covered
    # the repeat where it reaches (bar its lowest slab-edge slices), the first acquisition below
    np.testing.assert_array_equal(fat.volume[:5], original.volume[:5] + 1)
    np.testing.assert_array_equal(fat.volume[7:], original.volume[7:])
    assert any("station 3 acquired more than once: used series 25/26/27/28 for z" in note for note in found.notes)


def test_a_repeat_with_the_table_moved_evicts_no_neighbour():
    series = _all_series()
    station3 = [s for s in series if 9 <= s.number <= 12]
    moved = _later(station3, 25, shift=110.0)
    found = group_stations(series + moved, required=["F", "W"])
    assert [station.number for station in found.stations] == [1, 2, 3, 4, 4, 5, 6]  # numbered as its nearest
    assert all(s.number is not None and s.number < 25 for station in found.stations[:3] + found.stations[4:]
               for s in station.channels.values())
    assert {s.number for s in found.stations[3].channels.values()} == {25, 26, 27, 28}
    assert any("at another position" in note for note in found.notes)


def test_derived_series_beside_the_standard_ones_are_not_used():
    series = _all_series()
    derived = [dataclasses.replace(s, uid=s.uid + ".nd", number=100 + s.number, description=s.description + "_ND",
                                   volume=s.volume[:, ::-1].copy(), acquired="20200101130000")
               for s in series if s.channel == "W"]
    found = group_stations(series + derived, required=["F", "W"])
    assert all(station.channels["W"].number < 100 for station in found.stations)
    assert any("ignored 6 derived or non-standard series" in note for note in found.notes)


def test_fat_and_water_of_two_acquisitions_are_never_paired_and_the_reason_says_so():
    series = _all_series()
    station2 = [s for s in series if 5 <= s.number <= 8]
    repeat = _later(station2, 25)
    # the first acquisition lost its W, the repeat its F: each channel exists, but never with its partner
    mixed = [s for s in series if s.number != 8] + [s for s in repeat if s.channel != "F"]
    with pytest.raises(InputError, match=r"^F and W of station 2 come from different acquisitions "
                                         r"\(F in series 7; W in series 28\)$"):
        group_stations(mixed, required=["F", "W"])
    found = group_stations(mixed, required=["F", "W"], allow_missing=True)
    assert [station.number for station in found.stations] == [1, 3, 4, 5, 6]


def test_an_acquisition_lacking_a_channel_is_set_aside_beside_a_complete_one():
    series = _all_series()
    station2 = [s for s in series if 5 <= s.number <= 8]
    water_only = [s for s in _later(station2, 25) if s.channel == "W"]  # a later acquisition of W alone
    found = group_stations(series + water_only, required=["F", "W"])
    chosen = found.stations[1].channels
    assert (chosen["F"].number, chosen["W"].number) == (7, 8)
    assert any("station 2: series 28 (W) not used: an acquisition without F" in note for note in found.notes)
