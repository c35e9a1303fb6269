"""What is worth a look in a subject's outputs, in one vocabulary: the status, the report, the contact sheets and the
paired collection all say it with these words.

A flag never fails a subject (its status stays ok): ``swapped station 3 5`` (unzip_mri found fat and water swapped
there; ``(fixed)`` when it swapped them back), ``seam mismatch 0.41`` (a seam whose harmonised stations still differ
by more than the ``seam_mismatch_limit`` setting), ``window moved +3`` (extract_slices moved the slab in from the
volume's edge), ``left out: <why>`` (collect left the pair out). ``collect`` leaves a pair out for an unfixed swap or
a seam mismatch (both put wrong intensities in the training images) unless ``stage.keep_flagged=true``.

A leaf: plain values in, words out; it imports nothing of the package, so every layer says flags the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

SEAM_MISMATCH_LIMIT = 0.2  # the default of the one seam_mismatch_limit setting (a relative difference)


def swap_flag(stations: Iterable[int], *, fixed: bool) -> str:
    """``swapped station 3 5``, or ``swapped station 3 5 (fixed)`` when the stations were swapped back."""
    return "swapped station " + " ".join(str(number) for number in stations) + (" (fixed)" if fixed else "")


def is_swap_flag(flag: str) -> bool:
    """Whether ``flag`` is a :func:`swap_flag`."""
    return flag.startswith("swapped station ")


def seam_flag(mismatch: float | None, *, limit: float | None) -> str | None:
    """``seam mismatch 0.41`` when ``mismatch`` is above ``limit`` (None: no limit); else None."""
    if limit is None or mismatch is None or not math.isfinite(mismatch) or mismatch <= limit:
        return None
    return f"seam mismatch {mismatch:.2g}"


def window_flag(shift: float | None) -> str | None:
    """``window moved +3`` when extract_slices moved the slab in from the volume's edge; else None."""
    return f"window moved {int(shift):+d}" if shift else None


def flags_of(record: Mapping[str, str], *, seam_mismatch_limit: float | None) -> list[str]:
    """The flags of a state record (its QC columns as text: ``swapped_stations``, ``fat_water_fixed``,
    ``max_seam_mismatch``, ``window_shift``, ``left_out``)."""
    flags = []
    swapped = [token.strip("[]") for token in record.get("swapped_stations", "").replace(",", " ").split()]
    stations = [int(token) for token in swapped if token.isdigit() and token != "0"]
    if stations:
        fixed = record.get("fat_water_fixed", "").strip().lower() in ("true", "1", "yes")
        flags.append(swap_flag(stations, fixed=fixed))
    flags += filter(None, [seam_flag(number(record.get("max_seam_mismatch")), limit=seam_mismatch_limit),
                           window_flag(number(record.get("window_shift")))])
    if record.get("left_out"):
        flags.append(f"left out: {record['left_out']}")
    return flags


def number(value: str | None) -> float | None:
    """A QC figure read from text; None when empty, not a number or not finite."""
    try:
        parsed = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return parsed if parsed is not None and math.isfinite(parsed) else None
