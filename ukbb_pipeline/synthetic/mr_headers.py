"""DICOM attributes of the Dixon slices (ukbb-format.md 1.4): what a series shares and what each slice owns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, MRImageStorage, RLELossless

from ukbb_pipeline.synthetic import csa
from ukbb_pipeline.synthetic.header_style import HeaderStyle
from ukbb_pipeline.synthetic.identity import Visit, dicom_date, dicom_time
from ukbb_pipeline.synthetic.part10 import PIXEL_DATA, Element, Encapsulated
from ukbb_pipeline.synthetic.stations import BREATH_HOLD, StationGeometry, ds_text

CHANNEL_SUFFIX = {"in": "in", "opp": "opp", "F": "F", "W": "W"}
IMAGE_TYPE = {
    "in": ["ORIGINAL", "PRIMARY", "M", "DIXON", "IN_PHASE"],
    "opp": ["ORIGINAL", "PRIMARY", "M", "DIXON", "OPP_PHASE"],
    "F": ["DERIVED", "PRIMARY", "M", "DIXON", "FAT"],
    "W": ["DERIVED", "PRIMARY", "M", "DIXON", "WATER"],
}
ECHO = {"in": (4.77, 2), "opp": (2.39, 1), "F": (2.39, 1), "W": (2.39, 1)}  # echo time (ms), echo number
PLAIN_IMAGE_TYPE = {"in": ["ORIGINAL", "PRIMARY", "M", "ND"], "opp": ["ORIGINAL", "PRIMARY", "M", "ND"],
                    "F": ["DERIVED", "PRIMARY", "M", "ND"], "W": ["DERIVED", "PRIMARY", "M", "ND"]}  # no Dixon values
ECHO_SPACING_S = 0.75  # between the AcquisitionTimes of a slice's two echoes (Siemens Prisma, ukbb-format.md 1.7)
SCANNER_COSINE = "4.897e-012"  # what a real scanner writes for a zero direction cosine (ukbb-format.md 1.8)
STUDY_DESCRIPTION = "UKBIOBANK^Body"  # the real text is not public
SIEMENS_IMPLEMENTATION_UID = "1.3.12.2.1107.5.2"
SIEMENS_IMPLEMENTATION_VERSION = "MR_D13"
# Elements each slice owns; everything else is shared by the slices of a series.
VARYING_TAGS = (
    0x00080018,  # SOPInstanceUID
    0x00200013,  # InstanceNumber
    0x00200032,  # ImagePositionPatient
    0x00201041,  # SliceLocation
    0x00280106,  # SmallestImagePixelValue
    0x00280107,  # LargestImagePixelValue
    0x00281050,  # WindowCenter
    0x00281051,  # WindowWidth
    0x00291010,  # CSA image header
    0x7FE00010,  # PixelData
)
SLICE_TIME_TAG = 0x00080032  # AcquisitionTime: a slice's own with HeaderStyle times "slice"


def varying_tags(series: Series) -> tuple[int, ...]:
    """The elements each slice of ``series`` owns."""
    return (*VARYING_TAGS, SLICE_TIME_TAG) if series.style.times == "slice" else VARYING_TAGS


def series_description(station: int, channel: str) -> str:
    """``Dixon_BH_17s_<channel>`` for the breath-hold stations 2-4, ``Dixon_noBH_<channel>`` otherwise."""
    base = "Dixon_BH_17s" if BREATH_HOLD[station - 1] else "Dixon_noBH"
    return f"{base}_{CHANNEL_SUFFIX[channel]}"


@dataclass(frozen=True)
class Study:
    """What all series of one MRI exam share."""

    visit: Visit
    scanner_serial: int
    study_uid: str
    frame_of_reference_uid: str
    start: datetime
    size: str


@dataclass(frozen=True)
class Series:
    """One written series: a channel of one acquisition of one station."""

    station: int
    channel: str
    number: int
    uid: str
    time: datetime  # SeriesTime
    acquired: datetime  # AcquisitionTime (the whole 3-D slab)
    geometry: StationGeometry
    rows: int  # as written (differs from geometry.rows for a W/F size mismatch)
    columns: int
    orientation: tuple[bool, bool, bool, bool] = (False, False, False, False)  # see MriQuirks.orientation
    jitter: tuple[float, float, float] = (0.0, 0.0, 0.0)  # mm added to this series' IPP text (micrometres)
    derived: bool = False  # a derived copy (description ``..._ND``, ImageType with ND)
    acquisition_number: int = 1
    style: HeaderStyle = HeaderStyle()  # noqa: RUF009 (frozen, so a shared default is safe)
    shared: bool = False  # one series holds this channel and another (description without the channel suffix)
    slice_interval: float = 0.0  # s between the AcquisitionTimes of successive slices (style times "slice")
    phase: bool = False  # the phase images of this echo (ImageType ...\\P\\...), written in its series

    @property
    def description(self) -> str:
        text = series_description(self.station, self.channel)
        if self.shared:
            text = text.rsplit("_", 1)[0]
        return text + ("_ND" if self.derived else "")

    @property
    def image_type(self) -> list[str]:
        if self.phase:
            return ["ORIGINAL", "PRIMARY", "P", "ND"]
        values = IMAGE_TYPE[self.channel] if self.style.image_type_tokens else PLAIN_IMAGE_TYPE[self.channel]
        return values + (["ND"] if self.derived and "ND" not in values else [])

    def slice_time(self, index: int) -> datetime:
        """AcquisitionTime of slice ``index`` (style times "slice"): the slab's start, the slice, the echo."""
        echo = ECHO[self.channel][1] if self.channel in ("in", "opp") else 1 + ("F", "W").index(self.channel)
        return self.acquired + timedelta(seconds=index * self.slice_interval + (echo - 1) * ECHO_SPACING_S)

    def number_text(self, value: float) -> str:
        """A DS value as this style's scanner writes it (14 significant digits of float noise, or tidy)."""
        if not self.style.scanner_numbers:
            return ds_text(value)
        noisy = value - 5.1e-10 * (1.0 + abs(value) / 100.0)
        text = f"{noisy:.14g}"
        return text if len(text) <= 16 else f"{noisy:.13g}"

    def stored(self, image: np.ndarray) -> np.ndarray:
        """A (rows, columns) image in the stored pixel order of this series' orientation."""
        rows_flipped, columns_flipped = self.orientation[:2]
        return image[:: -1 if rows_flipped else 1, :: -1 if columns_flipped else 1]

    @property
    def image_orientation(self) -> list[str]:
        rows_flipped, columns_flipped = self.orientation[:2]
        tiny = SCANNER_COSINE if self.style.scanner_numbers else "0"
        minus_tiny = "-" + tiny if self.style.scanner_numbers else "0"
        return ["-1" if columns_flipped else "1", tiny, "0", minus_tiny, "-1" if rows_flipped else "1", "0"]

    def image_position(self, index: int) -> tuple[float, float, float]:
        """ImagePositionPatient of slice ``index`` (0 = most superior): the first stored pixel's centre."""
        g = self.geometry
        x0, y0, z = g.position(index)
        if self.orientation[1]:
            x0 += (self.columns - 1) * g.pixel_spacing
        if self.orientation[0]:
            y0 += (self.rows - 1) * g.pixel_spacing
        return (x0 + self.jitter[0], y0 + self.jitter[1], z + self.jitter[2])


def file_meta(transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = UID("1.2")  # replaced per file
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = UID(SIEMENS_IMPLEMENTATION_UID)
    meta.ImplementationVersionName = SIEMENS_IMPLEMENTATION_VERSION
    return meta


def series_dataset(study: Study, series: Series) -> Dataset:
    """The elements every slice of ``series`` carries."""
    visit, g = study.visit, series.geometry
    echo_time, echo_number = ECHO[series.channel]
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    style = series.style
    ds.ImageType = series.image_type
    ds.InstanceCreationDate = dicom_date(series.time)
    ds.InstanceCreationTime = dicom_time(series.time)
    ds.SOPClassUID = MRImageStorage
    ds.StudyDate = dicom_date(study.start)
    if style.times != "absent":
        ds.SeriesDate = dicom_date(series.time)
        ds.AcquisitionDate = dicom_date(series.acquired)
    ds.ContentDate = dicom_date(series.time)
    ds.StudyTime = dicom_time(study.start)
    if style.times != "absent":
        ds.SeriesTime = dicom_time(series.time)
    if style.times in ("station", "series"):
        ds.AcquisitionTime = dicom_time(series.acquired)  # per slice (VARYING_SLICE_TIME) for "slice"
    ds.ContentTime = dicom_time(series.time)
    ds.AccessionNumber = ""
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.InstitutionName = "UK Biobank"
    ds.ReferringPhysicianName = ""
    ds.StationName = f"AWP{study.scanner_serial}"
    ds.StudyDescription = STUDY_DESCRIPTION
    ds.SeriesDescription = series.description
    ds.ManufacturerModelName = "Aera"
    ds.PatientName = visit.patient_name
    ds.PatientID = visit.patient_id
    ds.PatientBirthDate = visit.birth_date
    ds.PatientSex = visit.sex
    ds.PatientAge = visit.age_string
    ds.PatientSize = ds_text(visit.height_m)
    ds.PatientWeight = ds_text(visit.weight_kg)
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = ["SK", "SP", "SS", "OSP"]
    ds.ScanOptions = "PFP"
    ds.MRAcquisitionType = "3D"
    ds.SequenceName = "*fl3d2"
    ds.AngioFlag = "N"
    ds.SliceThickness = ds_text(g.thickness)
    ds.RepetitionTime = "6.69"
    ds.EchoTime = ds_text(echo_time)
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = "63.676024"
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = str(echo_number)
    ds.MagneticFieldStrength = "1.5"
    if style.spacing_between_slices:
        ds.SpacingBetweenSlices = ds_text(g.thickness)
    ds.NumberOfPhaseEncodingSteps = str(series.rows)
    ds.EchoTrainLength = "2"
    ds.PercentSampling = "100"
    ds.PercentPhaseFieldOfView = ds_text(round(100.0 * series.rows / series.columns, 4))
    ds.PixelBandwidth = "490"
    ds.DeviceSerialNumber = str(study.scanner_serial)
    ds.SoftwareVersions = "syngo MR D13"
    ds.ProtocolName = series.description.rsplit("_", 1)[0]
    ds.TransmitCoilName = "Body"
    ds.AcquisitionMatrix = [series.columns, 0, 0, series.rows]
    ds.InPlanePhaseEncodingDirection = "COL"
    ds.FlipAngle = "10"
    ds.VariableFlipAngleFlag = "N"
    ds.SAR = "0.0591"
    ds.add_new(0x00181318, "DS", "0")  # dB/dt
    ds.PatientPosition = style.patient_position
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series.uid
    ds.StudyID = "1"
    ds.SeriesNumber = str(series.number)
    if style.acquisition_numbers != "absent":
        ds.AcquisitionNumber = str(series.acquisition_number)
    ds.ImageOrientationPatient = series.image_orientation
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = series.rows
    ds.Columns = series.columns
    ds.PixelSpacing = [ds_text(g.pixel_spacing), ds_text(g.pixel_spacing)]
    ds.BitsAllocated = 16
    ds.BitsStored = style.bits_stored
    ds.HighBit = style.bits_stored - 1
    ds.PixelRepresentation = 0
    if style.rescale is not None:
        ds.RescaleIntercept = ds_text(style.rescale[1])
        ds.RescaleSlope = ds_text(style.rescale[0])
        ds.RescaleType = "US"
    ds.WindowCenterWidthExplanation = "Algo1"
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00290011, "LO", "SIEMENS MEDCOM HEADER2")
    ds.add_new(0x00291008, "CS", "IMAGE NUM 4")
    ds.add_new(0x00291009, "LO", "20100114")
    ds.add_new(0x00291018, "CS", "MR")
    ds.add_new(0x00291019, "LO", "20100114")
    series_csa = csa.series_header(
        size=study.size,
        description=series.description,
        rows=series.rows,
        columns=series.columns,
        n_slices=g.n_slices,
        thickness=g.thickness,
    )
    ds.add_new(0x00291020, "OB", series_csa)
    ds.add_new(0x00291160, "LO", "com")
    _siemens_mr_header(ds, series)
    return ds


def _siemens_mr_header(ds: Dataset, series: Series) -> None:
    """What real Siemens MR slices carry beside the CSA blobs (syngo MR E11, ukbb-format.md 1.8): the performed
    procedure step, references to the localisers, and the ``SIEMENS MR HEADER`` groups 0019 and 0051 (table
    position included). Values plausible, not a scanner's; they make a header cost to parse what a real one does."""
    g = series.geometry
    table = round(g.z[0] + g.z[-1]) // 2
    ds.InstitutionAddress = "Street StreetNo,City,District,GB,ZIP"
    ds.InstitutionalDepartmentName = "Department"
    ds.OperatorsName = ""
    ds.PerformingPhysicianName = ""
    ds.BodyPartExamined = "WHOLEBODY"
    ds.PerformedProcedureStepStartDate = dicom_date(series.time)
    ds.PerformedProcedureStepStartTime = dicom_time(series.time)
    ds.PerformedProcedureStepID = "MR20150830131310"
    ds.PerformedProcedureStepDescription = "UKBIOBANK^Body"
    ds.CommentsOnThePerformedProcedureStep = ""
    references = []
    for index in range(3):  # the three localiser planes
        item = Dataset()
        item.ReferencedSOPClassUID = MRImageStorage
        item.ReferencedSOPInstanceUID = f"{series.uid.rsplit('.', 4)[0]}.{index + 1}"
        references.append(item)
    ds.ReferencedImageSequence = references
    for group in (0x0019, 0x0051):
        ds.add_new(group << 16 | 0x0010, "LO", "SIEMENS MR HEADER")
        ds.add_new(group << 16 | 0x1008, "CS", "IMAGE NUM 4")
        ds.add_new(group << 16 | 0x1009, "LO", "1.0")
    for element, vr, value in (
        (0x100B, "DS", "6690"), (0x100F, "SH", "Fast"), (0x1011, "SH", "No"), (0x1012, "SL", [0, 0, -table]),
        (0x1013, "SL", [0, 0, -table]), (0x1014, "IS", ["0", "0", "0"]), (0x1016, "DS", "0.3725"),
        (0x1017, "DS", "1"), (0x1018, "IS", "2200"),
    ):
        ds.add_new(0x00190000 | element, vr, value)
    fov = f"FoV {round(g.pixel_spacing * series.rows)}*{round(g.pixel_spacing * series.columns)}"
    for element, vr, value in (
        (0x100A, "LO", "TA 00:17"), (0x100B, "LO", f"{series.rows}*{series.columns}s"), (0x100C, "LO", fov),
        (0x100D, "SH", f"SP F{abs(g.z[0]):.1f}"), (0x100E, "LO", "Tra"), (0x100F, "LO", "BO1-3;SP1-8"),
        (0x1012, "SH", "TP 0"), (0x1013, "SH", "+LPH"), (0x1016, "LO", "M/DIS2D"), (0x1017, "SH", f"SL {g.thickness}"),
        (0x1019, "LO", "A1"),
    ):
        ds.add_new(0x00510000 | element, vr, value)


def slice_elements(
    study: Study,
    series: Series,
    *,
    index: int,
    sop_instance_uid: str,
    image: np.ndarray,
    transfer_syntax: str,
) -> list[Element]:
    """The elements slice ``index`` (0 = most superior) of ``series`` owns, its uint16 pixels included."""
    g = series.geometry
    x0, y0, z = series.image_position(index)
    image = series.style.stored(series.stored(image))
    low, high = int(image.min()), int(image.max())
    image_csa = csa.image_header(
        size=study.size,
        position=(g.x0 + g.pixel_spacing * (series.columns - 1) / 2, g.y0 + g.pixel_spacing * (series.rows - 1) / 2,
                  g.z[index]),
        slice_number=index,
        table_position=round(z),
        echo_time=ECHO[series.channel][0],
        image_type=IMAGE_TYPE[series.channel][-1],
    )
    data = np.ascontiguousarray(image, dtype="<u2")
    if transfer_syntax == RLELossless:
        pixels: Element = (PIXEL_DATA, "OB", Encapsulated(encapsulate([_rle(data, series.style.bits_stored)])))
    else:
        pixels = (PIXEL_DATA, "OW", data.tobytes())
    own: list[Element] = [(0x00080018, "UI", sop_instance_uid)]
    if series.style.times == "slice":
        own.append((0x00080032, "TM", dicom_time(series.slice_time(index))))  # AcquisitionTime
    return [
        *own,
        (0x00200013, "IS", str(g.n_slices - index if series.orientation[2] else index + 1)),  # InstanceNumber
        (0x00200032, "DS", [series.number_text(v) for v in (x0, y0, z)]),  # ImagePositionPatient
        (0x00201041, "DS", ds_text(-z if series.orientation[3] else z)),  # SliceLocation
        (0x00280106, "US", low),  # SmallestImagePixelValue
        (0x00280107, "US", high),  # LargestImagePixelValue
        (0x00281050, "DS", str((low + high) // 2)),  # WindowCenter
        (0x00281051, "DS", str(max(1, high - low))),  # WindowWidth
        (0x00291010, "OB", image_csa),  # CSA image header
        pixels,
    ]


def _rle(image: np.ndarray, bits_stored: int) -> bytes:
    from pydicom.pixels.encoders import RLELosslessEncoder  # pydicom >= 3

    return RLELosslessEncoder.encode(
        image,
        rows=image.shape[0],
        columns=image.shape[1],
        samples_per_pixel=1,
        bits_allocated=16,
        bits_stored=bits_stored,
        pixel_representation=0,
        photometric_interpretation="MONOCHROME2",
        number_of_frames=1,
        encoding_plugin="pydicom",
    )
