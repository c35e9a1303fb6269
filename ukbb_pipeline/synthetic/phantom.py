"""An analytic body on the scanner table, in DICOM patient coordinates (LPS millimetres, head first supine).

x increases towards the patient's left, y towards posterior, z towards the head. The phantom knows its true fat and
water signal everywhere, so every stage of the pipeline can be checked against it voxel by voxel.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ukbb_pipeline.synthetic import anatomy
from ukbb_pipeline.synthetic.shapes import slab

BED_THICKNESS = 24.0  # mm; the table plate, posterior to the body
BED_HALF_WIDTH = 235.0  # mm; the plate is centred on the scanner axis x = 0
BED_PAD = 3.0  # mm between the plate and the body's posterior surface (the mattress)
BED_SIGNAL = 400.0  # base signal of the plate
BED_FAT_FACTOR = 0.6  # bed_fat = BED_FAT_FACTOR * bed
BED_WATER_FACTOR = 0.9  # bed_water = BED_WATER_FACTOR * bed
GRID_CHUNK = 80_000  # points evaluated at once by Phantom.grid


@dataclass(frozen=True)
class Phantom:
    """One synthetic participant: body size, position and composition (all lengths in mm).

    ``x_shift`` moves the body's midline off the scanner axis; ``table_y`` is the LPS y of the table's top surface,
    on which the body rests (so a deeper body has its centre further anterior); ``z_shift`` and ``height_scale``
    place and stretch the body along z (crotch at z = ``z_shift``). ``fat_scale`` multiplies the subcutaneous fat
    thickness (never below 10 mm), ``belly`` (mm) deepens the abdomen, ``visceral_fat`` (0-1) sets how fat-rich
    the abdomen is, ``liver_fat`` is the liver's fat fraction. ``fat_signal`` is the fat image's value in pure fat;
    ``water_signal`` the water image's value in pure water (muscle shows 0.92 of it). The body's position thus
    varies by a few cm in x (``x_shift``), in y (table height and body depth) and in z (``z_shift``).

    The spine (anatomy.spine_curve; truth: :meth:`spine_centre`) lies ``spine_depth`` mm deeper than the back's fat
    layer, ``lordosis`` mm deeper at the low back, ``kyphosis`` mm shallower mid-thorax, ``cervical_lordosis`` mm
    deeper in the neck; ``scoliosis`` and ``scoliosis_s`` are the amplitudes (mm) of a C- and an S-shaped lateral curve.

    Signals are on a uint16-like scale (body up to ~1500, air < 0.5) and every edge is a ~6 mm logistic ramp, so
    linear interpolation between samples 2-4.5 mm apart is accurate. The table is separate: see :meth:`bed`.
    """

    x_shift: float = 0.0
    table_y: float = 132.0
    z_shift: float = 0.0
    height_scale: float = 1.0
    width_scale: float = 1.0
    depth_scale: float = 1.0
    fat_scale: float = 1.0
    belly: float = 15.0
    visceral_fat: float = 0.55
    liver_fat: float = 0.06
    fat_signal: float = 1000.0
    water_signal: float = 720.0
    spine_depth: float = 42.0
    lordosis: float = 18.0
    kyphosis: float = 12.0
    cervical_lordosis: float = 8.0
    scoliosis: float = 0.0
    scoliosis_s: float = 0.0

    @classmethod
    def random(cls, seed: int) -> Phantom:
        """A plausible random participant; the same seed gives the same phantom."""
        rng = np.random.default_rng([seed, 7001])
        return cls(
            x_shift=float(rng.uniform(-25.0, 25.0)),
            table_y=float(rng.uniform(126.0, 138.0)),
            z_shift=float(rng.uniform(-30.0, 30.0)),
            height_scale=float(rng.uniform(0.94, 1.06)),
            width_scale=float(rng.uniform(0.9, 1.1)),
            depth_scale=float(rng.uniform(0.9, 1.12)),
            fat_scale=float(rng.uniform(0.6, 1.8)),
            belly=float(rng.uniform(0.0, 35.0)),
            visceral_fat=float(rng.uniform(0.3, 0.85)),
            liver_fat=float(rng.uniform(0.02, 0.2)),
            fat_signal=float(rng.uniform(900.0, 1150.0)),
            water_signal=float(rng.uniform(620.0, 820.0)),
            spine_depth=float(rng.uniform(36.0, 50.0)),
            lordosis=float(rng.uniform(6.0, 30.0)),
            kyphosis=float(rng.uniform(4.0, 20.0)),
            cervical_lordosis=float(rng.uniform(0.0, 15.0)),
            scoliosis=float(rng.choice([0.0, 1.0]) * rng.uniform(-18.0, 18.0)),
            scoliosis_s=float(rng.choice([0.0, 0.0, 1.0]) * rng.uniform(-10.0, 10.0)),
        )

    def as_dict(self) -> dict[str, float]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @property
    def y_rest(self) -> float:
        """LPS y of the body's posterior surface (it lies on the table's mattress)."""
        return self.table_y - BED_PAD

    @property
    def head_top_z(self) -> float:
        """LPS z of the top of the head."""
        return self.z_shift + self.height_scale * (anatomy.HEAD_ZL + anatomy.HEAD_AXES[2])

    @property
    def feet_z(self) -> float:
        """LPS z of the soles of the feet."""
        return self.z_shift + self.height_scale * anatomy.LEG_CAPS[0]

    def spine_centre(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LPS (x, y) mm of the vertebral bodies' centre at slice positions ``z`` (the spine's truth)."""
        zl = (np.asarray(z, dtype=np.float32) - np.float32(self.z_shift)) / np.float32(self.height_scale)
        lateral, depth = anatomy.spine_curve(self, zl)
        return lateral + np.float32(self.x_shift), np.float32(self.y_rest) - depth

    def trunk_spine_z(self) -> tuple[float, float]:
        """LPS z (low, high) of the trunk's spine, L5 to C7: where a spine tracker is judged."""
        low, high = anatomy.TRUNK_SPINE_ZL
        return self.z_shift + self.height_scale * low, self.z_shift + self.height_scale * high

    def signals(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """True (fat, water) signal of the body alone (no table), float32, broadcast over x, y, z."""
        return anatomy.body_signals(self, x, y, z)

    def fat(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """True fat signal of the body alone (no table); 0 in air."""
        return self.signals(x, y, z)[0]

    def water(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """True water signal of the body alone (no table); 0 in air."""
        return self.signals(x, y, z)[1]

    def bed(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Base signal of the table plate (the body excluded), float32.

        The fat image sees ``BED_FAT_FACTOR`` times it and the water image ``BED_WATER_FACTOR`` times it.
        """
        x, y, z = (np.asarray(v, dtype=np.float32) for v in (x, y, z))
        plate = slab(y, self.table_y, self.table_y + BED_THICKNESS) * slab(x, -BED_HALF_WIDTH, BED_HALF_WIDTH)
        shape = np.broadcast_shapes(x.shape, y.shape, z.shape)
        return np.broadcast_to(np.float32(BED_SIGNAL) * plate, shape).astype(np.float32)

    def bed_fat(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.float32(BED_FAT_FACTOR) * self.bed(x, y, z)

    def bed_water(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.float32(BED_WATER_FACTOR) * self.bed(x, y, z)

    def body_mask(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Whether each point is inside the body (its soft occupancy is above one half; the lungs are inside)."""
        return anatomy.body_occupancy(self, x, y, z) > 0.5

    def grid(
        self,
        *,
        xs: np.ndarray,
        ys: np.ndarray,
        zs: np.ndarray,
        include_bed: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(fat, water) on the grid of 1-D coordinates xs, ys, zs, each of shape (len(zs), len(ys), len(xs)).

        Evaluated a few slices at a time, which keeps memory small and lets absent limbs and organs be skipped.
        """
        xs, ys, zs = (np.asarray(v, dtype=np.float32).ravel() for v in (xs, ys, zs))
        shape = (zs.size, ys.size, xs.size)
        fat = np.empty(shape, dtype=np.float32)
        water = np.empty(shape, dtype=np.float32)
        step = max(1, GRID_CHUNK // max(1, ys.size * xs.size))
        x3, y3 = xs[None, None, :], ys[None, :, None]
        for start in range(0, zs.size, step):
            z3 = zs[start : start + step, None, None]
            fat[start : start + step], water[start : start + step] = self.signals(x3, y3, z3)
        if include_bed:
            plate = self.bed(x3, y3, zs[:1, None, None])
            fat += np.float32(BED_FAT_FACTOR) * plate
            water += np.float32(BED_WATER_FACTOR) * plate
        return fat, water

    def coronal_fat_profile(
        self, *, ys: np.ndarray, x: np.ndarray, z: np.ndarray, include_bed: bool = False
    ) -> np.ndarray:
        """Fat summed over the x and z grid points, for each coronal row y in ``ys`` (1-D, float64)."""
        fat, _ = self.grid(xs=x, ys=ys, zs=z, include_bed=include_bed)
        return fat.sum(axis=(0, 2), dtype=np.float64)

    def mid_coronal_index(self, *, ys: np.ndarray, x: np.ndarray, z: np.ndarray, include_bed: bool = False) -> int:
        """Index into ``ys`` of the mid-coronal row, by the original scripts' rule.

        With s_j the fat summed over all (x, z) grid points of row j (rows in the order of ``ys``) and C_j its
        cumulative sum, the row is ``argmin_j |C_j / C_last - 0.5|`` (first such j on ties): the row at which the
        cumulative fat reaches half of the total, i.e. a weighted median of y. The body alone by default; the
        table's fat signal is added with ``include_bed=True``.
        """
        profile = self.coronal_fat_profile(ys=ys, x=x, z=z, include_bed=include_bed)
        cumulative = np.cumsum(profile)
        return int(np.abs(cumulative / cumulative[-1] - 0.5).argmin())

    def mid_coronal_y(self, *, ys: np.ndarray, x: np.ndarray, z: np.ndarray, include_bed: bool = False) -> float:
        """LPS y (mm) of the row chosen by :meth:`mid_coronal_index` on the given grid."""
        ys = np.asarray(ys, dtype=np.float64).ravel()
        return float(ys[self.mid_coronal_index(ys=ys, x=x, z=z, include_bed=include_bed)])
