"""How a scanner writes the headers of a Dixon exam: the properties real files vary in that a reader must not assume.

UK Biobank's own files are not public, so none of these is known for them ([?]/[I] in ukbb-format.md 1.4, 1.7, 1.8);
real Siemens and Philips headers (public validation DICOMs, ukbb-format.md 1.8) show every one of the non-default
values. The default is the tidy style the generator always wrote; :meth:`HeaderStyle.random` draws every property
at random, as the demo cohort does per subject. docs/reference/real-headers.md lists them with the reader's answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIME_LAYOUTS = ("station", "series", "slice", "absent")
ACQUISITION_NUMBERS = ("one", "counted", "absent")
PATIENT_POSITIONS = ("HFS", "FFS")
BITS_STORED = (12, 16)
REAL_RESCALES = ((1.2366, 0.0), (2.0, 0.0), (1.5, -50.0))  # Philips writes slopes like 1.2366 (ukbb-format.md 1.8)


@dataclass(frozen=True)
class HeaderStyle:
    """The header conventions of one exam (all per exam: a scanner does not change them between stations).

    - ``times``: ``station``: one AcquisitionTime per station, SeriesTimes 0.35 s apart; ``series``: each channel
      series its own SeriesTime and AcquisitionTime about a second apart; ``slice``: every slice and echo its own
      AcquisitionTime (echoes 0.75 s apart, as Siemens Prisma writes); ``absent``: no SeriesDate/Time and no
      AcquisitionDate/Time at all.
    - ``acquisition_numbers``: AcquisitionNumber 1 for every series (as Siemens 3-D scans), ``counted`` (each
      acquisition its own, as Philips writes 13, 22, ...; a re-reconstruction keeps its acquisition's) or ``absent``.
    - ``echoes_in_one_series``: in and opp as the two echoes of one series (one SeriesInstanceUID and number,
      InstanceNumber restarting per echo, description without a channel suffix), told apart by EchoNumbers and
      EchoTime only.
    - ``fat_water_in_one_series``: F and W in one series told apart by ImageType (FAT / WATER) only; needs
      ``image_type_tokens``.
    - ``image_type_tokens``: ImageType with the Dixon values (``...\\M\\DIXON\\WATER``) or without
      (``ORIGINAL\\PRIMARY\\M\\ND``, as real Siemens files without distortion correction).
    - ``scanner_numbers``: IOP cosines like ``4.897e-012`` instead of 0 and IPP with 14 significant digits
      (``-104.99999999949``), as real scanners write them.
    - ``bits_stored``: 12 (HighBit 11) or 16 (HighBit 15).
    - ``rescale``: (RescaleSlope, RescaleIntercept) of every slice, pixels stored as round((value - b) / m);
      None writes no rescale tags.
    - ``patient_position``: HFS, or FFS (feet first: the stations are acquired knees first; IPP stays in
      patient coordinates).
    - ``spacing_between_slices``: SpacingBetweenSlices written or left out.
    - ``phase_images``: the echoes' phase images (ImageType ``ORIGINAL\\PRIMARY\\P\\ND``) written in the in and
      opp series beside the magnitudes, as Philips stores them.
    """

    times: str = "station"
    acquisition_numbers: str = "one"
    echoes_in_one_series: bool = False
    fat_water_in_one_series: bool = False
    image_type_tokens: bool = True
    scanner_numbers: bool = False
    bits_stored: int = 12
    rescale: tuple[float, float] | None = None
    patient_position: str = "HFS"
    spacing_between_slices: bool = True
    phase_images: bool = False

    def __post_init__(self) -> None:
        if self.times not in TIME_LAYOUTS:
            raise ValueError(f"times must be one of {TIME_LAYOUTS}, got {self.times!r}")
        if self.acquisition_numbers not in ACQUISITION_NUMBERS:
            raise ValueError(f"acquisition_numbers must be one of {ACQUISITION_NUMBERS}, "
                             f"got {self.acquisition_numbers!r}")
        if self.patient_position not in PATIENT_POSITIONS:
            raise ValueError(f"patient_position must be one of {PATIENT_POSITIONS}, got {self.patient_position!r}")
        if self.bits_stored not in BITS_STORED:
            raise ValueError(f"bits_stored must be one of {BITS_STORED}, got {self.bits_stored}")
        if self.fat_water_in_one_series and not self.image_type_tokens:
            raise ValueError("fat_water_in_one_series needs image_type_tokens: F and W are told apart by ImageType")
        if self.rescale is not None and not self.rescale[0] > 0:
            raise ValueError(f"rescale slope must be positive, got {self.rescale}")

    @classmethod
    def random(cls, rng: np.random.Generator) -> HeaderStyle:
        """Every property drawn at random (each value about equally often)."""
        tokens = bool(rng.random() < 0.5)
        return cls(
            times=str(rng.choice(TIME_LAYOUTS)),
            acquisition_numbers=str(rng.choice(ACQUISITION_NUMBERS)),
            echoes_in_one_series=bool(rng.random() < 0.5),
            fat_water_in_one_series=tokens and bool(rng.random() < 0.5),
            image_type_tokens=tokens,
            scanner_numbers=bool(rng.random() < 0.5),
            bits_stored=int(rng.choice(BITS_STORED)),
            rescale=None if rng.random() < 0.5 else REAL_RESCALES[int(rng.integers(len(REAL_RESCALES)))],
            patient_position=str(rng.choice(PATIENT_POSITIONS)),
            spacing_between_slices=bool(rng.random() < 0.5),
            phase_images=bool(rng.random() < 0.3),
        )

    def stored(self, image: np.ndarray) -> np.ndarray:
        """The stored pixel values of a uint16 ``image`` under this style's rescale (unchanged without one)."""
        if self.rescale is None:
            return image
        slope, intercept = self.rescale
        values = np.rint((image.astype(np.float64) - intercept) / slope)
        return np.clip(values, 0, 2**self.bits_stored - 1).astype(np.uint16)
