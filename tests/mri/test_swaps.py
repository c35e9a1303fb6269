"""Fat/water swap detection: overlaps say which stations differ, the fat pattern says which side is right."""

from __future__ import annotations

import numpy as np
import pytest
from mri_fakes import FakeStation, station_images

from ukbb_pipeline.mri.harmonise import body_mask
from ukbb_pipeline.mri.swaps import find_swapped, pattern_score, seam_agreement

CLEAR = 1.8  # a typical clear seam agreement
RIGHT, SWAPPED = 0.6, -0.6  # typical pattern scores


def _station(swapped: bool = False):
    station = FakeStation(number=3, rows=44, columns=56, z=tuple(np.linspace(150.0, 50.0, 8)))
    images = station_images(station, noise=5.0, swapped=swapped)
    return images["F"].astype(np.float32), images["W"].astype(np.float32), station.spacing


def test_the_fat_pattern_is_positive_when_fat_is_fat_and_negative_when_swapped():
    fat, water, spacing = _station()
    assert pattern_score(fat, water, row_spacing=spacing) > 0.3
    assert pattern_score(water, fat, row_spacing=spacing) < -0.3


def test_an_empty_image_has_no_pattern():
    empty = np.zeros((4, 20, 20), dtype=np.float32)
    assert pattern_score(empty, empty, row_spacing=2.0) == 0.0


def test_overlapping_stations_agree_unless_exactly_one_is_swapped():
    fat, water, _ = _station()
    rng = np.random.default_rng(0)
    fat2 = fat * 1.2 + rng.normal(0, 5, fat.shape).astype(np.float32)
    water2 = water * 1.2 + rng.normal(0, 5, fat.shape).astype(np.float32)
    body = body_mask(fat + water)
    assert seam_agreement(fat, water, fat2, water2, body) > 1.0
    assert seam_agreement(fat, water, water2, fat2, body) < -1.0
    assert seam_agreement(water, fat, water2, fat2, body) > 1.0  # both swapped: they agree with each other


def _seams(values):
    return {(i, i + 1): value for i, value in enumerate(values)}


def test_clean_stations_are_not_swapped_even_where_the_pattern_is_weak():
    assert find_swapped([RIGHT, 0.3, -0.05, 0.2, RIGHT, 0.1], _seams([CLEAR] * 5)) == []


@pytest.mark.parametrize("swapped", [0, 2, 5])
def test_a_swapped_station_is_found_in_the_middle_or_at_either_end(swapped):
    patterns = [RIGHT] * 6
    patterns[swapped] = SWAPPED
    seams = [CLEAR] * 5
    for seam in (swapped - 1, swapped):
        if 0 <= seam < 5:
            seams[seam] = -CLEAR
    assert find_swapped(patterns, _seams(seams)) == [swapped]


def test_the_overlaps_decide_even_when_the_swapped_station_has_a_weak_pattern():
    patterns = [RIGHT, RIGHT, 0.1, RIGHT, RIGHT, RIGHT]  # station 3 looks right on its own
    assert find_swapped(patterns, _seams([CLEAR, -CLEAR, -CLEAR, CLEAR, CLEAR])) == [2]


def test_a_lone_station_is_judged_by_its_pattern():
    assert find_swapped([SWAPPED], {}) == [0]
    assert find_swapped([RIGHT], {}) == []
    assert find_swapped([-0.05], {}) == []  # too little evidence for a swap


def test_stations_separated_by_a_missing_one_are_judged_separately():
    patterns = [RIGHT, RIGHT, SWAPPED, RIGHT]  # station 3 (index 2) has a neighbour below only
    assert find_swapped(patterns, {(0, 1): CLEAR, (2, 3): -CLEAR}) == [2]


def test_missing_evidence_counts_as_none():
    assert find_swapped([float("nan"), RIGHT], {(0, 1): CLEAR}) == []
    assert find_swapped([SWAPPED, RIGHT], {(0, 1): float("nan")}) == [0]
