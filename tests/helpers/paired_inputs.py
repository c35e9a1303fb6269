"""Stage outputs with a known truth, for testing ``collect`` and the reader without running the earlier stages.

MRI slabs and DXA images are sampled from smooth analytic images (a fat and a water blob in LPS millimetres, a bone
and a tissue blob in DXA millimetres) and written through the real writers with the attributes the earlier stages
write, so every collected pixel can be checked against the truth at its physical position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ukbb_pipeline.formats import Hdf5Writer, Output, PickleWriter, Writer
from ukbb_pipeline.runtime.folders import StageFolders

SLAB_SPACING = (2.232, 4.464, 3.0)  # sx, sy * row step, sz (mm)
SLAB_SHAPE = (224, 11, 150)  # x, coronal rows, z
DXA_SPACING = (2.4, 2.42)  # row, column (mm)
DXA_SHAPE = (400, 136)


@dataclass(frozen=True)
class Visit:
    eid: int
    instance: int = 2

    @property
    def centre(self) -> tuple[float, float]:
        """LPS (x, z) of this visit's fat blob: different per participant."""
        return -20.0 + (self.eid % 5) * 10.0, -150.0 - (self.eid % 3) * 25.0


def mri_truth(visit: Visit, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fat, water) at LPS (x, y, z) mm; broad blobs, so that a 2-3 mm grid samples them finely."""
    cx, cz = visit.centre
    fat = 900.0 * np.exp(-((x - cx) ** 2 / (2 * 60.0**2) + (z - cz) ** 2 / (2 * 120.0**2))) * (1 + 0.002 * y)
    water = 600.0 * np.exp(-((x + cx) ** 2 / (2 * 80.0**2) + (z - cz - 80.0) ** 2 / (2 * 100.0**2))) + 50.0 + 0 * y
    return fat, water


def dxa_truth(visit: Visit, rows_mm: np.ndarray, columns_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bone, tissue) at (row, column) mm from the centre of the stored image's pixel [0, 0]."""
    centre_row = 400.0 + (visit.eid % 4) * 30.0
    bone = 200.0 * np.exp(-((rows_mm - centre_row) ** 2 / (2 * 150.0**2) + (columns_mm - 160.0) ** 2 / (2 * 30.0**2)))
    tissue = 150.0 * np.exp(-((rows_mm - centre_row) ** 2 / (2 * 300.0**2) + (columns_mm - 165.0) ** 2 / (2 * 90.0**2)))
    return bone, tissue


GEOMETRY = ("mri_origin", "mri_pixel_spacing", "dxa_origin", "dxa_pixel_spacing")


def check_item(mri: np.ndarray, dxa: np.ndarray, visit: Visit, *, mri_origin: np.ndarray,
               mri_pixel_spacing: np.ndarray, dxa_origin: np.ndarray, dxa_pixel_spacing: np.ndarray) -> None:
    """Every collected pixel (raw intensities) inside the source images equals the truth at its physical position."""
    (x0, y0, z0), (row_mm, column_mm) = mri_origin, mri_pixel_spacing
    rows, columns = np.arange(mri.shape[1])[:, None], np.arange(mri.shape[2])[None, :]
    x, z = x0 + columns * column_mm, z0 - rows * row_mm
    fat, water = mri_truth(visit, x, y0, z)
    top = slab_origin(visit)[2]
    inside = (z <= top - 6) & (z >= top - (SLAB_SHAPE[2] - 1) * SLAB_SPACING[2] + 6) & (np.abs(x) < 240)
    assert inside.sum() > 10_000
    assert np.abs(mri[0] - fat)[inside].max() < 2.5  # of 900: uint16 rounding and cubic convolution's smoothing
    assert np.abs(mri[1] - water)[inside].max() < 2.5
    assert mri[0][inside].max() > 850  # the blob is there, where the truth has it

    (r0, c0), (dr, dc) = dxa_origin, dxa_pixel_spacing
    rows_mm, columns_mm = r0 + np.arange(dxa.shape[1])[:, None] * dr, c0 + np.arange(dxa.shape[2])[None, :] * dc
    bone, tissue = dxa_truth(visit, rows_mm, columns_mm)
    inside = ((rows_mm >= 5) & (rows_mm <= (DXA_SHAPE[0] - 1) * DXA_SPACING[0] - 5)
              & (columns_mm >= 5) & (columns_mm <= (DXA_SHAPE[1] - 1) * DXA_SPACING[1] - 5))
    assert np.abs(dxa[0] - bone)[inside].max() < 1.2  # uint8 rounding
    assert np.abs(dxa[1] - tissue)[inside].max() < 1.2


def slab_origin(visit: Visit) -> np.ndarray:
    return np.array([-250.0 + SLAB_SPACING[0] / 2, 20.0 - 5 * SLAB_SPACING[1], 120.0 + visit.instance])


def write_slab(folder: Path, visit: Visit, *, writer: Writer | None = None, flags: dict | None = None) -> Path:
    """An ``extract_slices`` output: (x, rows, z) uint16 fat and water slabs with spacing, origin and (``flags``)
    unzip_mri's flags as extract_slices copies them (``swapped_stations``, ``fat_water_fixed``,
    ``max_seam_mismatch``)."""
    origin = slab_origin(visit)
    x = origin[0] + np.arange(SLAB_SHAPE[0]) * SLAB_SPACING[0]
    y = origin[1] + np.arange(SLAB_SHAPE[1]) * SLAB_SPACING[1]
    z = origin[2] - np.arange(SLAB_SHAPE[2]) * SLAB_SPACING[2]
    fat, water = mri_truth(visit, x[:, None, None], y[None, :, None], z[None, None, :])
    output = Output(
        arrays={"fat_scan": np.rint(fat).astype(np.uint16), "water_scan": np.rint(water).astype(np.uint16)},
        attrs={"spacing": list(SLAB_SPACING), "origin": origin.tolist(), "centre_index": 40, "window_shift": 0,
               "method": "fat-median", **(flags or {})},
        spacing_attr="spacing",
    )
    writer = writer or Hdf5Writer()
    return writer.write(StageFolders(folder, "extract_slices"), f"{visit.eid}_20201_{visit.instance}_0", output,
                        fingerprint="test")


def write_dxa(folder: Path, visit: Visit, *, writer: Writer | None = None) -> Path:
    """An ``unzip_dxa`` output: uint8 tissue and bone images with their pixel spacing."""
    rows = np.arange(DXA_SHAPE[0])[:, None] * DXA_SPACING[0]
    columns = np.arange(DXA_SHAPE[1])[None, :] * DXA_SPACING[1]
    bone, tissue = dxa_truth(visit, rows, columns)
    output = Output(
        arrays={"tissue": np.rint(tissue).astype(np.uint8), "bone": np.rint(bone).astype(np.uint8)},
        attrs={"pixel_spacing": list(DXA_SPACING)},
        spacing_attr="pixel_spacing",
    )
    writer = writer or Hdf5Writer()
    return writer.write(StageFolders(folder, "unzip_dxa"), f"{visit.eid}_20158_{visit.instance}_0", output,
                        fingerprint="test", nested=True)


def write_visits(root: Path, visits: list[Visit], *, pickle: bool = False, writer: Writer | None = None,
                 flags: dict[int, dict] | None = None) -> tuple[Path, Path]:
    """Slabs and DXA outputs of ``visits`` under ``root`` in the default folders; returns (slices, dxa) folders.

    ``flags`` maps an EID to its slab's upstream flags."""
    slices, dxa = root / "mri-mid-corr-slices", root / "dxas-processed"
    writer = PickleWriter() if pickle else writer
    for visit in visits:
        write_slab(slices, visit, writer=writer, flags=(flags or {}).get(visit.eid))
        write_dxa(dxa, visit, writer=writer)
    return slices, dxa
