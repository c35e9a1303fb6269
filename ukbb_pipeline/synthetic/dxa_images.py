"""Pixel content of the DXA images: whole-body soft tissue and bone, and the regional scans.

Total Body images cover ExposedArea = 658 x 1920 mm (width x height): row 0 is above the head, rows run towards
the feet and columns towards the patient's left (PatientOrientation L\\F). The soft-tissue image is the phantom's
tissue projected front to back; the bone image is a skeleton drawing over a dim body. Values follow the real
files (ukbb-format.md 3.2): background exactly 0, body 1-249, 252 where bright bone saturates; 250-251 never occur.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import zoom

from ukbb_pipeline.synthetic import skeleton
from ukbb_pipeline.synthetic.phantom import Phantom

TOTAL_BODY_AREA = (658, 1920)  # ExposedArea (width, height) in mm
TOTAL_BODY_ROWS = (780, 830)  # full-size Rows range (the example file has 791)
TOTAL_BODY_COLUMNS = (264, 288)  # full-size Columns range (the example file has 272)
SMALL_DIVISOR = 4
SATURATED = 252
BODY_MAX = 249
RENDER_POINTS = 60_000  # images are computed on at most about this many points, then interpolated
THICKNESS_POINTS = 8_000  # the smooth tissue projection (the costly part) on fewer
Y_STEP = 10.0  # mm between samples of the front-to-back projection
TISSUE_SCALE = 140.0  # mm of tissue at which the soft-tissue value reaches 63 % of its range


@dataclass(frozen=True)
class DxaGrid:
    """Pixel grid of a DXA image: pixel [r, c] centred at LPS x = x0 + c*column_spacing, z = z0 - r*row_spacing."""

    rows: int
    columns: int
    width: float  # mm, ExposedArea[0]
    height: float  # mm, ExposedArea[1]
    x0: float
    z0: float

    @property
    def row_spacing(self) -> float:
        return self.height / self.rows

    @property
    def column_spacing(self) -> float:
        return self.width / self.columns

    @property
    def xs(self) -> np.ndarray:
        return self.x0 + np.arange(self.columns) * self.column_spacing

    @property
    def zs(self) -> np.ndarray:
        return self.z0 - np.arange(self.rows) * self.row_spacing


def total_body_grid(phantom: Phantom, *, rng: np.random.Generator) -> DxaGrid:
    """A Total Body grid of slightly random size, starting a few cm above the head.

    Always the real size (about 2.4 mm pixels; small cohorts shrink only the regional images): a reader rightly
    refuses a spacing far from the real one.
    """
    rows = int(rng.integers(TOTAL_BODY_ROWS[0], TOTAL_BODY_ROWS[1] + 1))
    columns = int(rng.integers(TOTAL_BODY_COLUMNS[0], TOTAL_BODY_COLUMNS[1] + 1))
    width, height = TOTAL_BODY_AREA
    top = phantom.head_top_z + float(rng.uniform(25.0, 70.0))
    left = float(rng.uniform(-15.0, 15.0)) - width / 2
    return DxaGrid(
        rows=rows,
        columns=columns,
        width=float(width),
        height=float(height),
        x0=left + width / columns / 2,
        z0=top - height / rows / 2,
    )


def render(
    function: Callable[[np.ndarray, np.ndarray], np.ndarray], *, rows: int, columns: int, points: int = RENDER_POINTS
) -> np.ndarray:
    """``function(row_coordinate, column_coordinate)`` on a (rows, columns) image, in fractional pixel units.

    Large images are computed on a coarser grid and interpolated bilinearly, which keeps them fast.
    """
    step = max(1, int(np.ceil(np.sqrt(rows * columns / points))))
    r = np.arange(0, rows + step - 1, step, dtype=np.float64)
    c = np.arange(0, columns + step - 1, step, dtype=np.float64)
    coarse = function(r[:, None], c[None, :]).astype(np.float32)
    if step == 1:
        return coarse[:rows, :columns]
    fine = zoom(coarse, step, order=1, grid_mode=False)
    return fine[:rows, :columns]


def tissue_thickness(phantom: Phantom, grid: DxaGrid) -> np.ndarray:
    """Lean-equivalent tissue traversed front to back (mm) at each pixel of ``grid``."""
    ys = np.arange(phantom.y_rest - 360.0, phantom.y_rest + 5.0, Y_STEP)

    def project(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        xs = grid.x0 + c.ravel() * grid.column_spacing
        zs = grid.z0 - r.ravel() * grid.row_spacing
        fat, water = phantom.grid(xs=xs, ys=ys, zs=zs)
        lean = water / np.float32(phantom.water_signal) + 0.8 * fat / np.float32(phantom.fat_signal)
        return lean.sum(axis=1) * np.float32(Y_STEP)

    return render(project, rows=grid.rows, columns=grid.columns, points=THICKNESS_POINTS)


def to_uint8(values: np.ndarray, body: np.ndarray) -> np.ndarray:
    """0 outside ``body``; inside, values rounded into 1-249, with anything above 249 saturating to 252."""
    rounded = np.rint(values)
    out = np.clip(rounded, 1, BODY_MAX).astype(np.uint8)
    out[rounded > BODY_MAX] = SATURATED
    out[~body] = 0
    return out


def soft_tissue_image(thickness: np.ndarray) -> np.ndarray:
    body = thickness > 3.0
    return to_uint8(1.0 + 248.0 * (1.0 - np.exp(-thickness / TISSUE_SCALE)), body)


def bone_image(phantom: Phantom, grid: DxaGrid, tissue: np.ndarray) -> np.ndarray:
    """Skeleton over a dim body: 0.2 x tissue + 175 x projected bone density."""

    def draw(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        u = grid.x0 + c * grid.column_spacing - phantom.x_shift
        zl = (grid.z0 - r * grid.row_spacing - phantom.z_shift) / phantom.height_scale
        return skeleton.frontal_density(phantom, u, zl)

    density = render(draw, rows=grid.rows, columns=grid.columns)
    return to_uint8(0.2 * tissue.astype(np.float32) + 175.0 * density, tissue > 0)


@dataclass(frozen=True)
class Region:
    """A regional DXA scan: its name (ProtocolName), InstanceNumber, real size and where it looks."""

    name: str
    instance: int
    rows: int
    columns: int
    area: tuple[int, int]  # ExposedArea (width, height) mm
    centre: tuple[float, float]  # (u, zl) of the image centre; for LVA (v, zl) of the lateral view
    parts: tuple[str, ...]


REGIONS = (
    Region("AP Spine", 2, 780, 716, (180, 197), (0.0, 235.0), ("spine", "ribs", "pelvis")),
    Region("Left Femur", 5, 600, 680, (170, 150), (100.0, 25.0), ("pelvis", "legs")),
    Region("Left Ortho Knee", 6, 848, 640, (160, 212), (78.0, -345.0), ("legs",)),
    Region("LVA", 7, 1768, 808, (200, 438), (-60.0, 330.0), ()),
    Region("Right Femur", 8, 537, 680, (170, 134), (-100.0, 25.0), ("pelvis", "legs")),
    Region("Right Ortho Knee", 9, 850, 640, (160, 213), (-78.0, -345.0), ("legs",)),
)


def region_image(phantom: Phantom, region: Region, *, size: str) -> np.ndarray:
    """A regional scan: soft-tissue background, bone, and 252-filled strips along both sides."""
    rows, columns = region.rows, region.columns
    if size != "full":
        rows, columns = round(rows / SMALL_DIVISOR), round(columns / SMALL_DIVISOR)
    width, height = region.area
    ws = phantom.width_scale if region.name != "LVA" else 1.0

    def draw(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        across = region.centre[0] * ws + (c + 0.5 - columns / 2) * width / columns
        zl = region.centre[1] + (rows / 2 - r - 0.5) * height / rows
        if region.name == "LVA":
            bone = skeleton.lateral_density(across, zl)
        else:
            bone = skeleton.frontal_density(phantom, across, zl, parts=region.parts)
        return 60.0 + 10.0 * np.cos(across / 40.0) + 170.0 * bone

    values = render(draw, rows=rows, columns=columns)
    image = to_uint8(values, np.ones(values.shape, dtype=bool))
    strip = max(1, round(0.06 * columns))
    image[:, :strip] = SATURATED
    image[:, -strip:] = SATURATED
    return image
