"""Geometry of the six Dixon stations of field 20201 (ukbb-format.md 1.3), at full or small size.

"full" is the real layout: 224 columns at 2.232 mm, rows 168/174/174/174/162/156, 64/44/44/44/72/64 slices of
3.0/4.5/4.5/4.5/3.5/4.0 mm. "small" keeps the same six slabs in space (field of view, z extents, overlaps) with
4x coarser pixels (56 columns) and about 3x fewer, thicker slices, for fast tests.

Every station's field of view is centred on the scanner axis in x and y (so IPP y differs with Rows); slices are
axial, the most superior first (InstanceNumber 1). Seams overlap by 36-38 mm, and the whole stack spans
z = -464.75 ... 645.25 mm (1110 mm, ~370 slices of 3 mm when stitched). Geometry values are rounded as they are
written to the DICOM decimal strings, so what a reader parses is exactly what this module reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.valuerep import format_number_as_ds

N_STATIONS = 6
COLUMNS_FULL = 224
FOV_WIDTH = 500.0  # mm, left-right
PIXEL_SPACING_FULL = 2.232142925262451  # 500/224 rounded to float32, as UK Biobank files carry it
ROWS_FULL = (168, 174, 174, 174, 162, 156)
SLICES_FULL = (64, 44, 44, 44, 72, 64)
THICKNESS_FULL = (3.0, 4.5, 4.5, 4.5, 3.5, 4.0)
SMALL_FACTOR = 4  # in-plane coarsening of the small size
ROWS_SMALL = (42, 44, 44, 44, 40, 38)  # even, like the full rows, so all stations share one y grid
SLICES_SMALL = (24, 15, 15, 15, 24, 20)
THICKNESS_SMALL = (8.0, 13.2, 13.2, 13.2, 10.5, 12.8)  # same slab extents as full: 192/198/198/198/252/256 mm
LOWEST_EDGE = -464.75  # mm, inferior slab edge of station 6 (knees)
SEAM_OVERLAPS = (36.0, 38.0, 36.0, 38.0, 36.0)  # mm, seams 1|2, 2|3, 3|4, 4|5, 5|6
BREATH_HOLD = (False, True, True, True, False, False)
SIZES = ("small", "full")


def ds_value(value: float) -> float:
    """``value`` as it reads back from a DICOM decimal string (DS, at most 16 characters)."""
    return float(ds_text(value))


def ds_text(value: float) -> str:
    """The DS text written for ``value``."""
    text = format_number_as_ds(float(value))
    return text


@dataclass(frozen=True)
class StationGeometry:
    """Voxel grid of one station as written: the IPP of each slice's first pixel, spacings and sizes.

    Pixel [row r, column c] of slice k lies at LPS (x0 + c * pixel_spacing, y0 + r * pixel_spacing, z[k]);
    slice 0 is the most superior (InstanceNumber 1).
    """

    station: int  # 1..6, head to knee
    rows: int
    columns: int
    n_slices: int
    pixel_spacing: float
    thickness: float
    x0: float
    y0: float
    z: tuple[float, ...]  # slice centres, descending

    @property
    def xs(self) -> np.ndarray:
        return self.x0 + np.arange(self.columns) * self.pixel_spacing

    @property
    def ys(self) -> np.ndarray:
        return self.y0 + np.arange(self.rows) * self.pixel_spacing

    @property
    def zs(self) -> np.ndarray:
        return np.asarray(self.z, dtype=np.float64)

    @property
    def top_edge(self) -> float:
        return self.z[0] + self.thickness / 2

    @property
    def bottom_edge(self) -> float:
        return self.z[-1] - self.thickness / 2

    def position(self, k: int) -> tuple[float, float, float]:
        """ImagePositionPatient of slice k."""
        return (self.x0, self.y0, self.z[k])


def station_geometries(
    size: str, *, offset: tuple[float, float, float] = (0.0, 0.0, 0.0), touching_seam: int | None = None
) -> tuple[StationGeometry, ...]:
    """The six stations, head to knee, for ``size`` "full" or "small"; every position moved by ``offset`` (LPS mm,
    a subject's own table position), and with ``touching_seam`` k the slabs of stations k and k+1 just touching (the
    stations above the seam move up by its overlap)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    full = size == "full"
    factor = 1 if full else SMALL_FACTOR
    rows_per_station = ROWS_FULL if full else ROWS_SMALL
    slices_per_station = SLICES_FULL if full else SLICES_SMALL
    thicknesses = THICKNESS_FULL if full else THICKNESS_SMALL
    spacing = ds_value(PIXEL_SPACING_FULL * factor)
    columns = COLUMNS_FULL // factor
    top_edges = list(_top_edges())
    if touching_seam is not None:
        for index in range(touching_seam):
            top_edges[index] += SEAM_OVERLAPS[touching_seam - 1]
    stations = []
    for index in range(N_STATIONS):
        rows, n, thickness = rows_per_station[index], slices_per_station[index], thicknesses[index]
        z = tuple(ds_value(offset[2] + top_edges[index] - (k + 0.5) * thickness) for k in range(n))
        stations.append(
            StationGeometry(
                station=index + 1,
                rows=rows,
                columns=columns,
                n_slices=n,
                pixel_spacing=spacing,
                thickness=thickness,
                x0=ds_value(offset[0] - FOV_WIDTH / 2 + spacing / 2),
                y0=ds_value(offset[1] - (rows - 1) / 2 * spacing),
                z=z,
            )
        )
    return tuple(stations)


def _top_edges() -> tuple[float, ...]:
    """Superior slab edge of each station (the full and small layouts share them)."""
    extents = [n * t for n, t in zip(SLICES_FULL, THICKNESS_FULL, strict=True)]
    bottom = LOWEST_EDGE
    tops = []
    for index in reversed(range(N_STATIONS)):
        top = bottom + extents[index]
        tops.append(top)
        if index > 0:
            bottom = top - SEAM_OVERLAPS[index - 1]
    return tuple(reversed(tops))
