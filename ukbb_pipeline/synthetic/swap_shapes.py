"""Fat/water swaps of many shapes, drawn independently of any detector: where a station's F and W are exchanged.

Real swaps are voxel-level and sit mostly at the field of view's edges (arms, flanks), where B0 is worst (Basty et
al. 2021). A shape here is a function of LPS position (mm) giving True where the station's fat and water images are
exchanged; it is drawn from the phantom's anatomy (where its body, arms and flanks are) and a random generator, with
no knowledge of how a detector judges swaps. Kinds:

- ``blob``: an ellipsoid of 25-70 mm semi-axes centred in the body, at random, half of them near the lateral edge;
- ``strip``: a lateral strip of 10-30 % of the body's width at one side, over 40-100 % of the station's z range;
- ``arm``: one arm (everything lateral of the trunk's edge on one side) over the station's z range;
- ``irregular``: a smoothed random field thresholded into one or more irregular patches (a few % to a third of
  the body), the body's edge regions favoured.

:func:`draw_shape` returns a :class:`SwapShape`; its :meth:`SwapShape.mask` gives the mask on any voxel grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ukbb_pipeline.synthetic import anatomy
from ukbb_pipeline.synthetic.phantom import Phantom

KINDS = ("blob", "strip", "arm", "irregular")


@dataclass(frozen=True)
class SwapShape:
    """One swapped region of a station: its kind, a description, and the parameters of its mask."""

    kind: str
    station: int
    description: str
    z_range: tuple[float, float]  # LPS z (low, high) the shape may touch
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0)
    axes: tuple[float, float, float] = (1.0, 1.0, 1.0)
    x_range: tuple[float, float] = (0.0, 0.0)  # strips and arms: LPS x (low, high)
    field_seed: int = 0
    threshold: float = 0.0
    body_half_width: float = 150.0
    midline: float = 0.0
    extras: dict = field(default_factory=dict)

    def mask(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """True where F and W are exchanged, at LPS points (x, y, z) (broadcast)."""
        x, y, z = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, y, z)))
        within = (z >= self.z_range[0]) & (z <= self.z_range[1])
        if self.kind == "blob":
            d = sum(((v - c) / a) ** 2 for v, c, a in zip((x, y, z), self.centre, self.axes, strict=True))
            return within & (d <= 1.0)
        if self.kind in ("strip", "arm"):
            return within & (x >= self.x_range[0]) & (x <= self.x_range[1])
        if self.kind == "irregular":
            return within & (_field(self.field_seed, x - self.midline, y, z) > self.threshold)
        raise ValueError(f"unknown swap shape {self.kind!r}")


def _field(seed: int, u: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """A smooth random field of LPS position (sum of random plane waves, ~60-150 mm wavelengths), in [-1, 1]."""
    rng = np.random.default_rng([seed, 4242])
    value = np.zeros(u.shape)
    for _ in range(8):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        wavelength = rng.uniform(60.0, 150.0)
        phase = rng.uniform(0, 2 * np.pi)
        value += np.cos((direction[0] * u + direction[1] * y + direction[2] * z) * 2 * np.pi / wavelength + phase)
    edge = np.clip(np.abs(u) / 150.0, 0.0, 1.5)  # the body's edges favoured
    return value / 8 * 2.0 + 0.35 * edge


def draw_shape(kind: str, *, phantom: Phantom, station: int, z_range: tuple[float, float],
               rng: np.random.Generator) -> SwapShape:
    """A random swap of ``kind`` in a station covering LPS z ``z_range`` (low, high)."""
    low, high = z_range
    mid_z = (low + high) / 2
    zl = (mid_z - phantom.z_shift) / phantom.height_scale
    half_width = float(anatomy.torso_axes(phantom, np.float32(zl))[0])
    depth = float(anatomy.torso_axes(phantom, np.float32(zl))[1])
    legs = zl < 0
    if legs:  # the two legs: the body's half-width is the outer edge of a leg
        radius = float(anatomy.interp(np.float32(zl), anatomy.LEG_Z, anatomy.LEG_R)) * phantom.width_scale
        offset = float(anatomy.interp(np.float32(zl), anatomy.LEG_Z, anatomy.LEG_X)) * phantom.width_scale
        half_width = offset + radius
        depth = radius
    side = float(rng.choice([-1.0, 1.0]))
    name = "left" if side > 0 else "right"
    x0 = phantom.x_shift
    if kind == "blob":
        axes = tuple(float(a) for a in rng.uniform([25, 25, 25], [70, 60, 70]))
        lateral = rng.uniform(0.5, 0.9) if rng.random() < 0.5 else rng.uniform(-0.9, 0.9)
        centre = (x0 + side * abs(lateral) * half_width if lateral > 0 else x0 + lateral * half_width,
                  phantom.y_rest - depth * float(rng.uniform(0.4, 1.6)),
                  float(rng.uniform(low + 0.2 * (high - low), high - 0.2 * (high - low))))
        return SwapShape("blob", station, f"blob {axes[0]:.0f}x{axes[1]:.0f}x{axes[2]:.0f} mm", (low, high),
                         centre=centre, axes=axes)  # type: ignore[arg-type]
    if kind == "strip":
        share = float(rng.uniform(0.10, 0.30))
        extent = float(rng.uniform(0.4, 1.0)) * (high - low)
        top = float(rng.uniform(low + extent, high))
        inner = half_width * (1 - 2 * share)  # a share of the whole width, from the outer edge
        x_range = (x0 + inner, x0 + 1000.0) if side > 0 else (x0 - 1000.0, x0 - inner)
        return SwapShape("strip", station, f"{name} strip {share:.0%} of the width", (top - extent, top),
                         x_range=x_range, body_half_width=half_width)
    if kind == "arm":
        edge = float(anatomy.interp(np.float32(zl), anatomy.TORSO_Z, anatomy.TORSO_A)) * phantom.width_scale
        reach = edge + anatomy.ARM_GAP / 2
        x_range = (x0 + reach, x0 + 1000.0) if side > 0 else (x0 - 1000.0, x0 - reach)
        return SwapShape("arm", station, f"{name} arm", (low, high), x_range=x_range)
    if kind == "irregular":
        seed = int(rng.integers(0, 2**31))
        threshold = float(rng.uniform(0.45, 0.8))
        return SwapShape("irregular", station, f"irregular patches (threshold {threshold:.2f})", (low, high),
                         field_seed=seed, threshold=threshold, midline=x0)
    raise ValueError(f"unknown swap shape {kind!r}; kinds: {', '.join(KINDS)}")
