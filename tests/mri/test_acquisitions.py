"""Acquisitions: the channels of one slab belong together whatever their times; times only order repeats."""

from __future__ import annotations

import dataclasses

import pytest
from mri_fakes import small_layout, station_series

from ukbb_pipeline.mri.acquisitions import group_acquisitions, same_slab

START = 43200.0  # 12:00:00


def _when(seconds: float) -> str:
    return f"20200101{seconds:012.6f}"


def _station(*, first=9, start=START, times="station", number=1, station=2):
    """The four channels of a station, with one of the time layouts real headers show (docs/reference/real-headers.md):
    one AcquisitionTime for the station, one per series (about a second apart), one per echo, or none at all."""
    out = []
    for i, s in enumerate(station_series(small_layout()[station])):
        acquisition_time = {"station": _when(start), "series": _when(start + i), "echo": _when(start + 0.75 * (i % 2)),
                            "absent": ""}[times]
        series_time = "" if times == "absent" else _when(start + 10 + i * (1.0 if times == "series" else 0.35))
        out.append(dataclasses.replace(s, acquisition_time=acquisition_time, acquired=series_time,
                                       acquisition_number=number, number=first + i, uid=f"{first + i}"))
    return out


@pytest.mark.parametrize("times", ["station", "series", "echo", "absent"])
def test_the_channels_of_one_slab_are_one_acquisition_whatever_their_times(times):
    acquisitions, notes = group_acquisitions(_station(times=times))
    assert len(acquisitions) == 1 and notes == []
    assert {c: s.number for c, s in acquisitions[0].channels.items()} == {"in": 9, "opp": 10, "F": 11, "W": 12}


@pytest.mark.parametrize("times", ["station", "series", "echo"])
def test_a_repeat_at_the_same_place_is_another_acquisition_ordered_by_time(times):
    first, repeat = _station(times=times), _station(times=times, first=25, start=START + 60)
    acquisitions, notes = group_acquisitions([*repeat, *first])
    assert sorted(sorted(s.number for s in a.channels.values()) for a in acquisitions) == [[9, 10, 11, 12],
                                                                                           [25, 26, 27, 28]]
    newest = max(acquisitions, key=lambda a: a.order)
    assert sorted(s.number for s in newest.channels.values()) == [25, 26, 27, 28]
    assert notes == []


def test_a_repeat_without_any_time_is_told_apart_by_series_numbers_and_says_so():
    first, repeat = _station(times="absent"), _station(times="absent", first=25)
    acquisitions, notes = group_acquisitions([*repeat, *first])
    assert sorted(sorted(s.number for s in a.channels.values()) for a in acquisitions) == [[9, 10, 11, 12],
                                                                                           [25, 26, 27, 28]]
    assert max(acquisitions, key=lambda a: a.order).channels["F"].number == 27
    assert notes == ["series 9/10/11/12/25/26/27/28 hold one slab more than once (repeats or reconstructions) and "
                     "carry no acquisition times: told apart by their series numbers"]


def test_another_acquisition_number_is_another_acquisition():
    first, other = _station(number=1), _station(number=2, first=25)
    other = [dataclasses.replace(s, acquisition_time=first[0].acquisition_time) for s in other]  # same times even
    assert len(group_acquisitions([*first, *other])[0]) == 2


def test_different_stations_are_different_slabs_even_where_they_overlap():
    station2, station3 = _station(station=1), _station(station=2, first=9)
    assert not same_slab(station2[0], station3[0])
    assert same_slab(station3[0], station3[3])
    assert len(group_acquisitions([*station2, *station3])[0]) == 2


def test_a_later_reconstruction_of_one_channel_never_mixes_with_the_complete_one():
    first = _station()
    water_again = dataclasses.replace(first[3], number=32, uid="32", acquired=_when(START + 400))
    acquisitions, notes = group_acquisitions([*first, water_again])
    assert len(acquisitions) == 1
    assert acquisitions[0].channels["W"].number == 12 and acquisitions[0].channels["F"].number == 11
    assert "used series 9/10/11/12, not series 32" in notes[0]


@pytest.mark.parametrize("times", ["station", "series", "echo"])
def test_a_complete_later_reconstruction_is_used_whole(times):
    first = _station(times=times)
    again = [dataclasses.replace(s, number=29 + i, uid=f"r{i}", acquired=_when(START + 400 + i * 0.35))
             for i, s in enumerate(first)]  # the same AcquisitionTimes: the same raw data
    acquisitions, notes = group_acquisitions([*again, *first])
    assert len(acquisitions) == 1
    assert [s.number for s in acquisitions[0].channels.values()] == [31, 32, 29, 30]  # F, W, in, opp
    assert "not series 9/10/11/12" in notes[0]
