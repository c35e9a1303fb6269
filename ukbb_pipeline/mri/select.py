"""Which Dixon series to use: the standard ones, not derived copies that Siemens scanners can store beside them.

A standard series has the SeriesDescription of the UK Biobank protocol (``Dixon_noBH_<c>`` or ``Dixon_BH_17s_<c>``,
c one of in, opp, F, W; ukbb-format.md 1.3) and an ImageType that does not mark it as derived. Siemens computes F and
W from the echoes, so their ImageType is ``DERIVED\\PRIMARY\\...`` in standard series too: ``DERIVED`` marks a derived
copy only for the in/opp echoes, which are stored ``ORIGINAL``. ``ND`` (not distortion corrected) and ``SECONDARY``
mark derived series for every channel, as does a description with anything after the channel (``..._W_ND``).

A series holding both echoes (or F and W) has the description without the channel (``Dixon_noBH``). Real Siemens
files written without distortion correction mark every image ``ND`` (``ORIGINAL\\PRIMARY\\M\\ND``): so a series
with a standard description but a derived mark is second best, used silently when no unmarked one of its channel
exists.

Series of a channel are set aside (with a note naming them) whenever the zip has a better one of that channel; a zip
with no standard description for a channel (another protocol's names) keeps what it has, with a note.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ukbb_pipeline.mri.series import Series

STANDARD_DESCRIPTION = re.compile(r"^Dixon_(noBH|BH_17s)(_(in|opp|F|W))?$")
DERIVED_TOKENS = {"ND", "SECONDARY"}  # ImageType values that mark a derived series of any channel
ECHO_CHANNELS = ("in", "opp")  # stored ORIGINAL; a DERIVED one is a derived copy


def is_standard(series: Series) -> bool:
    """Whether ``series`` is one of the protocol's standard Dixon series (see the module text)."""
    tokens = {token.strip().upper() for token in series.image_type.split("\\") if token.strip()}
    if tokens & DERIVED_TOKENS:
        return False
    if series.channel in ECHO_CHANNELS and "DERIVED" in tokens:
        return False
    return bool(STANDARD_DESCRIPTION.match(series.description.strip()))


def select_standard(series: Sequence[Series]) -> tuple[list[Series], list[str]]:
    """The series to use, and notes naming those set aside (see the module text)."""
    best: dict[str, int] = {}
    for item in series:
        best[item.channel] = min(best.get(item.channel, 2), _rank(item))
    kept = [item for item in series if _rank(item) == best[item.channel]]
    ignored = [item for item in series if _rank(item) > best[item.channel]]
    fallback = [item for item in kept if best[item.channel] == 2]
    notes = []
    if ignored:
        notes.append(f"ignored {len(ignored)} derived or non-standard series: {_listing(ignored)}")
    if fallback:
        notes.append(f"no standard Dixon series of channel {'/'.join(sorted({s.channel for s in fallback}))}: "
                     f"used the non-standard {_listing(fallback)}")
    return kept, notes


def _rank(series: Series) -> int:
    """0: standard; 1: a standard description with a derived mark in ImageType; 2: anything else."""
    if is_standard(series):
        return 0
    return 1 if STANDARD_DESCRIPTION.match(series.description.strip()) else 2


def _listing(series: Sequence[Series]) -> str:
    ordered = sorted(series, key=lambda s: (-1 if s.number is None else s.number, s.description))
    shown = ", ".join(s.label for s in ordered[:6])
    return shown + (f" and {len(ordered) - 6} more" if len(ordered) > 6 else "")
