"""Acquisitions and reconstructions: F, W, in and opp of a station always come from one reconstruction."""

from __future__ import annotations

import dataclasses

from mri_fakes import small_layout, station_series

from ukbb_pipeline.mri.acquisitions import group_acquisitions


def _station(acquisition="20200101 43200.000000 #1", first=9):
    return [dataclasses.replace(s, acquisition=acquisition, acquired=f"20200101{43210 + i * 0.35:012.6f}",
                                number=first + i, uid=f"{first + i}")
            for i, s in enumerate(station_series(small_layout()[2]))]


def test_one_acquisition_is_one_reconstruction_with_every_channel():
    acquisitions, notes = group_acquisitions(_station())
    assert len(acquisitions) == 1 and notes == []
    assert {c: s.number for c, s in acquisitions[0].channels.items()} == {"in": 9, "opp": 10, "F": 11, "W": 12}


def test_a_later_reconstruction_of_one_channel_never_mixes_with_the_complete_one():
    first = _station()
    water_again = dataclasses.replace(first[3], number=32, uid="32", acquired=f"20200101{43600:012.6f}")
    acquisitions, notes = group_acquisitions([*first, water_again])
    assert len(acquisitions) == 1
    assert acquisitions[0].channels["W"].number == 12 and acquisitions[0].channels["F"].number == 11
    assert "used series 9/10/11/12, not series 32" in notes[0]


def test_a_complete_later_reconstruction_is_used_whole():
    first = _station()
    again = [dataclasses.replace(s, number=29 + i, uid=f"r{i}", acquired=f"20200101{43600 + i * 0.35:012.6f}")
             for i, s in enumerate(first)]
    acquisitions, notes = group_acquisitions([*again, *first])
    assert [s.number for s in acquisitions[0].channels.values()] == [31, 32, 29, 30]  # F, W, in, opp
    assert "not series 9/10/11/12" in notes[0]


def test_a_repeat_is_another_acquisition_even_at_the_same_place():
    repeat = _station(acquisition="20200101 44000.000000 #1", first=25)
    acquisitions, _ = group_acquisitions([*_station(), *repeat])
    assert len(acquisitions) == 2
