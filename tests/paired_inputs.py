"""Stage outputs with a known truth, for testing ``collect`` and the reader without running the earlier stages.

MRI slabs and DXA images are sampled from smooth analytic images (a fat and a water blob in LPS millimetres, a bone
and a tissue blob in DXA millimetres) and written through the real writers with the attributes the earlier stages
write, so every collected pixel can be checked against the truth at its physical position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ukbb_pipeline.folders import StageFolders
from ukbb_pipeline.writers import Hdf5Writer, Output, PickleWriter, Writer

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


def slab_origin(visit: Visit) -> np.ndarray:
    return np.array([-250.0 + SLAB_SPACING[0] / 2, 20.0 - 5 * SLAB_SPACING[1], 120.0 + visit.instance])


def write_slab(folder: Path, visit: Visit, *, writer: Writer | None = None) -> Path:
    """An ``extract_slices`` output: (x, rows, z) uint16 fat and water slabs with spacing and origin."""
    origin = slab_origin(visit)
    x = origin[0] + np.arange(SLAB_SHAPE[0]) * SLAB_SPACING[0]
    y = origin[1] + np.arange(SLAB_SHAPE[1]) * SLAB_SPACING[1]
    z = origin[2] - np.arange(SLAB_SHAPE[2]) * SLAB_SPACING[2]
    fat, water = mri_truth(visit, x[:, None, None], y[None, :, None], z[None, None, :])
    output = Output(
        arrays={"fat_scan": np.rint(fat).astype(np.uint16), "water_scan": np.rint(water).astype(np.uint16)},
        attrs={"spacing": list(SLAB_SPACING), "origin": origin.tolist(), "centre_index": 40, "window_shift": 0,
               "method": "fat-median"},
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


def write_visits(root: Path, visits: list[Visit], *, pickle: bool = False) -> tuple[Path, Path]:
    """Slabs and DXA outputs of ``visits`` under ``root`` in the default folders; returns (slices, dxa) folders."""
    slices, dxa = root / "mri-mid-corr-slices", root / "dxas-processed"
    for visit in visits:
        write_slab(slices, visit, writer=PickleWriter() if pickle else None)
        write_dxa(dxa, visit, writer=PickleWriter() if pickle else None)
    return slices, dxa
