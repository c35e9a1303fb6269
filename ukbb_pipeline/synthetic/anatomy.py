"""The phantom's anatomy: limbs as soft elliptic tubes with a subcutaneous fat layer, organs inside the trunk.

Body-local height ``zl`` (mm) is 0 at the crotch; LPS z = ``z_shift + height_scale * zl``. The nominal body is
about 1.8 m tall: feet at zl = -870, knees at -350, crotch at 0, navel near 220, shoulders near 600, head top at 915.
The body lies supine on the scanner table: every limb's posterior surface rests at ``y_rest`` (LPS y).

Tissue signals (uint16-like): subcutaneous fat gives fat = F and water = 0.07 W; muscle gives fat = 0.05 F and
water = 0.92 W, where F and W are the phantom's ``fat_signal`` and ``water_signal``. Organs (lungs, heart, liver,
kidneys, bladder, spine, abdominal visceral fat with bowel-like texture) replace the muscle composition where they are.
Limbs are combined by a soft union, so their junctions carry no seams or double fat layers.

The vertebral column follows a curve (:func:`spine_curve`): its depth under the back's skin is the back's fat layer
plus a per-subject depth, deepened by lumbar and cervical lordosis and made shallower by thoracic kyphosis, tilting
back at the sacrum; its lateral offset is a scoliosis (a C and an S component). Each level has a vertebral body of
marrow (intermediate fat fraction) interrupted by water-rich discs, the spinal canal (fluid) just posterior to it and
the posterior elements behind that, in a sleeve of muscle and vessels; the column is painted last, over the
organs, so it is whole wherever it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ukbb_pipeline.synthetic.shapes import ellipse_distance, ellipsoid_distance, inside, slab

if TYPE_CHECKING:
    from ukbb_pipeline.synthetic.phantom import Phantom

CAP_WIDTH = 8.0  # mm; softness of the limb ends along z

# Trunk: semi-axes (a: half-width, b: half-depth) and subcutaneous fat thickness along zl.
TORSO_Z = (-60.0, -20.0, 0.0, 80.0, 180.0, 280.0, 360.0, 460.0, 540.0, 590.0, 630.0)
TORSO_A = (150.0, 158.0, 165.0, 160.0, 145.0, 140.0, 145.0, 150.0, 152.0, 150.0, 135.0)
TORSO_B = (95.0, 100.0, 105.0, 100.0, 105.0, 108.0, 105.0, 102.0, 98.0, 90.0, 75.0)
TORSO_FAT = (24.0, 26.0, 28.0, 26.0, 32.0, 30.0, 24.0, 20.0, 18.0, 16.0, 14.0)
TORSO_CAPS = (-40.0, 615.0)
BELLY_CENTRE, BELLY_SIGMA = 220.0, 90.0

# Legs: radius, distance of the leg axis from the midline, fat thickness.
LEG_Z = (-870.0, -780.0, -600.0, -420.0, -350.0, -250.0, -100.0, 0.0, 60.0)
LEG_R = (30.0, 30.0, 50.0, 48.0, 55.0, 66.0, 80.0, 85.0, 85.0)
LEG_X = (82.0, 82.0, 82.0, 78.0, 76.0, 78.0, 82.0, 80.0, 80.0)
LEG_FAT = (10.0, 10.0, 13.0, 12.0, 12.0, 14.0, 16.0, 18.0, 18.0)
LEG_CAPS = (-870.0, 60.0)

# Arms hang beside the trunk, ARM_GAP mm from it.
ARM_Z = (-150.0, -60.0, 0.0, 40.0, 150.0, 250.0, 350.0, 450.0, 560.0, 620.0)
ARM_R = (22.0, 28.0, 26.0, 24.0, 30.0, 34.0, 38.0, 40.0, 42.0, 42.0)
ARM_FAT = (10.0, 10.0, 10.0, 10.0, 11.0, 11.0, 12.0, 12.0, 12.0, 12.0)
ARM_CAPS = (-150.0, 615.0)
ARM_GAP = 12.0

NECK_CAPS, NECK_R, NECK_FAT, NECK_DEPTH = (590.0, 720.0), 56.0, 10.0, 80.0
HEAD_ZL, HEAD_AXES, HEAD_FAT = 800.0, (75.0, 92.0, 115.0), 10.0
MIN_FAT = 10.0  # mm; thinnest fat layer, so that every feature is at least ~10 mm


@dataclass(frozen=True)
class Composition:
    """Fat and water signal of a tissue as fractions of the phantom's F and W."""

    fat: float
    water: float


SUBCUTANEOUS = Composition(1.0, 0.07)
MUSCLE = Composition(0.05, 0.92)
MARROW = Composition(0.8, 0.15)
LUNG = Composition(0.01, 0.03)
HEART = Composition(0.03, 0.7)
KIDNEY = Composition(0.04, 0.95)
BLADDER = Composition(0.0, 1.15)
SPINE = Composition(0.45, 0.4)
BRAIN = Composition(0.05, 0.75)
DISC = Composition(0.03, 0.85)
CSF = Composition(0.0, 1.0)

# The vertebral column, in body height zl: from the sacrum's tip to the skull base; the curves' landmarks.
SPINE_ZL = (-20.0, 740.0)
SACRUM_TOP_ZL = 110.0  # the column tilts back below this (the sacrum)
TRUNK_SPINE_ZL = (110.0, 600.0)  # L5 to C7: where the spine is the trunk's
LORDOSIS_ZL, LORDOSIS_SIGMA = 200.0, 85.0
KYPHOSIS_ZL, KYPHOSIS_SIGMA = 450.0, 100.0
CERVICAL_ZL, CERVICAL_SIGMA = 670.0, 50.0
SACRAL_TILT = 0.22  # mm shallower per mm below the sacrum's top
VERTEBRA_HALF_WIDTH = (24.0, 14.0)  # mm, at the low back and at the neck
VERTEBRA_HALF_DEPTH = (16.0, 9.0)
CANAL_RADIUS = 7.0
DISC_HEIGHT = 7.0
SLEEVE = (20.0, 10.0)  # mm of muscle and vessels around the vertebral bodies (lateral, anterior-posterior)


def interp(zl: np.ndarray, xp: tuple[float, ...], fp: tuple[float, ...]) -> np.ndarray:
    return np.interp(zl, xp, fp).astype(np.float32)


def _reaches(zl_range: tuple[float, float], low: float, high: float, *, width: float = CAP_WIDTH) -> bool:
    """Whether body heights in ``zl_range`` can touch a part spanning [low, high] with ends softened by ``width``.

    Beyond 25 widths the logistic tail is below 1e-10, so skipping the part changes no value that is written.
    """
    margin = 25.0 * width
    return zl_range[1] > low - margin and zl_range[0] < high + margin


@dataclass
class _Accumulator:
    """Soft union of limbs: outer and core occupancies and the occupancy-weighted core composition."""

    not_outer: np.ndarray | float = 1.0
    not_core: np.ndarray | float = 1.0
    core_weight: np.ndarray | float = 0.0
    core_fat: np.ndarray | float = 0.0
    core_water: np.ndarray | float = 0.0

    def add(self, outer: np.ndarray, core: np.ndarray, fat: np.ndarray | float, water: np.ndarray | float) -> None:
        self.not_outer = self.not_outer * (1.0 - outer)
        self.not_core = self.not_core * (1.0 - core)
        self.core_weight = self.core_weight + core
        self.core_fat = self.core_fat + core * fat
        self.core_water = self.core_water + core * water


def body_signals(p: Phantom, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fat, water) signal of the body at LPS points (x, y, z), broadcast, float32."""
    fat, water, _ = _evaluate(p, x, y, z)
    return fat, water


def body_occupancy(p: Phantom, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Soft occupancy (0-1) of the body, air-filled lungs included, broadcast, float32."""
    return _evaluate(p, x, y, z)[2]


def _full(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    return values if values.shape == shape else np.broadcast_to(values, shape).copy()


def _evaluate(p: Phantom, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y, z = (np.asarray(v, dtype=np.float32) for v in (x, y, z))
    shape = np.broadcast_shapes(x.shape, y.shape, z.shape)
    zl = (z - np.float32(p.z_shift)) / np.float32(p.height_scale)
    zl_range = (float(np.min(zl)), float(np.max(zl)))
    u = x - np.float32(p.x_shift)
    v = y - np.float32(p.y_rest)  # <= 0 inside the body
    acc = _Accumulator()
    for outer, core, comp_fat, comp_water in _limbs(p, u, v, zl, zl_range):
        acc.add(outer, core, comp_fat, comp_water)
    outer = np.asarray(1.0 - acc.not_outer)
    core = np.asarray(1.0 - acc.not_core)
    weight = np.maximum(acc.core_weight, 1e-6)
    comp_fat = np.where(acc.core_weight > 1e-6, acc.core_fat / weight, MUSCLE.fat)
    comp_water = np.where(acc.core_weight > 1e-6, acc.core_water / weight, MUSCLE.water)
    for occupancy, fat, water in _organs(p, u, v, zl, zl_range):
        comp_fat = comp_fat + occupancy * (fat - comp_fat)
        comp_water = comp_water + occupancy * (water - comp_water)
    layer = outer - core
    fat = (layer * SUBCUTANEOUS.fat + core * comp_fat) * np.float32(p.fat_signal)
    water = (layer * SUBCUTANEOUS.water + core * comp_water) * np.float32(p.water_signal)
    return _full(fat, shape), _full(water, shape), _full(outer, shape)


def torso_axes(p: Phantom, zl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trunk half-width and half-depth (mm) at body heights ``zl``, belly included."""
    a = interp(zl, TORSO_Z, TORSO_A) * np.float32(p.width_scale)
    belly = np.float32(p.belly) * np.exp(-(((zl - BELLY_CENTRE) / BELLY_SIGMA) ** 2))
    b = interp(zl, TORSO_Z, TORSO_B) * np.float32(p.depth_scale) + belly
    return a, b.astype(np.float32)


def _fat_thickness(p: Phantom, zl: np.ndarray, xp: tuple[float, ...], fp: tuple[float, ...]) -> np.ndarray:
    return np.maximum(interp(zl, xp, fp) * np.float32(p.fat_scale), np.float32(MIN_FAT))


def _tube(
    u: np.ndarray,
    v: np.ndarray,
    zl: np.ndarray,
    *,
    a: np.ndarray | float,
    b: np.ndarray | float,
    fat: np.ndarray | float,
    cx: np.ndarray | float,
    caps: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outer and core occupancy of a limb resting on the table, plus its signed distance field."""
    d = ellipse_distance(u - cx, v + b, a, b)
    outer = inside(d) * slab(zl, caps[0], caps[1], width=CAP_WIDTH)
    core = inside(d + fat) * slab(zl, caps[0] + MIN_FAT, caps[1] - MIN_FAT, width=CAP_WIDTH)
    return outer, core, d


def _limbs(
    p: Phantom, u: np.ndarray, v: np.ndarray, zl: np.ndarray, zl_range: tuple[float, float]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | float, np.ndarray | float]]:
    """Yield (outer, core, core fat fraction, core water fraction) for each limb present at these heights."""
    ws = np.float32(p.width_scale)
    if _reaches(zl_range, *TORSO_CAPS):
        a, b = torso_axes(p, zl)
        fat = _fat_thickness(p, zl, TORSO_Z, TORSO_FAT)
        outer, core, _ = _tube(u, v, zl, a=a, b=b, fat=fat, cx=0.0, caps=TORSO_CAPS)
        yield outer, core, MUSCLE.fat, MUSCLE.water
    if _reaches(zl_range, *LEG_CAPS):
        r = interp(zl, LEG_Z, LEG_R) * ws
        offset = interp(zl, LEG_Z, LEG_X) * ws
        fat = _fat_thickness(p, zl, LEG_Z, LEG_FAT)
        for side in (-1.0, 1.0):
            outer, core, _ = _tube(u, v, zl, a=r, b=0.95 * r, fat=fat, cx=side * offset, caps=LEG_CAPS)
            bone = inside(ellipse_distance(u - side * (offset + 6.0), v + 0.95 * r - 4.0, 13.0, 13.0))
            yield outer, core, *_blend(MUSCLE, MARROW, bone)
    if _reaches(zl_range, *ARM_CAPS):
        r = interp(zl, ARM_Z, ARM_R) * ws
        offset = interp(zl, TORSO_Z, TORSO_A) * ws + np.float32(ARM_GAP) + r
        fat = _fat_thickness(p, zl, ARM_Z, ARM_FAT)
        for side in (-1.0, 1.0):
            outer, core, _ = _tube(u, v, zl, a=r, b=r, fat=fat, cx=side * offset, caps=ARM_CAPS)
            bone = inside(ellipse_distance(u - side * offset, v + r, 9.0, 9.0))
            yield outer, core, *_blend(MUSCLE, MARROW, bone)
    if _reaches(zl_range, *NECK_CAPS):
        r = NECK_R * float(np.sqrt(p.width_scale))
        d = ellipse_distance(u, v + NECK_DEPTH, r, r)
        outer = inside(d) * slab(zl, NECK_CAPS[0], NECK_CAPS[1], width=CAP_WIDTH)
        core = inside(d + NECK_FAT) * slab(zl, NECK_CAPS[0], NECK_CAPS[1] - NECK_FAT, width=CAP_WIDTH)
        yield outer, core, MUSCLE.fat, MUSCLE.water
    head_a, head_b, head_c = HEAD_AXES
    if _reaches(zl_range, HEAD_ZL - head_c, HEAD_ZL + head_c):
        d = ellipsoid_distance(u, v + head_b + 5.0, zl - HEAD_ZL, head_a, head_b, head_c)
        yield inside(d), inside(d + HEAD_FAT), BRAIN.fat, BRAIN.water


def _bump(zl: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    return np.exp(-(((zl - centre) / sigma) ** 2)).astype(np.float32)


def spine_curve(p: Phantom, zl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lateral offset u from the body's midline, depth under the back's skin) of the vertebral bodies' centre, mm,
    at body heights ``zl``: the curve the phantom's column follows (its truth)."""
    zl = np.asarray(zl, dtype=np.float32)
    depth = (_fat_thickness(p, zl, TORSO_Z, TORSO_FAT) + np.float32(p.spine_depth)
             + np.float32(p.lordosis) * _bump(zl, LORDOSIS_ZL, LORDOSIS_SIGMA)
             - np.float32(p.kyphosis) * _bump(zl, KYPHOSIS_ZL, KYPHOSIS_SIGMA)
             + np.float32(p.cervical_lordosis) * _bump(zl, CERVICAL_ZL, CERVICAL_SIGMA)
             - np.float32(SACRAL_TILT) * np.clip(np.float32(SACRUM_TOP_ZL) - zl, 0.0, None))
    low, high = TRUNK_SPINE_ZL
    t = np.clip((zl - low) / (high - low), 0.0, 1.0)
    lateral = (np.float32(p.scoliosis) * np.sin(np.pi * t) + np.float32(p.scoliosis_s) * np.sin(2 * np.pi * t))
    return lateral.astype(np.float32), depth.astype(np.float32)


def _disc_levels() -> np.ndarray:
    """Body heights of the discs' centres: vertebrae 18 mm tall at the neck to 32 mm at the low back."""
    levels, zl = [], SPINE_ZL[1]
    while zl > SACRUM_TOP_ZL:
        level = float(np.clip((SPINE_ZL[1] - zl) / (SPINE_ZL[1] - SACRUM_TOP_ZL), 0.0, 1.0))
        zl -= 18.0 + 14.0 * level
        levels.append(zl - DISC_HEIGHT / 2)
        zl -= DISC_HEIGHT
    return np.asarray(levels, dtype=np.float32)


DISC_LEVELS = _disc_levels()


def _column(
    p: Phantom, u: np.ndarray, v: np.ndarray, zl: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray | float, np.ndarray | float]]:
    """The vertebral column along :func:`spine_curve`: vertebral bodies (marrow, discs between them), the spinal
    canal just posterior to them, and the posterior elements."""
    along = slab(zl, SPINE_ZL[0], SPINE_ZL[1], width=CAP_WIDTH)
    lateral, depth = spine_curve(p, zl)
    t = np.clip((zl - TRUNK_SPINE_ZL[0]) / (TRUNK_SPINE_ZL[1] - TRUNK_SPINE_ZL[0]), 0.0, 1.0)
    half_width = VERTEBRA_HALF_WIDTH[0] + t * (VERTEBRA_HALF_WIDTH[1] - VERTEBRA_HALF_WIDTH[0])
    half_depth = VERTEBRA_HALF_DEPTH[0] + t * (VERTEBRA_HALF_DEPTH[1] - VERTEBRA_HALF_DEPTH[0])
    du, centre = u - lateral, v + depth  # across the column; v of the body's centre is -depth
    sleeve = inside(ellipse_distance(du, centre, half_width + SLEEVE[0], half_depth + SLEEVE[1]), width=3.0)
    yield sleeve * along, MUSCLE.fat, MUSCLE.water  # psoas, crura, great vessels: no fat right against the column
    vertebra = inside(ellipse_distance(du, centre, half_width, half_depth), width=3.0) * along
    discs = sum((slab(zl, level - DISC_HEIGHT / 2, level + DISC_HEIGHT / 2, width=2.0) for level in DISC_LEVELS),
                np.zeros_like(zl))
    yield vertebra, *_blend(SPINE, DISC, np.clip(discs, 0.0, 1.0))
    canal_v = centre - half_depth - CANAL_RADIUS - 1.0
    yield inside(ellipse_distance(du, canal_v, CANAL_RADIUS, CANAL_RADIUS), width=2.0) * along, CSF.fat, CSF.water
    arch_v = canal_v - CANAL_RADIUS - 9.0
    yield inside(ellipse_distance(du, arch_v, 0.8 * half_width, 7.0), width=3.0) * along, SPINE.fat, SPINE.water


def _blend(base: Composition, other: Composition, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return base.fat + weight * (other.fat - base.fat), base.water + weight * (other.water - base.water)


def _organs(
    p: Phantom, u: np.ndarray, v: np.ndarray, zl: np.ndarray, zl_range: tuple[float, float]
) -> Iterator[tuple[np.ndarray, np.ndarray | float, np.ndarray | float]]:
    """Yield (occupancy, fat fraction, water fraction) of each organ present at these heights, in paint order."""
    if _reaches(zl_range, 70.0, 330.0, width=12.0):  # visceral fat with a bowel-like water texture
        a, b = torso_axes(p, zl)
        region = inside(ellipse_distance(u, v + 1.15 * b, 0.72 * (a - 25.0), 0.6 * b), width=4.0)
        region = region * slab(zl, 70.0, 330.0, width=12.0)
        texture = 0.5 + 0.5 * np.sin(u / 28.0) * np.sin(v / 24.0) * np.cos(zl / 36.0)
        fraction = np.float32(p.visceral_fat) * (0.35 + 0.65 * texture)
        yield region, *_blend(Composition(MUSCLE.fat, 0.85), SUBCUTANEOUS, fraction)
    for organ in _solid_organs(p):
        centre_z, c = organ.centre[2], organ.axes[2]
        if _reaches(zl_range, centre_z - c, centre_z + c):
            d = ellipsoid_distance(
                u - organ.centre[0], v - organ.centre[1], zl - centre_z, organ.axes[0], organ.axes[1], c
            )
            yield inside(d, width=2.0), organ.composition.fat, organ.composition.water
    if _reaches(zl_range, *SPINE_ZL):  # the vertebral column, continuing into the neck, painted over the organs
        yield from _column(p, u, v, zl)


@dataclass(frozen=True)
class _Organ:
    centre: tuple[float, float, float]  # (u, v, zl) relative to the body axis and the table
    axes: tuple[float, float, float]
    composition: Composition


def _solid_organs(p: Phantom) -> list[_Organ]:
    """The ellipsoidal organs, placed relative to the trunk's size at their height (in paint order)."""

    def axes_at(zl: float) -> tuple[float, float]:
        a, b = torso_axes(p, np.float32(zl))
        return float(a), float(b)

    organs = []
    a, b = axes_at(500.0)
    for side in (-1.0, 1.0):
        organs.append(_Organ((side * 0.45 * a, -b, 500.0), (0.36 * a, 0.6 * b, 110.0), LUNG))
    a, b = axes_at(440.0)
    organs.append(_Organ((0.12 * a, -1.35 * b, 440.0), (55.0, 48.0, 55.0), HEART))
    a, b = axes_at(400.0)
    liver = Composition(p.liver_fat, 0.9 * (1.0 - p.liver_fat))
    organs.append(_Organ((-0.42 * a, -0.95 * b, 390.0), (0.45 * a, 0.55 * b, 80.0), liver))
    a, b = axes_at(290.0)
    for side in (-1.0, 1.0):
        organs.append(_Organ((side * 0.42 * a, -0.55 * b, 290.0), (30.0, 26.0, 55.0), KIDNEY))
    a, b = axes_at(50.0)
    organs.append(_Organ((0.0, -1.3 * b, 50.0), (45.0, 38.0, 38.0), BLADDER))
    return organs
