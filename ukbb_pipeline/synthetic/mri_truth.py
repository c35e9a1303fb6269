"""The truth about a synthetic MRI zip: what each station holds and how to sample the phantom on any grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ukbb_pipeline.synthetic import acquisition
from ukbb_pipeline.synthetic.identity import Visit
from ukbb_pipeline.synthetic.phantom import Phantom
from ukbb_pipeline.synthetic.quirks import MriQuirks
from ukbb_pipeline.synthetic.stations import StationGeometry
from ukbb_pipeline.synthetic.truth import sample_truth


@dataclass(frozen=True)
class StationTruth:
    """One acquisition of one station as written to the zip.

    ``geometry`` is the voxel grid (pixel [r, c] of slice k at LPS (x0 + c*ps, y0 + r*ps, z[k]), slice 0 the most
    superior); ``shapes`` the written (slices, Rows, Columns) per channel; ``dropped`` the slice indices left out
    per channel. Pixel values are ``expected(channel)`` plus magnitude noise, rounded and clipped to 0-4095.
    """

    station: int
    geometry: StationGeometry
    series_numbers: dict[str, int]
    series_times: dict[str, str]
    gain: float
    edge_factors: tuple[float, ...]
    swapped: bool
    corrupted: bool
    shapes: dict[str, tuple[int, int, int]]
    dropped: dict[str, tuple[int, ...]]
    phantom: Phantom = field(repr=False)
    swapped_region: tuple[str, int, int] | None = None  # (left|right|both, first slice, end slice) F/W exchanged
    kept_slices: int | None = None  # an aborted acquisition: only the first (most superior) slices were written

    def region_mask(self) -> np.ndarray | None:
        """(slices, Rows, Columns) True where F and W are exchanged by ``swapped_region`` (None without one)."""
        if self.swapped_region is None:
            return None
        return swap_region_mask(self.geometry, self.swapped_region, midline=self.phantom.x_shift)

    @property
    def origin(self) -> tuple[float, float, float]:
        """LPS of pixel [0, 0] of the most superior slice (its ImagePositionPatient)."""
        return self.geometry.position(0)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(column spacing x, row spacing y, slice spacing z) in mm."""
        g = self.geometry
        return (g.pixel_spacing, g.pixel_spacing, g.thickness)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, Rows, Columns) of the full station grid."""
        g = self.geometry
        return (g.n_slices, g.rows, g.columns)

    def expected(self, channel: str) -> np.ndarray:
        """The noise-free float32 image (slices, Rows, Columns) this station's ``channel`` series encodes.

        Body and table, times the gain and slab-edge factors, fat and water exchanged when swapped; cropped like
        the written series (but with dropped slices kept).
        """
        source = {"F": "W", "W": "F"}.get(channel, channel) if self.swapped else channel
        factors = None if all(f == 1.0 for f in self.edge_factors) else np.asarray(self.edge_factors)
        images = acquisition.clean_channels(
            self.phantom, self.geometry, gain=self.gain, factors=factors, corrupted=self.corrupted
        )
        _, rows, columns = self.shapes[channel]
        image = images[source]
        mask = self.region_mask()
        if mask is not None and channel in ("F", "W"):
            image = np.where(mask, images["W" if source == "F" else "F"], image)
        return image[:, :rows, :columns]


def swap_region_mask(geometry: StationGeometry, region: tuple[str, int, int], *, midline: float) -> np.ndarray:
    """Where a regional swap (side, first slice, end slice) lies on a station's voxel grid: the slices, and the
    columns on that side of the body's midline (LPS x above it is the patient's left)."""
    side, first, end = region
    columns = np.ones(geometry.columns, dtype=bool)
    if side == "left":
        columns = geometry.xs > midline
    elif side == "right":
        columns = geometry.xs <= midline
    mask = np.zeros((geometry.n_slices, geometry.rows, geometry.columns), dtype=bool)
    mask[first:end, :, :] = columns[None, None, :]
    return mask


@dataclass(frozen=True)
class MriTruth:
    """What a synthetic MRI zip holds, and the phantom it was made from.

    ``stations`` are the acquisitions a correct reader keeps (one per present station, head to knee: for a
    repeated station the later one); ``discarded`` the superseded, motion-corrupted ones.
    """

    path: Path
    eid: int
    instance: int
    size: str
    seed: int
    phantom: Phantom
    quirks: MriQuirks
    visit: Visit
    study_uid: str
    stations: tuple[StationTruth, ...]
    discarded: tuple[StationTruth, ...]
    members: tuple[str, ...]

    @property
    def n_dicoms(self) -> int:
        return sum(1 for name in self.members if name.endswith(".dcm"))

    @property
    def swapped_stations(self) -> tuple[int, ...]:
        return tuple(s.station for s in self.stations if s.swapped or s.swapped_region is not None)

    @property
    def station_numbers(self) -> tuple[int, ...]:
        return tuple(s.station for s in self.stations)

    def station(self, number: int) -> StationTruth:
        for truth in self.stations:
            if truth.station == number:
                return truth
        raise KeyError(f"station {number} is not in this zip")

    @property
    def repeated_station(self) -> int | None:
        return self.quirks.repeated_station

    @property
    def missing_station(self) -> int | None:
        return self.quirks.missing_station

    @property
    def dropped_slice(self) -> tuple[int, int] | None:
        return self.quirks.dropped_slice

    @property
    def size_mismatch_station(self) -> int | None:
        return self.quirks.size_mismatch_station

    @property
    def z_range(self) -> tuple[float, float]:
        """(lowest, highest) slice-centre z over the kept stations (mm)."""
        zs = [z for s in self.stations for z in s.geometry.z]
        return (min(zs), max(zs))

    def covering_grid(self, *, z_spacing: float | None = None) -> dict[str, tuple]:
        """An output grid (``origin``, ``spacing``, ``shape`` as :meth:`sample` takes them) spanning all stations.

        x: the 224 (56 small) columns; y: the rows of the deepest field of view; z: from the highest slice centre
        down to the lowest in steps of ``z_spacing`` (default: the in-plane spacing), head to feet.
        """
        deepest = max(self.stations, key=lambda s: s.geometry.rows).geometry
        sz = float(z_spacing or deepest.pixel_spacing)
        low, high = self.z_range
        return {
            "origin": (deepest.x0, deepest.y0, high),
            "spacing": (deepest.pixel_spacing, deepest.pixel_spacing, sz),
            "shape": (deepest.columns, deepest.rows, int(np.floor((high - low) / sz + 1e-9)) + 1),
        }

    def sample(
        self,
        *,
        origin: tuple[float, float, float],
        spacing: tuple[float, float, float],
        shape: tuple[int, int, int],
        channel: str = "fat",
        include_bed: bool = False,
    ) -> np.ndarray:
        """The true ``channel`` on an output grid (array axes x, y, z; see :func:`sample_truth`)."""
        return sample_truth(
            self.phantom, origin=origin, spacing=spacing, shape=shape, channel=channel, include_bed=include_bed
        )
