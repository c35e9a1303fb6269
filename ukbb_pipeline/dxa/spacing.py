"""The pixel spacing of a DXA image, and whether it is believable.

GE Lunar files carry no PixelSpacing; the spacing follows from ExposedArea (width, height in mm) over Columns and
Rows: (row, column) = (ExposedArea[1] / Rows, ExposedArea[0] / Columns) (ukbb-format.md 3.3). Real exams give about
2.4 mm in both axes (1920/791 x 658/272); a spacing far from that, or far from square, means ExposedArea (its order,
say) or the image was misread, so it fails the zip with the values rather than pass silently.
"""

from __future__ import annotations

from ukbb_pipeline.errors import InputError

PLAUSIBLE_MM = (1.5, 4.0)
MAX_ANISOTROPY = 1.25  # larger / smaller spacing


def pixel_spacing(
    *,
    exposed_area: tuple[float, float] | None,
    shape: tuple[int, int],
    fallback: tuple[float, float] | None = None,
) -> tuple[float, float]:
    """(row, column) spacing in mm from ExposedArea (width, height) and the image's (Rows, Columns).

    ``fallback`` (ImagerPixelSpacing or PixelSpacing, which UK Biobank's files lack but other exports may have) is
    used when there is no ExposedArea.
    """
    if exposed_area is not None:
        return exposed_area[1] / shape[0], exposed_area[0] / shape[1]
    if fallback is not None:
        return fallback
    raise InputError("Total Body image has no ExposedArea (0040,0303) or pixel spacing tag with two positive numbers")


def check_plausible(
    spacing: tuple[float, float],
    *,
    exposed_area: tuple[float, float] | None,
    shape: tuple[int, int],
    plausible_mm: tuple[float, float] = PLAUSIBLE_MM,
    max_anisotropy: float = MAX_ANISOTROPY,
) -> None:
    """Raise :class:`InputError`, naming the values, when ``spacing`` is out of range or strongly anisotropic."""
    low, high = plausible_mm
    ratio = max(spacing) / min(spacing)
    if all(low <= s <= high for s in spacing) and ratio <= max_anisotropy:
        return
    source = (
        f"ExposedArea [{exposed_area[0]:g}, {exposed_area[1]:g}] mm over {shape[0]} rows x {shape[1]} columns"
        if exposed_area is not None else f"{shape[0]} rows x {shape[1]} columns"
    )
    raise InputError(
        f"implausible pixel spacing {spacing[0]:.2f} x {spacing[1]:.2f} mm ({source}): real exams give about 2.4 mm "
        f"in both axes ({low:g}-{high:g} mm, ratio <= {max_anisotropy:g} accepted)"
    )
