"""A frontal (and a lateral) drawing of the phantom's skeleton, for the DXA bone images.

Bones are soft 2-D primitives in body-local coordinates (u = x - x_shift in mm, zl = body height in mm, see
anatomy.py) whose densities add up where they overlap, as projected bone does. The arm and leg bones follow the
limbs' axes, so the drawing stays inside the body silhouette.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ukbb_pipeline.synthetic import anatomy
from ukbb_pipeline.synthetic.shapes import ellipse_distance, inside, slab

if TYPE_CHECKING:
    from ukbb_pipeline.synthetic.phantom import Phantom

BONE_EDGE = 1.2  # mm

PARTS = ("skull", "spine", "ribs", "shoulders", "arms", "pelvis", "legs")


def capsule(u: np.ndarray, zl: np.ndarray, start: tuple[float, float], end: tuple[float, float], radius: float):
    """Soft occupancy of a segment from ``start`` to ``end`` (u, zl) thickened by ``radius``."""
    du, dz = end[0] - start[0], end[1] - start[1]
    t = np.clip(((u - start[0]) * du + (zl - start[1]) * dz) / (du * du + dz * dz), 0.0, 1.0)
    distance = np.hypot(u - start[0] - t * du, zl - start[1] - t * dz)
    return inside(distance - radius, width=BONE_EDGE)


def box(u: np.ndarray, zl: np.ndarray, centre: tuple[float, float], half: tuple[float, float]) -> np.ndarray:
    """Soft rectangle."""
    return slab(u, centre[0] - half[0], centre[0] + half[0], width=BONE_EDGE) * slab(
        zl, centre[1] - half[1], centre[1] + half[1], width=BONE_EDGE
    )


def ellipse(u: np.ndarray, zl: np.ndarray, centre: tuple[float, float], axes: tuple[float, float]) -> np.ndarray:
    return inside(ellipse_distance(u - centre[0], zl - centre[1], axes[0], axes[1]), width=BONE_EDGE)


def _arm_axis(p: Phantom, zl: float) -> float:
    """Distance of the arm's axis from the body midline at height zl."""
    ws = p.width_scale
    z = np.float32(zl)
    return float(
        anatomy.interp(z, anatomy.TORSO_Z, anatomy.TORSO_A) * ws
        + anatomy.ARM_GAP
        + anatomy.interp(z, anatomy.ARM_Z, anatomy.ARM_R) * ws
    )


def _leg_axis(p: Phantom, zl: float) -> float:
    return float(anatomy.interp(np.float32(zl), anatomy.LEG_Z, anatomy.LEG_X)) * p.width_scale


def vertebrae(u: np.ndarray, zl: np.ndarray, *, top: float = 590.0, bottom: float = 95.0) -> np.ndarray:
    """Vertebral bodies separated by discs, widening from the neck (30 mm) to the low back (52 mm)."""
    density = np.zeros(np.broadcast_shapes(u.shape, zl.shape), dtype=np.float32)
    z = top
    while z > bottom:
        level = (top - z) / (top - bottom)
        height = 18.0 + 14.0 * level
        width = 30.0 + 22.0 * level
        density += box(u, zl, (0.0, z - height / 2), (width / 2, height / 2))
        z -= height + 7.0
    return density


def frontal_density(p: Phantom, u: np.ndarray, zl: np.ndarray, *, parts: tuple[str, ...] = PARTS) -> np.ndarray:
    """Projected bone density (about 1 for one cortical-rich bone) seen from the front, at (u, zl)."""
    u = np.asarray(u, dtype=np.float32)
    zl = np.asarray(zl, dtype=np.float32)
    ws = p.width_scale
    d = np.zeros(np.broadcast_shapes(u.shape, zl.shape), dtype=np.float32)
    if "skull" in parts:
        a, _, c = anatomy.HEAD_AXES
        d += 1.05 * ellipse(u, zl, (0.0, anatomy.HEAD_ZL + 5.0), (a - 6.0, c - 8.0))
        d += 0.5 * ellipse(u, zl, (0.0, anatomy.HEAD_ZL - 75.0), (48.0, 26.0))  # jaw
        d += 0.8 * capsule(u, zl, (0.0, 600.0), (0.0, 700.0), 11.0)  # cervical spine
    if "spine" in parts:  # along the MRI phantom's lateral curve (a scoliosis shows on the DXA too)
        d += 0.9 * vertebrae(u - anatomy.spine_curve(p, zl)[0], zl)
    if "ribs" in parts:
        a = float(anatomy.interp(np.float32(470.0), anatomy.TORSO_Z, anatomy.TORSO_A)) * ws - 18.0
        for i in range(12):
            z0 = 585.0 - 21.0 * i
            lateral = np.clip((np.abs(u) - 15.0) / (a - 15.0), 0.0, 1.0)
            curve = z0 - 60.0 * lateral**1.6
            d += 0.45 * inside(np.abs(zl - curve) - 5.0, width=BONE_EDGE) * slab(np.abs(u), 15.0, a)
    if "shoulders" in parts:
        for side in (-1.0, 1.0):
            d += 0.7 * capsule(u, zl, (side * 20.0, 600.0), (side * 148.0 * ws, 612.0), 7.0)  # clavicle
            d += 0.3 * ellipse(u, zl, (side * 105.0 * ws, 530.0), (42.0 * ws, 68.0))  # scapula
    if "arms" in parts:
        for side in (-1.0, 1.0):
            shoulder, elbow, wrist, hand = (_arm_axis(p, z) for z in (570.0, 265.0, 25.0, -90.0))
            d += 0.85 * capsule(u, zl, (side * shoulder, 575.0), (side * elbow, 270.0), 11.0)  # humerus
            d += 0.9 * ellipse(u, zl, (side * shoulder, 580.0), (22.0, 22.0))  # humeral head
            for offset in (-8.0, 8.0):  # radius and ulna
                d += 0.7 * capsule(u, zl, (side * elbow + offset, 255.0), (side * wrist + offset, 25.0), 5.5)
            d += 0.5 * ellipse(u, zl, (side * hand, -90.0), (20.0, 45.0))  # hand
    if "pelvis" in parts:
        d += 0.7 * ellipse(u, zl, (0.0, 65.0), (42.0, 48.0))  # sacrum
        for side in (-1.0, 1.0):
            wing = (side * 92.0 * ws, 125.0)
            d += 0.45 * ellipse(u, zl, wing, (58.0 * ws, 52.0))  # iliac wing
            d += 0.5 * (ellipse(u, zl, wing, (62.0 * ws, 56.0)) - ellipse(u, zl, wing, (52.0 * ws, 46.0)))  # rim
            d += 0.7 * capsule(u, zl, (side * 18.0, 12.0), (side * 75.0 * ws, 25.0), 8.0)  # pubic ramus
    if "legs" in parts:
        for side in (-1.0, 1.0):
            hip, knee, ankle = (_leg_axis(p, z) for z in (20.0, -345.0, -790.0))
            d += 1.0 * ellipse(u, zl, (side * 90.0 * ws, 42.0), (24.0, 24.0))  # femoral head
            d += 0.9 * capsule(u, zl, (side * 90.0 * ws, 42.0), (side * (hip + 30.0), 10.0), 14.0)  # femoral neck
            d += 0.9 * capsule(u, zl, (side * (hip + 30.0), 10.0), (side * knee, -320.0), 14.0)  # femur
            d += 0.9 * ellipse(u, zl, (side * knee, -342.0), (40.0 * ws, 22.0))  # condyles
            d += 0.35 * ellipse(u, zl, (side * knee, -328.0), (20.0, 22.0))  # patella
            d += 0.9 * capsule(u, zl, (side * knee, -368.0), (side * ankle, -780.0), 13.0)  # tibia
            d += 0.6 * capsule(u, zl, (side * (knee + 28.0), -380.0), (side * (ankle + 24.0), -770.0), 6.0)  # fibula
            d += 0.6 * ellipse(u, zl, (side * ankle, -825.0), (24.0, 30.0))  # ankle and foot
    return d


def lateral_density(v: np.ndarray, zl: np.ndarray) -> np.ndarray:
    """The spine seen from the side, at (v = y - y_rest, zl): vertebral bodies and their posterior elements."""
    v = np.asarray(v, dtype=np.float32)
    zl = np.asarray(zl, dtype=np.float32)
    bodies = vertebrae(v + 48.0, zl, top=560.0, bottom=100.0)  # on the MRI phantom's vertebral column
    posterior = 0.5 * capsule(v, zl, (-20.0, 100.0), (-20.0, 560.0), 8.0)  # spinous processes
    return 0.9 * bodies + posterior
