"""Writing a synthetic GE Lunar iDXA zip (field 20158) and the truth about what it holds (ukbb-format.md 3).

One uint8 CR image per acquired region, Implicit VR Little Endian, named ``<SOPInstanceUID>.dcm`` with
SOPInstanceUID ``1.2.840.113619.2.110.<DeviceSerial>.<YYYYMMDDhhmmss>.<SeriesNumber>.<image number>.12.1``; the two
``Total Body`` images are InstanceNumber 11 (soft tissue) and 12 (bone), acquired at the study's start, before the
regional scans. No PixelSpacing tags: the spacing is ExposedArea over Rows and Columns. Which regional images a zip
holds, their InstanceNumbers (and the AP Spine's tag against its UID's number) vary at random per subject; the
variations and faults of :class:`~ukbb_pipeline.synthetic.quirks.DxaQuirks` come on top.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    EncapsulatedPDFStorage,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
)

from ukbb_pipeline.synthetic import dxa_images
from ukbb_pipeline.synthetic.dxa_images import REGIONS, DxaGrid, Region
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
THIRD_INSTANCE = 13  # an extra greyscale Total Body image (a fault)
REPORT_INSTANCES = (50, 51)  # the RGB screen capture and the PDF report
FOREIGN_SERIES = 2  # another participant's images, as in the public example zip
SPINE_TAG_OFFSET = 16  # the example's AP Spine: UID image number 2, InstanceNumber tag 18
OFFIS_IMPLEMENTATION_UID = "1.2.276.0.7230010.3.0.3.6.0"
OFFIS_IMPLEMENTATION_VERSION = "OFFIS_DCMBP_360"
MOVED = (18.0, -30.0)  # mm (x, z) the body lay differently during a superseded Total Body scan
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@dataclass(frozen=True)
class DxaTruth:
    """What a synthetic DXA zip holds. ``tissue`` and ``bone`` are exactly the pixels (MONOCHROME2 sense) of the
    exam's Total Body pair (the later pair of a repeated scan; ``bone`` is None when the zip has no bone image).

    ``pixel_spacing`` is (height / Rows, width / Columns) of the real ExposedArea in mm; pixel [r, c] of the pair
    lies at LPS x = grid.x0 + c * column spacing, z = grid.z0 - r * row spacing. ``ignored`` maps each member a
    correct reader passes over to why ("foreign", "rgb_report", "pdf_report"); ``fault`` names the quirk that makes
    a correct reader fail the zip (None when it should read it).
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
    instance_numbers: tuple[int, ...]  # InstanceNumber tags of the pair: (tissue, bone) or (tissue,)
    superseded_instance_numbers: tuple[int, ...]
    regional: dict[str, int]  # ProtocolName -> InstanceNumber tag of the exam's regional images
    members: tuple[str, ...]
    tissue_member: str
    bone_member: str | None
    ignored: dict[str, str]
    fault: str | None

    @property
    def n_total_body(self) -> int:
        """Greyscale Total Body images of the exam (the extra one of ``third_total_body`` included)."""
        return (len(self.instance_numbers) + len(self.superseded_instance_numbers)
                + int(self.quirks.third_total_body))


def dxa_zip_name(eid: int, instance: int = 2) -> str:
    return f"{eid}_{DXA_FIELD}_{instance}_0.zip"


@dataclass(frozen=True)
class _Exam:
    visit: Visit
    serial: int
    study_uid: str
    series_uid: str
    series_number: int
    start: datetime
    export: datetime
    software: str
    monochrome1: bool = False


@dataclass(frozen=True)
class _Image:
    region: str
    instance: int  # the InstanceNumber tag
    pixels: np.ndarray  # MONOCHROME2 sense; (rows, columns, 3) for RGB
    area: tuple[int, int] | None
    acquired: datetime
    uid_number: int  # the image number in the SOPInstanceUID
    kind: str = "greyscale"  # | "rgb" | "pdf"
    exam: _Exam | None = None  # None: the zip's own exam
    ignored: str | None = None  # why a correct reader passes it over


def _exam(who: Visit, start: datetime, *, series_number: int, rng: np.random.Generator, monochrome1: bool) -> _Exam:
    serial = DXA_DEVICE_SERIALS[who.centre]
    return _Exam(
        visit=who,
        serial=serial,
        study_uid=f"{GE_LUNAR_ROOT}.{serial}.{start:%Y%m%d%H%M%S}.1",
        series_uid=f"{GE_LUNAR_ROOT}.{serial}.{start:%Y%m%d%H%M%S}.1.{series_number}",
        series_number=series_number,
        start=start,
        export=start + timedelta(seconds=1500.0 + float(rng.uniform(0.0, 120.0))),
        software="16.00.158" if who.day.year < 2017 else "16.20.059",
        monochrome1=monochrome1,
    )


def _regional_layout(rng: np.random.Generator) -> list[tuple[Region, int, int]]:
    """(region, InstanceNumber tag, UID image number) of a random subset of the regional scans, in acquisition
    order: numbers drawn from 1-10, the AP Spine's tag sometimes off its UID's number (as in the public example)."""
    present = [region for region in REGIONS if rng.random() > 0.15] or [REGIONS[0]]
    order = [present[i] for i in rng.permutation(len(present))]
    numbers = sorted(int(n) for n in rng.choice(np.arange(1, 11), size=len(order), replace=False))
    layout = []
    for region, number in zip(order, numbers, strict=True):
        tag = number + SPINE_TAG_OFFSET if region.name == "AP Spine" and rng.random() < 0.5 else number
        layout.append((region, tag, number))
    return layout


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
    exam = _exam(who, who.at(float(rng.uniform(0.0, 8.5 * 3600.0))), series_number=1, rng=rng,
                 monochrome1=quirks.monochrome1)
    start = exam.start
    images: list[_Image] = []
    regional: dict[str, int] = {}
    if quirks.regional_images:
        at = start + timedelta(seconds=float(rng.uniform(120.0, 200.0)))
        for region, tag, number in _regional_layout(rng):
            pixels = dxa_images.region_image(phantom, region, size=size)
            images.append(_Image(region.name, tag, pixels, region.area, at, number))
            regional[region.name] = tag
            at += timedelta(seconds=float(rng.uniform(90.0, 220.0)))
    grid = dxa_images.total_body_grid(phantom, rng=rng)
    area = dxa_images.TOTAL_BODY_AREA
    written_area = (area[1], area[0]) if quirks.reversed_exposed_area else area
    first_pair = (TISSUE_INSTANCE, BONE_INSTANCE)
    if quirks.swapped_instance_numbers:
        first_pair = (BONE_INSTANCE, TISSUE_INSTANCE)
    pairs = [(phantom, first_pair)]
    if quirks.n_total_body_pairs == 2:
        moved = dataclasses.replace(phantom, x_shift=phantom.x_shift + MOVED[0], z_shift=phantom.z_shift + MOVED[1])
        pairs = [(moved, first_pair), (phantom, REPEAT_INSTANCES)]
    chosen: tuple[np.ndarray, np.ndarray | None] = (np.zeros(0), None)
    for order, (body, numbers) in enumerate(pairs):
        tissue = dxa_images.soft_tissue_image(dxa_images.tissue_thickness(body, grid))
        bone = dxa_images.bone_image(body, grid, tissue)
        acquired = start + timedelta(seconds=1900.0 * order)  # at the study's start; a repeat after the regionals
        images.append(_Image(TOTAL_BODY, numbers[0], tissue, written_area, acquired, numbers[0]))
        if not quirks.only_one_total_body:
            images.append(_Image(TOTAL_BODY, numbers[1], bone, written_area, acquired, numbers[1]))
        chosen = (tissue, None if quirks.only_one_total_body else bone)
    tissue, chosen_bone = chosen
    if quirks.third_total_body:
        other = tissue if chosen_bone is None else chosen_bone
        composite = dxa_images.to_uint8((tissue.astype(np.float32) + other) / 2, tissue > 0)
        images.append(_Image(TOTAL_BODY, THIRD_INSTANCE, composite, written_area, start, THIRD_INSTANCE))
    if quirks.rgb_report:
        images.append(_Image(TOTAL_BODY, REPORT_INSTANCES[0], _screen_capture(tissue, size=size), None,
                             exam.export, REPORT_INSTANCES[0], kind="rgb", ignored="rgb_report"))
    if quirks.pdf_report:
        images.append(_Image(TOTAL_BODY, REPORT_INSTANCES[1], np.zeros(0, np.uint8), None, exam.export,
                             REPORT_INSTANCES[1], kind="pdf", ignored="pdf_report"))
    images += _foreign_images(quirks.foreign, eid=eid, instance=instance, seed=seed, size=size, exam=exam, rng=rng)

    members, rows, names = [], [], {}
    for image in sorted(images, key=lambda im: (im.exam is not None, im.uid_number)):
        owner = image.exam or exam
        exported = owner.export + timedelta(seconds=0.6 * image.uid_number)
        sop = f"{GE_LUNAR_ROOT}.{owner.serial}.{exported:%Y%m%d%H%M%S}.{owner.series_number}.{image.uid_number}.12.1"
        members.append(Member(f"{sop}.dcm", _dicom_bytes(owner, image, sop=sop, rng=rng)))
        names[id(image)] = f"{sop}.dcm"
        rows.append(
            ManifestRow(
                filename=f"{sop}.dcm",
                patient_id=owner.visit.patient_id,
                study_uid=owner.study_uid,
                study_description="DXA Exam",
                when=owner.start,
                series_uid=owner.series_uid,
                series_description="DXA Images",
                modality={"greyscale": "CR", "rgb": "OT", "pdf": "DOC"}[image.kind],
            )
        )
    if quirks.manifest_name is not None:
        members.append(Member(quirks.manifest_name, manifest_text(rows, rng=rng).encode("ascii")))
    if quirks.shuffle_members:
        members = shuffled(members, rng=rng)
    write_zip(path, members, when=exam.export)
    chosen_numbers: tuple[int, ...] = pairs[-1][1][:1] if quirks.only_one_total_body else pairs[-1][1]
    superseded = tuple(n for _, numbers in pairs[:-1] for n in numbers[: len(chosen_numbers)])
    by_number = {image.instance: names[id(image)] for image in images if image.exam is None and image.kind ==
                 "greyscale" and image.region == TOTAL_BODY}
    width, height = area
    return DxaTruth(
        path=path,
        eid=eid,
        instance=instance,
        size=size,
        seed=seed,
        phantom=phantom,
        quirks=quirks,
        visit=who,
        tissue=tissue,
        bone=chosen_bone,
        pixel_spacing=(height / grid.rows, width / grid.columns),
        exposed_area=(width, height),
        grid=grid,
        instance_numbers=tuple(chosen_numbers),
        superseded_instance_numbers=superseded,
        regional=regional,
        members=tuple(m.name for m in members),
        tissue_member=by_number[chosen_numbers[0]],
        bone_member=None if quirks.only_one_total_body else by_number[chosen_numbers[-1]],
        ignored={names[id(image)]: image.ignored for image in images if image.ignored},
        fault=quirks.fault,
    )


def _foreign_images(
    protocols: tuple[str, ...], *, eid: int, instance: int, seed: int, size: str, exam: _Exam,
    rng: np.random.Generator,
) -> list[_Image]:
    """Another participant's images: an AP Spine from an earlier exam (as in the public example zip), or a whole
    Total Body pair from a later one (never "the newest")."""
    images: list[_Image] = []
    for protocol in protocols:
        other = visit(eid=eid + 1_000_003, instance=instance, seed=seed + 17)
        days = -int(rng.integers(300, 1200)) if protocol == "AP Spine" else int(rng.integers(30, 600))
        other = dataclasses.replace(other, day=exam.visit.day + timedelta(days=days))
        foreign = _exam(other, other.at(float(rng.uniform(0.0, 8.5 * 3600.0))), series_number=FOREIGN_SERIES,
                        rng=rng, monochrome1=False)
        body = Phantom.random(int(rng.integers(0, 2**31)))
        if protocol == "AP Spine":
            pixels = dxa_images.region_image(body, REGIONS[0], size=size)
            images.append(_Image(protocol, 2 + SPINE_TAG_OFFSET, pixels, REGIONS[0].area,
                                 foreign.start + timedelta(seconds=200.0), 2, exam=foreign, ignored="foreign"))
            continue
        grid = dxa_images.total_body_grid(body, rng=rng)
        tissue = dxa_images.soft_tissue_image(dxa_images.tissue_thickness(body, grid))
        bone = dxa_images.bone_image(body, grid, tissue)
        for number, pixels in ((TISSUE_INSTANCE, tissue), (BONE_INSTANCE, bone)):
            images.append(_Image(TOTAL_BODY, number, pixels, dxa_images.TOTAL_BODY_AREA, foreign.start, number,
                                 exam=foreign, ignored="foreign"))
    return images


def _screen_capture(tissue: np.ndarray, *, size: str) -> np.ndarray:
    """An RGB screen capture of the exam: the soft-tissue image in a coloured frame beside a results panel."""
    rows, columns = (768, 1024) if size == "full" else (192, 256)
    capture = np.zeros((rows, columns, 3), dtype=np.uint8)
    capture[...] = (24, 40, 96)  # the viewer's blue background
    picked = tissue[np.linspace(0, tissue.shape[0] - 1, rows - 16).astype(int)][
        :, np.linspace(0, tissue.shape[1] - 1, (rows - 16) * tissue.shape[1] // tissue.shape[0]).astype(int)]
    capture[8 : 8 + picked.shape[0], 8 : 8 + picked.shape[1]] = picked[..., None]
    panel = slice(columns // 2, columns - 8)
    for line in range(20, rows - 20, 14):
        capture[line : line + 6, panel] = (230, 230, 200)  # lines of text
    return capture


def _dicom_bytes(exam: _Exam, image: _Image, *, sop: str, rng: np.random.Generator) -> bytes:
    """One file with the attributes of the UK Biobank example files (ukbb-format.md 3.2): a CR image, or (for the
    reports) an RGB Secondary Capture or an encapsulated PDF of the same exam."""
    who = exam.visit
    sop_class = {"greyscale": ComputedRadiographyImageStorage, "rgb": SecondaryCaptureImageStorage,
                 "pdf": EncapsulatedPDFStorage}[image.kind]
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = UID(sop)
    meta.TransferSyntaxUID = ImplicitVRLittleEndian
    meta.ImplementationClassUID = UID(OFFIS_IMPLEMENTATION_UID)
    meta.ImplementationVersionName = OFFIS_IMPLEMENTATION_VERSION
    meta.SourceApplicationEntityTitle = "GELUNAR"
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "PRIMARY"] if image.kind == "greyscale" else ["DERIVED", "SECONDARY"]
    ds.SOPClassUID = sop_class
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
    ds.Modality = {"greyscale": "CR", "rgb": "OT", "pdf": "DOC"}[image.kind]
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
    ds.SeriesNumber = str(exam.series_number)
    ds.AcquisitionNumber = "1"
    ds.InstanceNumber = str(image.instance)
    if image.kind == "pdf":
        ds.BurnedInAnnotation = "YES"
        ds.DocumentTitle = "DXA report"
        ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
        ds.PerformedProcedureStepDescription = image.region
        ds.add_new(0x00420011, "OB", PDF)  # EncapsulatedDocument
        return encode_file(ds, meta)
    ds.PatientOrientation = ["L", "F"]
    ds.Laterality = ""
    if image.kind == "rgb":
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    else:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME1" if exam.monochrome1 else "MONOCHROME2"
    ds.Rows, ds.Columns = image.pixels.shape[:2]
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if image.area is not None:
        ds.add_new(0x00400301, "US", 1)  # TotalNumberOfExposures
        ds.add_new(0x00400303, "US", list(image.area))  # ExposedArea (width, height) mm
        dose = Dataset()
        dose.KVP = "100.0"
        dose.ExposureTime = str(int(rng.integers(180, 420)))
        dose.add_new(0x00188151, "DS", ds_text(round(float(rng.uniform(150.0, 190.0)), 1)))  # X-Ray Tube Current uA
        ds.ExposureDoseSequence = [dose]
    ds.PerformedProcedureStepDescription = image.region
    if image.area is not None:
        ds.add_new(0x00408302, "DS", ds_text(round(float(rng.uniform(0.005, 0.05)), 4)))  # EntranceDoseInmGy
    pixels = np.ascontiguousarray(image.pixels, dtype=np.uint8)
    if image.kind == "greyscale" and exam.monochrome1:
        pixels = 255 - pixels  # (2^BitsStored - 1) - value
    ds.add_new(0x7FE00010, "OB", pixels.tobytes())
    return encode_file(ds, meta)
