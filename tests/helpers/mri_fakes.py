"""Small Dixon stations of a known analytic body, as Series objects or as a UK Biobank-like zip, for the MRI tests.

Independent of the project's synthetic generator on purpose: the reader and the stitcher are tested against a body
whose fat and water are known everywhere, with every geometry quirk under the test's control.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ukbb_pipeline.mri.series import Series

FAT_SIGNAL, WATER_SIGNAL = 1000.0, 700.0
SPACING = 8.928571701049805  # 4 x 2.232 mm (56 columns over 500 mm)


@dataclass(frozen=True)
class FakeStation:
    number: int
    rows: int
    columns: int
    z: tuple[float, ...]  # slice positions, head first
    spacing: float = SPACING

    @property
    def x0(self) -> float:
        return -250.0 + self.spacing / 2

    @property
    def y0(self) -> float:
        return -(self.rows - 1) / 2 * self.spacing


def small_layout() -> list[FakeStation]:
    """Six stations shaped like UK Biobank's at 4x coarser pixels: rows differ, z steps differ, seams overlap ~36 mm."""
    rows = (42, 44, 44, 44, 40, 38)
    slices = (24, 15, 15, 15, 24, 20)
    steps = (8.0, 13.2, 13.2, 13.2, 10.5, 12.8)
    overlap = 36.0
    top = 600.0
    stations = []
    for number, (r, n, step) in enumerate(zip(rows, slices, steps, strict=True), start=1):
        z = tuple(top - step / 2 - k * step for k in range(n))
        stations.append(FakeStation(number, r, 56, z))
        top = top - n * step + overlap
    return stations


def _smooth_inside(distance: np.ndarray, width: float = 4.0) -> np.ndarray:
    """1 well inside (distance < 0), 0 well outside, a smooth edge of about ``width`` mm."""
    return 1.0 / (1.0 + np.exp(np.clip(distance / (width / 4), -50, 50)))


def body(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True (fat, water) of the test body: an elliptic trunk whose width changes with z, a 15 mm subcutaneous fat
    layer, muscle inside, a fatty blob in the abdomen, air outside. LPS mm, broadcast."""
    a = 150.0 + 30.0 * np.sin(z / 200.0)
    b = 100.0 + 10.0 * np.cos(z / 150.0)
    cy = 0.0
    radius = np.sqrt((x / a) ** 2 + ((y - cy) / b) ** 2)
    outer = _smooth_inside((radius - 1.0) * b)
    inner = _smooth_inside((radius - 1.0) * b + 15.0)
    blob = _smooth_inside(np.sqrt((x - 40) ** 2 + (y + 10) ** 2 + (z - 100) ** 2) - 50.0)
    stripe = 0.8 + 0.2 * np.sin(x / 23.0) * np.cos(z / 31.0)
    fat = FAT_SIGNAL * ((outer - inner) + inner * (0.9 * blob + 0.05))
    water = WATER_SIGNAL * inner * (1 - 0.9 * blob) * stripe + 40.0 * (outer - inner)
    return fat.astype(np.float32), water.astype(np.float32)


def station_images(station: FakeStation, *, gain: float = 1.0, noise: float = 0.0, seed: int = 0,
                   swapped: bool = False) -> dict[str, np.ndarray]:
    """The four channels of a station, (slices, rows, columns) uint16, rows anterior->posterior."""
    rng = np.random.default_rng([seed, station.number])
    x = station.x0 + np.arange(station.columns) * station.spacing
    y = station.y0 + np.arange(station.rows) * station.spacing
    z = np.asarray(station.z)
    fat, water = body(x[None, None, :], y[None, :, None], z[:, None, None])
    fat, water = fat * gain, water * gain
    if swapped:
        fat, water = water, fat
    images = {"F": fat, "W": water, "in": fat + water, "opp": np.abs(water - fat)}
    out = {}
    for channel, image in images.items():
        if noise:
            image = np.hypot(image + rng.normal(0, noise, image.shape), rng.normal(0, noise, image.shape))
        out[channel] = np.clip(np.rint(image), 0, 65535).astype(np.uint16)
    return out


PREFIX = {1: "Dixon_noBH", 2: "Dixon_BH_17s", 3: "Dixon_BH_17s", 4: "Dixon_BH_17s", 5: "Dixon_noBH", 6: "Dixon_noBH"}


def station_series(station: FakeStation, **kwargs) -> list[Series]:
    """The four channels of a station as :class:`Series` (as the reader would build them)."""
    images = station_images(station, **kwargs)
    return [
        Series(uid=f"{station.number}-{channel}", number=4 * (station.number - 1) + 1 + index,
               description=f"{PREFIX[station.number]}_{channel}", channel=channel, acquired="20200101120000",
               volume=volume, z=np.asarray(station.z), x0=station.x0, y0=station.y0, sx=station.spacing,
               sy=station.spacing)
        for index, (channel, volume) in enumerate((c, images[c]) for c in ("in", "opp", "F", "W"))
    ]


def dicom_bytes(image: np.ndarray, *, description: str, series_number: int, series_uid: str, series_time: str,
                position: tuple[float, float, float], spacing: float, instance: int,
                orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), private_bytes: int = 0) -> bytes:
    """One single-frame MR slice as Part-10 DICOM bytes."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Manufacturer = "MR", "SIEMENS"
    ds.SeriesDescription, ds.SeriesNumber, ds.SeriesInstanceUID = description, series_number, series_uid
    ds.SeriesDate, ds.SeriesTime, ds.InstanceNumber = "20200101", series_time, instance
    ds.ImagePositionPatient = [f"{v:.10g}" for v in position]
    ds.ImageOrientationPatient = list(orientation)
    ds.PixelSpacing = [spacing, spacing]
    ds.SliceLocation = position[2]
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
    if private_bytes:
        ds.add_new(0x00291020, "OB", bytes(private_bytes))
    ds.PixelData = np.ascontiguousarray(image, dtype="<u2").tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_zip(path: Path, stations: list[FakeStation], *, seed: int = 0, gains=None, noise: float = 0.0,
              swapped: int | None = None, drop: tuple[int, int] | None = None, repeat: int | None = None,
              missing: int | None = None, shrink_water: int | None = None, extra_members: dict | None = None,
              channels=("in", "opp", "F", "W")) -> Path:
    """A UK Biobank-like Dixon zip of ``stations`` (members shuffled, with a manifest), with optional quirks:
    ``swapped`` station, ``drop`` = (station, slice index) missing from every series, ``repeat`` station acquired
    again later as series 25-28 (the first acquisition corrupted), ``missing`` station, ``shrink_water`` station
    whose W series has 2 fewer rows and columns."""
    rng = np.random.default_rng(seed)
    members: dict[str, bytes] = {}
    acquisitions = []
    for station in stations:
        if station.number == missing:
            continue
        series_time = f"{100000 + 100 * station.number:06d}.000000"
        acquisitions.append((station, 4 * (station.number - 1) + 1, series_time, False))
        if station.number == repeat:
            acquisitions.append((station, 25, "125959.000000", True))
    for station, first_number, series_time, is_repeat in acquisitions:
        gain = 1.0 if gains is None else gains[station.number - 1]
        images = station_images(station, gain=gain, noise=noise, seed=seed, swapped=station.number == swapped)
        if station.number == repeat and not is_repeat:  # the first acquisition is spoiled
            images = {c: (v // 3).astype(np.uint16) for c, v in images.items()}
        for index, channel in enumerate(("in", "opp", "F", "W")):
            if channel not in channels:
                continue
            number = first_number + index
            uid = generate_uid()
            volume = images[channel]
            if channel == "W" and station.number == shrink_water:
                volume = volume[:, :-2, :-2]
            for k, z in enumerate(station.z):
                if drop is not None and drop == (station.number, k):
                    continue
                data = dicom_bytes(volume[k], description=f"{PREFIX[station.number]}_{channel}",
                                   series_number=number, series_uid=uid, series_time=series_time,
                                   position=(station.x0, station.y0, z), spacing=station.spacing, instance=k + 1)
                members[f"{uid}.{k + 1}.dcm"] = data
    members.update(extra_members or {})
    names = list(members)
    rng.shuffle(names)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("manifest.cvs", "filename,patientid,date\n" + "\n".join(f"{n},x,Aug 30, 2015" for n in names))
        for name in names:
            archive.writestr(name, members[name])
    return path


def truth_on_grid(origin, spacing, shape) -> tuple[np.ndarray, np.ndarray]:
    """The true (fat, water) on an output grid, as (x, y, z) arrays like the stage writes."""
    x = origin[0] + np.arange(shape[0]) * spacing[0]
    y = origin[1] + np.arange(shape[1]) * spacing[1]
    z = origin[2] - np.arange(shape[2]) * spacing[2]
    fat, water = body(x[:, None, None], y[None, :, None], z[None, None, :])
    return fat, water


__all__ = ["FakeStation", "body", "dicom_bytes", "pydicom", "small_layout", "station_images", "station_series",
           "truth_on_grid", "write_zip"]
