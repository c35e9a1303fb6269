"""Per-subject faults of real UK Biobank zips (ukbb-format.md 1.6 and 3), all off by default but member shuffling."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from ukbb_pipeline.synthetic.header_style import TIME_LAYOUTS, HeaderStyle
from ukbb_pipeline.synthetic.stations import N_STATIONS

CHANNELS = ("in", "opp", "F", "W")
MRI_TRANSFER_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless)
MANIFEST_NAMES = ("manifest.cvs", "manifest.csv", None)
HEADER_STYLE_SEED = 18  # mixed_quirks: subject i's header style is drawn from [18, i]


@dataclass(frozen=True)
class MriQuirks:
    """Faults of one Dixon MRI zip. Stations are numbered 1-6 (neck to knee).

    - ``shuffle_members``: zip members in random order (as real zips: never rely on member order).
    - ``manifest_name``: "manifest.cvs" (the usual typo), "manifest.csv", or None for no manifest.
    - ``manifest_malformed``: a run-on line (two records without a line break) and a truncated last line.
    - ``repeated_station``: that station acquired twice. The first acquisition keeps its normal SeriesNumbers and is
      motion-corrupted (shifted body, ghost, more noise); the repeat comes last, with SeriesNumbers 25-28 and the
      latest SeriesTime, and holds the good data.
    - ``dropped_slice``: (station, slice index) missing; index 0 is the most superior slice (InstanceNumber 1).
      ``dropped_slice_channels`` says from which series it is missing (all four by default).
    - ``missing_station``: no series at all for that station (the others keep their SeriesNumbers).
    - ``swapped_station``: the fat and water images of that station exchanged (F series holds water, W holds fat).
    - ``size_mismatch_station``: the W series of that station has fewer Rows and Columns than F (same IPP: the
      common region is the first rows and columns), as seen by Langner's MIMIR.
    - ``slab_edge_loss``: the 2-4 outermost slices at both ends of every station lose signal and gain noise.
    - ``station_gains``: one multiplicative intensity per station (e.g. 0.8-1.25); None for 1.0 everywhere.
    - ``noise_sigma``: standard deviation of the Gaussian noise added before taking the magnitude.
    - ``transfer_syntax``: Explicit VR LE (default), Implicit VR LE, Deflated Explicit VR LE or RLE Lossless.
    - ``swapped_region``: (station, side, top, bottom): F and W exchanged in part of a station only. ``side`` is
      "left" (patient's left: LPS x above the body's midline), "right" or "both"; ``top`` and ``bottom`` are
      fractions of the slab from its superior edge (0, 1 for the whole slab), e.g. (5, "left", 0, 1) = one thigh.
    - ``partial_repeat``: (station, fraction): that station acquired again later, aborted after the first
      ``fraction`` of its slices (from the head); the first acquisition is good, the repeat too where it reaches.
    - ``shifted_repeat``: (station, mm): that station acquired again later with the table moved ``mm`` towards the
      feet (new SeriesNumbers 25-28); the first acquisition stays good.
    - ``rereconstructed_station``: that station's acquisition reconstructed again later (same AcquisitionTime,
      SeriesNumbers 29-32, a later SeriesTime); with ``rereconstruction_channels`` only those channels.
    - ``derived_series``: per station, derived copies beside the standard series (``<description>_ND``, ImageType
      with ND) of these channels, holding distorted images (a reader must not use them).
    - ``touching_seam``: that seam (k = stations k|k+1) has slabs that just touch (0 mm overlap); the stations above
      it move up.
    - ``non_image_member``: an encapsulated-PDF DICOM report (no PixelData) in the zip.
    - ``orientation``: how slices are stored: (rows run posterior->anterior, columns run left->right, InstanceNumber
      counted from the feet, SliceLocation with the opposite sign); all False is the usual storage.
    - ``position_jitter``: per-subject slice positions (a random z offset up to 2 mm, x/y up to 1 mm) and
      per-channel differences of a few micrometres in the DS text of ImagePositionPatient.
    - ``headers``: how the scanner writes its headers (times, echoes in one series, ImageType values, number
      text, BitsStored, rescale, PatientPosition, SpacingBetweenSlices; see :class:`HeaderStyle`).
    """

    shuffle_members: bool = True
    manifest_name: str | None = "manifest.cvs"
    manifest_malformed: bool = False
    repeated_station: int | None = None
    dropped_slice: tuple[int, int] | None = None
    dropped_slice_channels: tuple[str, ...] = CHANNELS
    missing_station: int | None = None
    swapped_station: int | None = None
    size_mismatch_station: int | None = None
    slab_edge_loss: bool = False
    station_gains: tuple[float, ...] | None = None
    noise_sigma: float = 6.0
    transfer_syntax: str = ExplicitVRLittleEndian
    swapped_region: tuple[int, str, float, float] | None = None
    partial_repeat: tuple[int, float] | None = None
    shifted_repeat: tuple[int, float] | None = None
    rereconstructed_station: int | None = None
    rereconstruction_channels: tuple[str, ...] = CHANNELS
    derived_series: tuple[str, ...] = ()
    touching_seam: int | None = None
    non_image_member: bool = False
    orientation: tuple[bool, bool, bool, bool] = (False, False, False, False)
    position_jitter: bool = False
    headers: HeaderStyle = HeaderStyle()  # noqa: RUF009 (frozen, so a shared default is safe)

    def __post_init__(self) -> None:
        for name in ("repeated_station", "missing_station", "swapped_station", "size_mismatch_station"):
            station = getattr(self, name)
            if station is not None and not 1 <= station <= N_STATIONS:
                raise ValueError(f"{name} must be a station number 1-{N_STATIONS}, got {station}")
        if self.dropped_slice is not None and not 1 <= self.dropped_slice[0] <= N_STATIONS:
            raise ValueError(f"dropped_slice station must be 1-{N_STATIONS}, got {self.dropped_slice}")
        if not set(self.dropped_slice_channels) <= set(CHANNELS):
            raise ValueError(f"dropped_slice_channels must be among {CHANNELS}, got {self.dropped_slice_channels}")
        if self.station_gains is not None and len(self.station_gains) != N_STATIONS:
            raise ValueError(f"station_gains needs {N_STATIONS} values, got {self.station_gains}")
        if self.manifest_name not in MANIFEST_NAMES:
            raise ValueError(f"manifest_name must be one of {MANIFEST_NAMES}, got {self.manifest_name!r}")
        if self.transfer_syntax not in MRI_TRANSFER_SYNTAXES:
            raise ValueError(f"transfer_syntax must be one of {MRI_TRANSFER_SYNTAXES}, got {self.transfer_syntax}")
        if self.swapped_region is not None:
            station, side, top, bottom = self.swapped_region
            if not 1 <= station <= N_STATIONS or side not in ("left", "right", "both") or not 0 <= top < bottom <= 1:
                raise ValueError(f"swapped_region must be (station, left|right|both, top, bottom), got "
                                 f"{self.swapped_region}")
        repeats = [r for r in (self.partial_repeat, self.shifted_repeat) if r is not None]
        if len(repeats) > 1 or (repeats and self.repeated_station is not None):
            raise ValueError("one kind of repeat per subject")
        if self.touching_seam is not None and not 1 <= self.touching_seam < N_STATIONS:
            raise ValueError(f"touching_seam must be 1-{N_STATIONS - 1}, got {self.touching_seam}")
        if self.noise_sigma < 0:
            raise ValueError(f"noise_sigma must be >= 0, got {self.noise_sigma}")
        if self.missing_station is not None and self.missing_station in (
            self.repeated_station,
            self.swapped_station,
            self.size_mismatch_station,
            self.dropped_slice[0] if self.dropped_slice else None,
        ):
            raise ValueError("missing_station cannot also carry another station fault")

    @classmethod
    def varied(cls, rng: np.random.Generator, **faults: Any) -> MriQuirks:
        """The conventions real exams vary in, drawn at random (orientation, position jitter, header style, member
        order, manifest), with ``faults``."""
        orientation = tuple(bool(flag) for flag in rng.random(4) < 0.5)
        conventions: dict[str, Any] = {
            "orientation": orientation,
            "position_jitter": True,
            "headers": HeaderStyle.random(rng),
            "shuffle_members": bool(rng.random() < 0.75),
            "manifest_name": MANIFEST_NAMES[int(rng.integers(len(MANIFEST_NAMES)))],
            "manifest_malformed": bool(rng.random() < 0.3),
        }
        return cls(**{**conventions, **faults})

    def gain(self, station: int) -> float:
        return 1.0 if self.station_gains is None else float(self.station_gains[station - 1])


FOREIGN_PROTOCOLS = ("AP Spine", "Total Body")


@dataclass(frozen=True)
class DxaQuirks:
    """Variations and faults of one DXA zip (ukbb-format.md 3.4).

    Every zip varies anyway, at random per subject: which regional images it holds and their InstanceNumbers, the
    AP Spine's InstanceNumber tag differing from its UID's image number, and times (the Total Body pair is acquired
    at the study's start, before the regional scans). On top of that:

    - ``foreign``: another participant's images beside the exam (other PatientID, study and series, SeriesNumber 2):
      ``"AP Spine"`` as in the public example zip (dated earlier), ``"Total Body"`` a whole Total Body pair of another
      body (dated later: never take "the newest").
    - ``rgb_report``: an RGB 'Total Body' screen capture (Secondary Capture) of the exam.
    - ``pdf_report``: an encapsulated PDF report (no PixelData), labelled 'Total Body'.
    - ``monochrome1``: every greyscale image of the exam stored inverted, (2^BitsStored - 1) - value.
    - ``swapped_instance_numbers``: the bone image has the lower InstanceNumber (11), the soft-tissue image 12.
    - Faults a correct reader refuses: ``n_total_body_pairs=2`` (the whole-body scan repeated: a second pair, 13 and
      14, later and the body moved; which pair is meant cannot be told), ``only_one_total_body`` (no bone image),
      ``third_total_body`` (an extra greyscale Total Body image of the same geometry, InstanceNumber 13),
      ``reversed_exposed_area`` (ExposedArea written [height, width]: 0.8 x 7 mm pixels).
    - ``regional_images``: False for a zip with the Total Body images only.
    - ``shuffle_members``, ``manifest_name``: as for MRI.
    """

    n_total_body_pairs: int = 1
    only_one_total_body: bool = False
    regional_images: bool = True
    shuffle_members: bool = True
    manifest_name: str | None = "manifest.cvs"
    foreign: tuple[str, ...] = ()
    rgb_report: bool = False
    pdf_report: bool = False
    monochrome1: bool = False
    swapped_instance_numbers: bool = False
    third_total_body: bool = False
    reversed_exposed_area: bool = False

    def __post_init__(self) -> None:
        if self.n_total_body_pairs not in (1, 2):
            raise ValueError(f"n_total_body_pairs must be 1 or 2, got {self.n_total_body_pairs}")
        if self.manifest_name not in MANIFEST_NAMES:
            raise ValueError(f"manifest_name must be one of {MANIFEST_NAMES}, got {self.manifest_name!r}")
        if not set(self.foreign) <= set(FOREIGN_PROTOCOLS) or len(set(self.foreign)) != len(self.foreign):
            raise ValueError(f"foreign must hold distinct names among {FOREIGN_PROTOCOLS}, got {self.foreign}")

    @property
    def fault(self) -> str | None:
        """The fault that makes a correct reader fail this zip, or None when it should read it."""
        for name in ("only_one_total_body", "third_total_body", "reversed_exposed_area"):
            if getattr(self, name):
                return name
        return "n_total_body_pairs" if self.n_total_body_pairs == 2 else None


# One subject per fault, for demos and integration tests; the last two make a correct reader fail by default.
_MRI_CATALOGUE = (
    MriQuirks(),
    MriQuirks(swapped_station=3),
    MriQuirks(repeated_station=2, position_jitter=True),
    MriQuirks(dropped_slice=(3, 10), swapped_region=(5, "left", 0.0, 1.0), orientation=(True, False, True, True)),
    MriQuirks(size_mismatch_station=5, manifest_name="manifest.csv", derived_series=("W",), non_image_member=True),
    MriQuirks(slab_edge_loss=True, station_gains=(0.85, 1.0, 1.2, 0.9, 1.1, 0.95), touching_seam=4),
    MriQuirks(manifest_malformed=True, transfer_syntax=ImplicitVRLittleEndian, partial_repeat=(3, 0.5)),
    MriQuirks(manifest_name=None, noise_sigma=15.0, shifted_repeat=(2, 60.0), rereconstructed_station=5,
              orientation=(False, True, False, False), position_jitter=True),
)
_DXA_CATALOGUE = (
    DxaQuirks(),
    DxaQuirks(foreign=("AP Spine",), rgb_report=True),  # as the public example zip, plus a screen capture
    DxaQuirks(regional_images=False),
    DxaQuirks(manifest_name="manifest.csv", monochrome1=True, swapped_instance_numbers=True, pdf_report=True),
)
_FAILING = (MriQuirks(missing_station=4), DxaQuirks(only_one_total_body=True))


def mixed_quirks(
    n_subjects: int, *, include_failures: bool = False
) -> tuple[dict[int, MriQuirks], dict[int, DxaQuirks]]:
    """Quirks for ``make_cohort`` cycling through the catalogue of faults (subject 0 is clean and tidy; every other
    subject's MRI headers in a style of its own, :meth:`HeaderStyle.random` with the time layouts in turn, the same
    for the same index).

    With ``include_failures`` the last subject lacks MRI station 4 and its DXA bone image, which a reader should
    report as a failure (unless missing stations are allowed).
    """
    mri = {i: _MRI_CATALOGUE[i % len(_MRI_CATALOGUE)] for i in range(n_subjects)}
    for i in range(1, n_subjects):
        style = HeaderStyle.random(np.random.default_rng([HEADER_STYLE_SEED, i]))
        style = dataclasses.replace(style, times=TIME_LAYOUTS[i % len(TIME_LAYOUTS)])
        mri[i] = dataclasses.replace(mri[i], headers=style)
    dxa = {i: _DXA_CATALOGUE[i % len(_DXA_CATALOGUE)] for i in range(n_subjects)}
    if include_failures and n_subjects > 1:
        mri[n_subjects - 1], dxa[n_subjects - 1] = _FAILING[0], _FAILING[1]
    return mri, dxa
