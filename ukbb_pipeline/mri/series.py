"""One Dixon series as a volume in physical order, whatever order its files came in.

Slices are sorted by their position along the slice normal (the cross product of the ImageOrientationPatient row and
column directions), never by file order, InstanceNumber or the manifest. The volume is then laid out the same way for
every series: axis 0 runs head to feet (LPS z decreasing), axis 1 anterior to posterior (y increasing), axis 2 right
to left (x increasing); the actual slice positions are kept, so a missing slice leaves a wider gap that resampling
bridges from the real neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ukbb_pipeline.dicomio.zipread import _label
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.mri.header import SliceHeader
from ukbb_pipeline.mri.tolerance import tolerance

AXIS_TOLERANCE = 0.999  # |cosine| between an orientation vector and a patient axis to call them aligned
GAP_FACTOR = 1.5  # a step over 1.5x the median slice step is a gap (missing slices)


@dataclass(eq=False)
class Series:
    """The slices of one series (one channel of one acquisition of one station), stacked head first."""

    uid: str
    number: int | None
    description: str
    channel: str
    acquired: str
    volume: np.ndarray  # (slices, rows y, columns x), head first
    z: np.ndarray  # LPS z (mm) of each slice, strictly decreasing
    x0: float  # LPS x (mm) of column 0
    y0: float  # LPS y (mm) of row 0
    sx: float  # column spacing (mm)
    sy: float  # row spacing (mm)
    missing_slices: int = 0  # slices missing inside the series, bridged from their neighbours
    notes: list[str] = field(default_factory=list)
    image_type: str = ""  # ImageType, backslash-separated
    acquisition_number: int | None = None  # AcquisitionNumber shared by its slices (None: absent or mixed)
    acquisition_time: str = ""  # the earliest AcquisitionDate/Time of its slices, sortable ("" when absent)
    patient_position: str = ""  # PatientPosition (HFS, FFS, ...)

    @property
    def label(self) -> str:
        number = "?" if self.number is None else self.number
        return f"series {number} ({self.description})"

    @property
    def z_top(self) -> float:
        return float(self.z[0])

    @property
    def z_bottom(self) -> float:
        return float(self.z[-1])

    @property
    def z_step(self) -> float:
        """The typical distance between slices (median), in mm."""
        return float(np.median(-np.diff(self.z))) if self.z.size > 1 else 0.0

    @property
    def x_end(self) -> float:
        return self.x0 + (self.volume.shape[2] - 1) * self.sx

    @property
    def y_end(self) -> float:
        return self.y0 + (self.volume.shape[1] - 1) * self.sy

    def crop(self, *, z: slice, y: slice, x: slice) -> Series:
        """The part of this series at slice, row and column ranges (a view, no copy)."""
        rows = np.arange(self.volume.shape[1])[y]
        columns = np.arange(self.volume.shape[2])[x]
        return Series(
            uid=self.uid,
            number=self.number,
            description=self.description,
            channel=self.channel,
            acquired=self.acquired,
            volume=self.volume[z, y, x],
            z=self.z[z],
            x0=self.x0 + int(columns[0]) * self.sx if columns.size else self.x0,
            y0=self.y0 + int(rows[0]) * self.sy if rows.size else self.y0,
            sx=self.sx,
            sy=self.sy,
            missing_slices=_count_missing(self.z[z]),
            notes=list(self.notes),
            image_type=self.image_type,
            acquisition_number=self.acquisition_number,
            acquisition_time=self.acquisition_time,
            patient_position=self.patient_position,
        )

    def replace_volume(self, volume: np.ndarray, z: np.ndarray) -> Series:
        """This series with other slices (same in-plane grid), e.g. spliced from two acquisitions."""
        return Series(
            uid=self.uid, number=self.number, description=self.description, channel=self.channel,
            acquired=self.acquired, volume=volume, z=z, x0=self.x0, y0=self.y0, sx=self.sx, sy=self.sy,
            missing_slices=_count_missing(z), notes=list(self.notes), image_type=self.image_type,
            acquisition_number=self.acquisition_number, acquisition_time=self.acquisition_time,
            patient_position=self.patient_position,
        )


def build_series(headers: Sequence[SliceHeader], images: Sequence[np.ndarray]) -> Series:
    """Stack the slices of one series in physical order, with the geometry of the stacked volume.

    Raises :class:`InputError` when the slices disagree on size, orientation or spacing, are not axial, are not
    stacked along their normal, or are fewer than two.
    """
    first = headers[0]
    label = f"series {first.series_number if first.series_number is not None else '?'} ({first.description})"
    if len(headers) < 2:
        raise InputError(f"{label} has {len(headers)} slice; at least 2 are needed to place it in z")
    if any((h.rows, h.columns) != (first.rows, first.columns) for h in headers):
        raise InputError(f"{label} mixes image sizes")
    orientations = np.array([h.orientation for h in headers], dtype=np.float64)
    spacings = np.array([h.spacing for h in headers], dtype=np.float64)
    if np.abs(orientations - orientations[0]).max() > 1e-3:
        raise InputError(f"{label} mixes slice orientations")
    if np.abs(spacings / spacings[0] - 1).max() > 1e-4:
        raise InputError(f"{label} mixes pixel spacings")

    row_dir, column_dir = _unit(orientations[0, :3]), _unit(orientations[0, 3:])
    normal = np.cross(row_dir, column_dir)
    if abs(normal[2]) < AXIS_TOLERANCE:
        raise InputError(
            f"{label} is not axial (slice normal {np.round(normal, 3).tolist()}); only axial Dixon is read"
        )
    row_axis, column_axis = _axis(row_dir, label), _axis(column_dir, label)  # 0 = x, 1 = y
    if row_axis == column_axis:
        raise InputError(f"{label} has a degenerate ImageOrientationPatient")

    positions = np.array([h.position for h in headers], dtype=np.float64)
    along_normal = positions @ normal
    order = np.argsort(-along_normal * np.sign(normal[2]), kind="stable")  # head (largest z) first
    positions, along_normal = positions[order], along_normal[order]
    notes = []
    steps = np.abs(np.diff(along_normal))
    duplicate = np.concatenate([[False], steps < tolerance(max(float(np.median(steps)), 1e-6))])
    if duplicate.any():  # the same file twice is harmless; two different images at one place are not
        for index in np.flatnonzero(duplicate):
            kept, dropped = order[index - 1], order[index]
            if not np.array_equal(images[kept], images[dropped]):
                raise InputError(
                    f"{label}: two different slices at one position (z {positions[index, 2]:.2f} mm): "
                    f"members {_label(headers[kept].name)} and {_label(headers[dropped].name)}"
                )
        notes.append(f"{label}: {int(duplicate.sum())} duplicate slice position(s) dropped (identical images)")
        order, positions = order[~duplicate], positions[~duplicate]
        if order.size < 2:
            raise InputError(f"{label} has all its slices at one position")

    # In-plane: every slice must start at the same point of the plane (otherwise it is not one stack).
    in_plane = positions @ np.stack([row_dir, column_dir], axis=1)
    pixel = spacings[0]  # (between rows, between columns)
    if (np.abs(in_plane - in_plane[0]).max(axis=0) > tolerance(1.0) * pixel[::-1]).any():
        raise InputError(f"{label}: slices are not stacked (their in-plane positions differ)")

    volume = np.stack([images[index] for index in order])
    rescales = [headers[index].rescale for index in order]
    if any(rescale is not None for rescale in rescales):  # each slice its own (Philips writes them per slice)
        slope, intercept = (np.array([r[i] if r is not None else float(i == 0) for r in rescales], np.float32)
                            for i in (0, 1))
        volume = volume.astype(np.float32) * slope[:, None, None] + intercept[:, None, None]

    # Lay the volume out as (z, y, x) with y and x increasing, and find the LPS corner of voxel [:, 0, 0].
    # Column index c moves along row_dir by spacing[1]; row index r along column_dir by spacing[0].
    if row_axis == 1:  # columns run along y: transpose so that the last axis is x
        volume = volume.transpose(0, 2, 1)
        x_dir, y_dir, sx, sy = column_dir, row_dir, float(pixel[0]), float(pixel[1])
    else:
        x_dir, y_dir, sx, sy = row_dir, column_dir, float(pixel[1]), float(pixel[0])
    corner = positions[0]
    nx, ny = volume.shape[2], volume.shape[1]
    x0, y0 = float(corner[0]), float(corner[1])
    if x_dir[0] < 0:
        volume = volume[:, :, ::-1]
        x0 -= (nx - 1) * sx
    if y_dir[1] < 0:
        volume = volume[:, ::-1, :]
        y0 -= (ny - 1) * sy
    volume = np.ascontiguousarray(volume)
    z = positions[:, 2].copy()

    missing = _count_missing(z)
    if missing:
        notes.append(f"{label}: {missing} missing slice(s) bridged from the neighbouring slices")
    return Series(
        uid=first.series_uid,
        number=first.series_number,
        description=first.description,
        channel=str(first.channel),
        acquired=max(h.acquired for h in headers),
        volume=volume,
        z=z,
        x0=x0,
        y0=y0,
        sx=sx,
        sy=sy,
        missing_slices=missing,
        notes=notes,
        image_type=first.image_type,
        acquisition_number=first.acquisition_number if len({h.acquisition_number for h in headers}) == 1 else None,
        acquisition_time=min((h.acquisition_time for h in headers if h.acquisition_time), default=""),
        patient_position=first.patient_position,
    )


def _count_missing(z: np.ndarray) -> int:
    """Slices missing between those at ``z`` (steps of more than 1.5x the median step)."""
    if z.size < 3:
        return 0
    steps = -np.diff(z)
    typical = float(np.median(steps))
    gaps = steps[steps > GAP_FACTOR * typical]
    return int(np.rint(gaps / typical).sum() - gaps.size)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if norm < 1e-6:
        raise InputError("ImageOrientationPatient has a zero vector")
    return vector / norm


def _axis(direction: np.ndarray, label: str) -> int:
    """The patient axis (0 = x, 1 = y) an in-plane direction runs along; an error for oblique planes."""
    axis = int(np.argmax(np.abs(direction[:2])))
    if abs(direction[axis]) < AXIS_TOLERANCE:
        raise InputError(f"{label} is oblique (direction {np.round(direction, 3).tolist()}); only axis-aligned is read")
    return axis
