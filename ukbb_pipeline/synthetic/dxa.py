"""Writing a synthetic GE Lunar iDXA zip (field 20158) and the truth about what it holds (ukbb-format.md 3).

One uint8 CR image per acquired region, Implicit VR Little Endian, named ``<SOPInstanceUID>.dcm`` with
SOPInstanceUID ``1.2.840.113619.2.110.<DeviceSerial>.<YYYYMMDDhhmmss>.<SeriesNumber>.<InstanceNumber>.12.1``;
the two ``Total Body`` images are InstanceNumber 11 (soft tissue) and 12 (bone). No PixelSpacing tags: the spacing
is ExposedArea over Rows and Columns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ComputedRadiographyImageStorage, ImplicitVRLittleEndian

from ukbb_pipeline.synthetic import dxa_images
from ukbb_pipeline.synthetic.dxa_images import REGIONS, DxaGrid
from ukbb_pipeline.synthetic.identity import (
    CENTRES,
    DXA_DEVICE_SERIALS,
    DXA_STATION_NAMES,
    GE_LUNAR_ROOT,
    Visit,
    dicom_date,
    visit,
)
from ukbb_pipeline.synthetic.manifest import ManifestRow, manifest_text
from ukbb_pipeline.synthetic.part10 import encode_file
from ukbb_pipeline.synthetic.phantom import Phantom
from ukbb_pipeline.synthetic.quirks import DxaQuirks
from ukbb_pipeline.synthetic.stations import ds_text
from ukbb_pipeline.synthetic.zipout import Member, shuffled, write_zip

DXA_FIELD = 20158
TOTAL_BODY = "Total Body"
TISSUE_INSTANCE, BONE_INSTANCE = 11, 12
REPEAT_INSTANCES = (13, 14)  # the later pair of a repeated Total Body scan
OFFIS_IMPLEMENTATION_UID = "1.2.276.0.7230010.3.0.3.6.0"
OFFIS_IMPLEMENTATION_VERSION = "OFFIS_DCMBP_360"
MOVED = (18.0, -30.0)  # mm (x, z) the body lay differently during a superseded Total Body scan


@dataclass(frozen=True)
class DxaTruth:
    """What a synthetic DXA zip holds. ``tissue`` and ``bone`` are exactly the pixels of the pair a correct reader
    chooses (the most recent Total Body acquisition; ``bone`` is None when the zip has no bone image).

    ``pixel_spacing`` is (ExposedArea[1] / Rows, ExposedArea[0] / Columns) in mm; pixel [r, c] of the chosen pair
    lies at LPS x = grid.x0 + c * column spacing, z = grid.z0 - r * row spacing.
    """

    path: Path
    eid: int
    instance: int
    size: str
    seed: int
    phantom: Phantom
    quirks: DxaQuirks
    visit: Visit
    tissue: np.ndarray = field(repr=False)
    bone: np.ndarray | None = field(repr=False)
    pixel_spacing: tuple[float, float]
    exposed_area: tuple[int, int]
    grid: DxaGrid
    instance_numbers: tuple[int, ...]  # of the chosen pair: (tissue, bone) or (tissue,)
    superseded_instance_numbers: tuple[int, ...]
    regional: dict[str, int]  # ProtocolName -> InstanceNumber of the distractor images
    members: tuple[str, ...]

    @property
    def n_total_body(self) -> int:
        return len(self.instance_numbers) + len(self.superseded_instance_numbers)


def dxa_zip_name(eid: int, instance: int = 2) -> str:
    return f"{eid}_{DXA_FIELD}_{instance}_0.zip"


@dataclass(frozen=True)
class _Exam:
    visit: Visit
    serial: int
    study_uid: str
    series_uid: str
    start: datetime
    software: str


@dataclass(frozen=True)
class _Image:
    region: str
    instance: int
    pixels: np.ndarray
    area: tuple[int, int]
    acquired: datetime


def write_dxa_zip(
    path: str | Path,
    *,
    eid: int,
    instance: int = 2,
    phantom: Phantom,
    size: str = "small",
    quirks: DxaQuirks = DxaQuirks(),  # noqa: B008 (frozen, so a shared default is safe)
    seed: int = 0,
) -> DxaTruth:
    """Write a synthetic ``<eid>_20158_<instance>_0.zip`` to ``path`` and return its truth."""
    if size not in ("small", "full"):
        raise ValueError(f"size must be 'small' or 'full', got {size!r}")
    path = Path(path)
    rng = np.random.default_rng([seed, eid, instance, DXA_FIELD])
    who = visit(eid=eid, instance=instance, seed=seed)
    serial = DXA_DEVICE_SERIALS[who.centre]
    start = who.at(float(rng.uniform(0.0, 8.5 * 3600.0)))
    exam = _Exam(
        visit=who,
        serial=serial,
        study_uid=f"{GE_LUNAR_ROOT}.{serial}.{start:%Y%m%d%H%M%S}.1",
        series_uid=f"{GE_LUNAR_ROOT}.{serial}.{start:%Y%m%d%H%M%S}.1.1",
        start=start,
        software="16.00.158" if who.day.year < 2017 else "16.20.059",
    )
    export = start + timedelta(seconds=1500.0 + float(rng.uniform(0.0, 120.0)))
    images: list[_Image] = []
    if quirks.regional_images:
        for order, region in enumerate(REGIONS):
            pixels = dxa_images.region_image(phantom, region, size=size)
            acquired = start + timedelta(seconds=60.0 + 110.0 * order)
            images.append(_Image(region.name, region.instance, pixels, region.area, acquired))
    grid = dxa_images.total_body_grid(phantom, rng=rng)
    pairs = [(phantom, (TISSUE_INSTANCE, BONE_INSTANCE))]
    if quirks.n_total_body_pairs == 2:
        moved = dataclasses.replace(phantom, x_shift=phantom.x_shift + MOVED[0], z_shift=phantom.z_shift + MOVED[1])
        pairs = [(moved, (TISSUE_INSTANCE, BONE_INSTANCE)), (phantom, REPEAT_INSTANCES)]
    chosen: tuple[np.ndarray, np.ndarray | None] = (np.zeros(0), None)
    for order, (body, numbers) in enumerate(pairs):
        tissue = dxa_images.soft_tissue_image(dxa_images.tissue_thickness(body, grid))
        bone = dxa_images.bone_image(body, grid, tissue)
        acquired = start + timedelta(seconds=800.0 + 480.0 * order)
        images.append(_Image(TOTAL_BODY, numbers[0], tissue, dxa_images.TOTAL_BODY_AREA, acquired))
        if not quirks.only_one_total_body:
            images.append(_Image(TOTAL_BODY, numbers[1], bone, dxa_images.TOTAL_BODY_AREA, acquired))
        chosen = (tissue, None if quirks.only_one_total_body else bone)
    members, rows = [], []
    for image in sorted(images, key=lambda im: im.instance):
        exported = export + timedelta(seconds=0.6 * image.instance)
        sop = f"{GE_LUNAR_ROOT}.{serial}.{exported:%Y%m%d%H%M%S}.1.{image.instance}.12.1"
        members.append(Member(f"{sop}.dcm", _dicom_bytes(exam, image, sop=sop, rng=rng)))
        rows.append(
            ManifestRow(
                filename=f"{sop}.dcm",
                patient_id=who.patient_id,
                study_uid=exam.study_uid,
                study_description="DXA Exam",
                when=start,
                series_uid=exam.series_uid,
                series_description="DXA Images",
                modality="CR",
            )
        )
    if quirks.manifest_name is not None:
        members.append(Member(quirks.manifest_name, manifest_text(rows, rng=rng).encode("ascii")))
    if quirks.shuffle_members:
        members = shuffled(members, rng=rng)
    write_zip(path, members, when=export)
    chosen_numbers = pairs[-1][1][:1] if quirks.only_one_total_body else pairs[-1][1]
    superseded = tuple(n for _, numbers in pairs[:-1] for n in numbers[: len(chosen_numbers)])
    width, height = dxa_images.TOTAL_BODY_AREA
    return DxaTruth(
        path=path,
        eid=eid,
        instance=instance,
        size=size,
        seed=seed,
        phantom=phantom,
        quirks=quirks,
        visit=who,
        tissue=chosen[0],
        bone=chosen[1],
        pixel_spacing=(height / grid.rows, width / grid.columns),
        exposed_area=(width, height),
        grid=grid,
        instance_numbers=tuple(chosen_numbers),
        superseded_instance_numbers=superseded,
        regional={region.name: region.instance for region in REGIONS} if quirks.regional_images else {},
        members=tuple(m.name for m in members),
    )


def _dicom_bytes(exam: _Exam, image: _Image, *, sop: str, rng: np.random.Generator) -> bytes:
    """One CR image file with the attributes of the UK Biobank example files (ukbb-format.md 3.2)."""
    who = exam.visit
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    meta.ImplementationClassUID = OFFIS_IMPLEMENTATION_UID
    meta.ImplementationVersionName = OFFIS_IMPLEMENTATION_VERSION
    meta.SourceApplicationEntityTitle = "GELUNAR"
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SOPClassUID = ComputedRadiographyImageStorage
    ds.SOPInstanceUID = sop
    ds.StudyDate = dicom_date(exam.start)
    ds.SeriesDate = dicom_date(exam.start)
    ds.AcquisitionDate = dicom_date(image.acquired)
    ds.ContentDate = dicom_date(image.acquired)
    ds.StudyTime = f"{exam.start:%H%M%S}"
    ds.SeriesTime = f"{exam.start:%H%M%S}"
    ds.AcquisitionTime = f"{image.acquired:%H%M%S}"
    ds.ContentTime = f"{image.acquired:%H%M%S}"
    ds.AccessionNumber = ""
    ds.Modality = "CR"
    ds.Manufacturer = "GE Healthcare"
    ds.InstitutionName = "UK Biobank"
    ds.ReferringPhysicianName = ""
    ds.StationName = DXA_STATION_NAMES[who.centre]
    ds.StudyDescription = "DXA Exam"
    ds.SeriesDescription = "DXA Images"
    ds.InstitutionalDepartmentName = CENTRES[who.centre]
    ds.ManufacturerModelName = "Lunar iDXA"
    ds.PatientName = who.patient_name
    ds.PatientID = who.patient_id
    ds.PatientBirthDate = who.birth_date
    ds.PatientSex = who.sex
    ds.PatientAge = who.age_string
    ds.PatientSize = ds_text(who.height_m)
    ds.PatientWeight = f"{who.weight_kg:.2f}"
    ds.EthnicGroup = "White"
    ds.BodyPartExamined = ""
    ds.DeviceSerialNumber = str(exam.serial)
    ds.SoftwareVersions = exam.software
    ds.ProtocolName = image.region
    ds.ViewPosition = ""
    ds.StudyInstanceUID = exam.study_uid
    ds.SeriesInstanceUID = exam.series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = "1"
    ds.AcquisitionNumber = "1"
    ds.InstanceNumber = str(image.instance)
    ds.PatientOrientation = ["L", "F"]
    ds.Laterality = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = image.pixels.shape
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.add_new(0x00400301, "US", 1)  # TotalNumberOfExposures
    ds.add_new(0x00400303, "US", list(image.area))  # ExposedArea (width, height) mm
    dose = Dataset()
    dose.KVP = "100.0"
    dose.ExposureTime = str(int(rng.integers(180, 420)))
    dose.add_new(0x00188151, "DS", ds_text(round(float(rng.uniform(150.0, 190.0)), 1)))  # X-Ray Tube Current in uA
    ds.ExposureDoseSequence = [dose]
    ds.PerformedProcedureStepDescription = image.region
    ds.add_new(0x00408302, "DS", ds_text(round(float(rng.uniform(0.005, 0.05)), 4)))  # EntranceDoseInmGy
    ds.add_new(0x7FE00010, "OB", np.ascontiguousarray(image.pixels, dtype=np.uint8).tobytes())
    return encode_file(ds, meta)
