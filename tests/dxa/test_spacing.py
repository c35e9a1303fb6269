"""Pixel spacing from ExposedArea, and a spacing no real exam has is a failure naming the values."""

from __future__ import annotations

import pytest

from ukbb_pipeline.dxa.spacing import check_plausible, pixel_spacing
from ukbb_pipeline.errors import InputError


def test_the_public_example_gives_about_2_4_mm_in_both_axes():
    spacing = pixel_spacing(exposed_area=(658, 1920), shape=(791, 272))
    assert spacing == pytest.approx((1920 / 791, 658 / 272))
    assert spacing == pytest.approx((2.427, 2.419), abs=1e-3)
    check_plausible(spacing, exposed_area=(658, 1920), shape=(791, 272))


def test_a_reversed_exposed_area_fails_naming_the_values():
    spacing = pixel_spacing(exposed_area=(1920, 658), shape=(791, 272))
    with pytest.raises(InputError) as caught:
        check_plausible(spacing, exposed_area=(1920, 658), shape=(791, 272))
    assert str(caught.value).startswith(
        "implausible pixel spacing 0.83 x 7.06 mm (ExposedArea [1920, 658] mm over 791 rows x 272 columns)")


@pytest.mark.parametrize("spacing", [(1.2, 1.2), (4.5, 4.5), (2.4, 3.2), (3.2, 2.4)])
def test_out_of_range_or_anisotropic_spacings_fail(spacing):
    with pytest.raises(InputError, match=f"implausible pixel spacing {spacing[0]:.2f} x {spacing[1]:.2f} mm"):
        check_plausible(spacing, exposed_area=None, shape=(791, 272))


@pytest.mark.parametrize("spacing", [(1.6, 1.6), (3.9, 3.9), (2.4, 2.95)])
def test_spacings_within_the_bounds_pass(spacing):
    check_plausible(spacing, exposed_area=None, shape=(791, 272))


def test_without_exposed_area_a_pixel_spacing_tag_is_used_or_the_image_fails():
    assert pixel_spacing(exposed_area=None, shape=(791, 272), fallback=(2.5, 2.5)) == (2.5, 2.5)
    with pytest.raises(InputError, match="no ExposedArea"):
        pixel_spacing(exposed_area=None, shape=(791, 272))
