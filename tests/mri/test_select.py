"""Series selection: the protocol's standard Dixon series are used, derived copies beside them are set aside."""

from __future__ import annotations

import dataclasses

from mri_fakes import small_layout, station_series

from ukbb_pipeline.mri.select import is_standard, select_standard


def _series(**changes):
    return dataclasses.replace(station_series(small_layout()[2])[3], **changes)  # station 3 water


def test_the_protocol_descriptions_are_standard_and_f_w_may_be_derived_by_the_scanner():
    assert is_standard(_series(description="Dixon_BH_17s_W", image_type="DERIVED\\PRIMARY\\M\\DIXON\\WATER"))
    assert is_standard(_series(description="Dixon_noBH_W", image_type=""))


def test_nd_secondary_extra_suffixes_and_derived_echoes_are_not_standard():
    assert not is_standard(_series(description="Dixon_BH_17s_W_ND", image_type="DERIVED\\PRIMARY\\M\\DIXON\\WATER"))
    assert not is_standard(_series(image_type="DERIVED\\PRIMARY\\M\\ND\\WATER"))
    assert not is_standard(_series(image_type="DERIVED\\SECONDARY\\WATER"))
    assert not is_standard(_series(description="Dixon_BH_17s_in", channel="in", image_type="DERIVED\\PRIMARY\\M"))
    assert is_standard(_series(description="Dixon_BH_17s_in", channel="in", image_type="ORIGINAL\\PRIMARY\\M"))


def test_derived_series_beside_standard_ones_are_ignored_with_a_note_naming_them():
    standard = _series()
    derived = _series(description="Dixon_BH_17s_W_ND", number=112, uid="x")
    kept, notes = select_standard([standard, derived])
    assert kept == [standard]
    assert notes == ["ignored 1 derived or non-standard series: series 112 (Dixon_BH_17s_W_ND)"]


def test_a_channel_with_no_standard_series_keeps_what_there_is_with_a_note():
    other = _series(description="t1_vibe_dixon_W")
    kept, notes = select_standard([other])
    assert kept == [other]
    assert "no standard Dixon series of channel W" in notes[0]
