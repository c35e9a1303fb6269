"""Who and when: anonymised patient codes, visit dates and scanner identities shared by a subject's zips.

UK Biobank anonymises names and ids into space-separated two-character groups (PatientName ``ES S3 TE 4S^Bio``,
PatientID ``J3 DE P5 C5``). The DXA and MRI zips of one visit get the same codes and the same day.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

_CODE_ALPHABET = string.ascii_uppercase + string.digits
_FIRST_VISIT = (date(2014, 8, 1), date(2020, 3, 1))  # instance 2
_REPEAT_VISIT = (date(2019, 6, 1), date(2023, 12, 1))  # instance 3
SIEMENS_ROOT = "1.3.12.2.1107.5.2.18"  # Siemens MR UID root (+ .<scanner serial>.<timestamp>...)
GE_LUNAR_ROOT = "1.2.840.113619.2.110"  # GE Lunar UID root (+ .<device serial>.<YYYYMMDDhhmmss>...)
CENTRES = ("Stockport", "Reading", "Newcastle")  # the imaging centres' department names (made-up devices below)
MRI_SCANNER_SERIALS = (45961, 66064, 40418)  # synthetic Siemens MAGNETOM Aera serial numbers, one per centre
DXA_DEVICE_SERIALS = (200112, 200537, 200941)  # synthetic GE Lunar iDXA serial numbers, one per centre
DXA_STATION_NAMES = ("UKB001204", "UKB002311", "UKB003127")  # synthetic, in the real "UKB" + 6 digits style


@dataclass(frozen=True)
class Visit:
    """One participant's imaging visit: anonymised codes, demographics, the day and the imaging centre."""

    eid: int
    instance: int
    patient_name: str
    patient_id: str
    sex: str
    age: int
    birth_year: int
    height_m: float
    weight_kg: float
    day: date
    centre: int  # 0-2: which of the imaging centres (scanner and DXA device identities follow from it)

    @property
    def birth_date(self) -> str:
        return f"{self.birth_year}0101"  # UK Biobank keeps the year only

    @property
    def age_string(self) -> str:
        return f"{self.age:03d}Y"

    def at(self, seconds_after_eight: float) -> datetime:
        """A time of the visit day, given in seconds after 08:00."""
        return datetime.combine(self.day, datetime.min.time()) + timedelta(hours=8, seconds=seconds_after_eight)


def visit(*, eid: int, instance: int, seed: int) -> Visit:
    """The visit of (eid, instance), deterministic in ``seed``."""
    rng = np.random.default_rng([seed, eid, instance, 4242])
    first, last = _REPEAT_VISIT if instance >= 3 else _FIRST_VISIT
    day = first + timedelta(days=int(rng.integers(0, (last - first).days)))
    age = int(rng.integers(45, 81))
    sex = str(rng.choice(["F", "M"]))
    height = float(rng.normal(1.76 if sex == "M" else 1.63, 0.07))
    return Visit(
        eid=eid,
        instance=instance,
        patient_name=_code(rng) + "^Bio",
        patient_id=_code(rng),
        sex=sex,
        age=age,
        birth_year=day.year - age,
        height_m=round(height, 2),
        weight_kg=round(float(rng.normal(26.5, 4.0)) * height**2, 1),
        day=day,
        centre=int(rng.integers(0, 3)),
    )


def _code(rng: np.random.Generator) -> str:
    letters = rng.choice(list(_CODE_ALPHABET), size=8)
    return " ".join("".join(letters[i : i + 2]) for i in range(0, 8, 2))


def dicom_date(when: date | datetime) -> str:
    return when.strftime("%Y%m%d")


def dicom_time(when: datetime) -> str:
    """HHMMSS.ffffff, as Siemens writes times."""
    return when.strftime("%H%M%S.%f")


class UidFactory:
    """Unique, deterministic UIDs under one device root, in the style of the device's own."""

    def __init__(self, root: str, *, rng: np.random.Generator) -> None:
        self.root = root
        self._base = int(rng.integers(0, 10**7))
        self._count = 0

    def _serial(self) -> int:
        self._count += 1
        return (self._base + self._count * 7919) % 10**8

    def siemens_instance(self, when: datetime) -> str:
        """Like ``<root>.<serial>.20160912131310384400823``: a timestamp, then a unique tail."""
        return f"{self.root}.{when:%Y%m%d%H%M%S}{when.microsecond // 10000:02d}{self._serial():08d}"

    def siemens_series(self, when: datetime) -> str:
        return f"{self.root}.{when:%Y%m%d%H%M%S}{when.microsecond // 10000:02d}{self._serial():08d}.0.0.0"

    def siemens_study(self, when: datetime) -> str:
        return f"{self.root}.30000{when:%y%m%d%H%M%S}{self._serial():08d}"

    def siemens_frame_of_reference(self, when: datetime) -> str:
        return f"{self.root}.1.{when:%Y%m%d%H%M%S}{when.microsecond // 1000:03d}.0.0.0"
