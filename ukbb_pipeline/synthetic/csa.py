"""Siemens CSA2 private headers: (0029,1010) per image and (0029,1020) per series, in the real binary layout.

Real UK Biobank Dixon slices carry ~11.5 kB and ~80 kB of them; they dominate header parsing time, so synthetic
files carry blobs of the same layout ("SV10" tag tables that nibabel's CSA reader parses) and similar sizes
(smaller at the small size). The values are plausible, not a scanner's.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache

# Tag names of a Siemens MR image header (the values of most are empty, as in real files).
IMAGE_TAGS = (
    "EchoLinePosition", "EchoColumnPosition", "EchoPartitionPosition", "UsedChannelMask", "Actual3DImaPartNumber",
    "ICE_Dims", "B_value", "Filter1", "Filter2", "ProtocolSliceNumber", "RealDwellTime", "PixelFile",
    "PixelFileName", "SliceMeasurementDuration", "SequenceMask", "AcquisitionMatrixText", "MeasuredFourierLines",
    "FlowEncodingDirection", "FlowVenc", "PhaseEncodingDirectionPositive", "NumberOfImagesInMosaic",
    "DiffusionGradientDirection", "ImageGroup", "SliceNormalVector", "DiffusionDirectionality", "TimeAfterStart",
    "FlipAngle", "SequenceName", "RepetitionTime", "EchoTime", "NumberOfAverages", "VoxelThickness",
    "VoxelPhaseFOV", "VoxelReadoutFOV", "VoxelPositionSag", "VoxelPositionCor", "VoxelPositionTra",
    "VoxelNormalSag", "VoxelNormalCor", "VoxelNormalTra", "VoxelInPlaneRot", "ImagePositionPatient",
    "ImageOrientationPatient", "PixelSpacing", "SliceLocation", "SliceThickness", "SpectrumTextRegionLabel",
    "Comp_Algorithm", "Comp_Blended", "Comp_ManualAdjusted", "Comp_AutoParam", "Comp_AdjustedParam",
    "Comp_JobID", "FMRIStimulInfo", "FlowEncodingDirectionString", "RepetitionTimeEffective",
    "CsiImagePositionPatient", "CsiImageOrientationPatient", "CsiPixelSpacing", "CsiSliceLocation",
    "CsiSliceThickness", "OriginalSeriesNumber", "OriginalImageNumber", "ImaAbsTablePosition", "NonPlanarImage",
    "MoCoQMeasure", "LQAlgorithm", "SlicePosition_PCS", "RBMoCoTrans", "RBMoCoRot", "MultistepIndex",
    "ImaRelTablePosition", "ImaCoilString", "RFSWDDataType", "GSWDDataType", "NormalizeManipulated",
    "ImaPATModeText", "B_matrix", "BandwidthPerPixelPhaseEncode", "FMRIStimulLevel", "MosaicRefAcqTimes",
    "AutoInlineImageFilterEnabled", "QCData", "ExamLandmarks", "ExamDataRole", "MRDiffusion",
    "RealWorldValueMapping", "DataFileName", "DistortionCorrectionType", "ImageNumber",
)  # fmt: skip
SERIES_TAGS = (
    "UsedPatientWeight", "NumberOfPrescans", "TransmitterCalibration", "PhaseGradientAmplitude",
    "ReadoutGradientAmplitude", "SelectionGradientAmplitude", "GradientDelayTime", "RfWatchdogMask",
    "RfPowerErrorIndicator", "SarWholeBody", "Sed", "SequenceFileOwner", "Stim_mon_mode", "Operation_mode_flag",
    "dBdt_max", "t_puls_max", "dBdt_thresh", "dBdt_limit", "SW_korr_faktor", "Stim_max_online",
    "Stim_max_ges_norm_online", "Stim_lim", "Stim_faktor", "CoilForGradient", "CoilForGradient2",
    "CoilTuningReflection", "CoilId", "MiscSequenceParam", "MrProtocolVersion", "DataFileName",
    "RepresentativeImage", "PositivePCSDirections", "RelTablePosition", "ReadoutOS", "LongModelName",
    "SliceArrayConcatenations", "SliceResolution", "AbsTablePosition", "AutoAlignMatrix", "MeasurementIndex",
    "CoilString", "PATModeText", "PatReinPattern", "ProtocolChangeHistory", "Isocentered", "MrPhoenixProtocol",
    "GradientMode", "FlowCompensation", "PostProcProtocol", "RecoQualityFactor", "DataRole", "MrEvaProtocol",
)  # fmt: skip

_HEADER = b"SV10\x04\x03\x02\x01"
_DELIMITER = 77
_VR = {"IS": b"IS", "DS": b"DS", "LO": b"LO", "SH": b"SH", "LT": b"LT", "UN": b"UN", "FD": b"FD", "UL": b"UL"}


def _tag(name: str, values: Sequence[str], *, vr: str = "LO", n_items: int = 6) -> bytes:
    """One CSA2 tag: 64-byte name, vm, vr, syngodt, item count, 77, then items of 4 ints + 4-byte-padded text."""
    items = list(values) + [""] * max(0, n_items - len(values))
    out = [struct.pack("<64si4siii", name.encode("ascii"), len(values), _VR.get(vr, b"LO"), 3, len(items), 205)]
    for value in items:
        raw = value.encode("latin-1") + (b"\x00" if value else b"")
        out.append(struct.pack("<4i", len(raw), len(raw), _DELIMITER, len(raw)))
        out.append(raw + b"\x00" * (-len(raw) % 4))
    return b"".join(out)


@lru_cache(maxsize=512)
def _empty_tag(name: str, *, vr: str = "LO", n_items: int = 6) -> bytes:
    """A tag without values (most of a real header); cached, as it is the same in every file."""
    return _tag(name, [], vr=vr, n_items=n_items)


def csa2(tags: Sequence[bytes]) -> bytes:
    """A CSA2 header from encoded tags."""
    return _HEADER + struct.pack("<II", len(tags), _DELIMITER) + b"".join(tags) + b"\x00" * 4


def image_header(
    *,
    size: str,
    position: tuple[float, float, float],
    slice_number: int,
    table_position: int,
    echo_time: float,
    image_type: str,
) -> bytes:
    """The (0029,1010) image header of one slice (~11.5 kB at full size, ~2 kB at small size)."""
    values = {
        "ProtocolSliceNumber": [str(slice_number)],
        "SliceNormalVector": ["0.00000000", "0.00000000", "1.00000000"],
        "SlicePosition_PCS": [f"{v:.8f}" for v in position],
        "ImaRelTablePosition": ["0", "0", str(table_position)],
        "ImaAbsTablePosition": ["0", "0", str(-1200 + table_position)],
        "EchoTime": [f"{echo_time:.8f}"],
        "ICE_Dims": [f"X_1_1_1_1_1_1_1_1_1_1_{slice_number + 1}_1"],
        "ImaCoilString": ["BO1-3;SP1-8"],
        "DataRole": [image_type],
        "ImageNumber": [str(slice_number + 1)],
    }
    names = IMAGE_TAGS if size == "full" else (*IMAGE_TAGS[:20], "SliceNormalVector", "SlicePosition_PCS")
    n_items = 3 if size == "full" else 0
    return csa2(
        [
            _tag(name, values[name], n_items=n_items) if name in values else _empty_tag(name, n_items=n_items)
            for name in names
        ]
    )


def series_header(*, size: str, description: str, rows: int, columns: int, n_slices: int, thickness: float) -> bytes:
    """The (0029,1020) series header, with a MrPhoenixProtocol text (~80 kB at full size, ~8 kB small)."""
    phoenix = _phoenix_protocol(
        target=70_000 if size == "full" else 6_000,
        description=description,
        rows=rows,
        columns=columns,
        n_slices=n_slices,
        thickness=thickness,
    )
    names = SERIES_TAGS if size == "full" else ("UsedPatientWeight", "CoilString", "MrPhoenixProtocol")
    tags = []
    for name in names:
        if name == "MrPhoenixProtocol":
            tags.append(_tag(name, [phoenix], vr="UN", n_items=6 if size == "full" else 1))
        elif name == "CoilString":
            tags.append(_tag(name, ["BO1-3;SP1-8"], n_items=6 if size == "full" else 1))
        else:
            tags.append(_tag(name, [], n_items=6 if size == "full" else 0))
    return csa2(tags)


def _phoenix_protocol(
    *, target: int, description: str, rows: int, columns: int, n_slices: int, thickness: float
) -> str:
    """An ASCCONV protocol text of about ``target`` characters."""
    lines = [
        "### ASCCONV BEGIN ###",
        "ulVersion = 0x14b44b6",
        'tSequenceFileName = "%SiemensSeq%\\fl3d_vibe"',
        f'tProtocolName = "{description.rsplit("_", 1)[0]}"',
        f"sKSpace.lBaseResolution = {columns}",
        f"sKSpace.lPhaseEncodingLines = {rows}",
        f"sKSpace.lPartitions = {n_slices}",
        f"sKSpace.dPhaseResolution = {rows / columns:.6f}",
        "sKSpace.ucDimension = 0x4",
        f"sSliceArray.asSlice[0].dThickness = {n_slices * thickness:.6f}",
        f"sSliceArray.asSlice[0].dPhaseFOV = {500.0 * rows / columns:.6f}",
        "sSliceArray.asSlice[0].dReadoutFOV = 500.000000",
        "sSliceArray.asSlice[0].sNormal.dTra = 1.000000",
        "sSliceArray.lSize = 1",
        "alTR[0] = 6690",
        "alTE[0] = 2390",
        "alTE[1] = 4770",
        "lContrasts = 2",
        "adFlipAngleDegree[0] = 10.000000",
        "sRXSPulse.sCoil",
        "ucReconstructionMode = 0x8",
    ]
    text = "\n".join(lines) + "\n"
    block = 0
    while len(text) < target:
        text += (
            f'sCoilSelectMeas.aRxCoilSelectData[0].asList[{block}].sCoilElementID.tCoilID = "BO{block % 3 + 1}"\n'
            f"sCoilSelectMeas.aRxCoilSelectData[0].asList[{block}].sCoilElementID.lCoilCopy = 1\n"
            f'sCoilSelectMeas.aRxCoilSelectData[0].asList[{block}].sCoilElementID.tElement = "A{block % 8 + 1}"\n'
            f"sCoilSelectMeas.aRxCoilSelectData[0].asList[{block}].lElementSelected = 1\n"
            f"sCoilSelectMeas.aRxCoilSelectData[0].asList[{block}].lRxChannelConnected = {block + 1}\n"
            f"sWipMemBlock.alFree[{block}] = {(block * 7919) % 1000}\n"
        )
        block += 1
    return text + "### ASCCONV END ###"
