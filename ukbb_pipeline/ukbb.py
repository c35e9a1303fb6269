"""UK Biobank constants: field ids, what the bulk files of each field hold, and how their names read."""

from __future__ import annotations

import re

DXA_FIELD = 20158  # DXA images (GE Lunar iDXA), one zip per visit
MRI_FIELD = 20201  # Dixon technique for internal fat, neck-to-knee body MRI

# The Dixon channels, named by the SeriesDescription suffix UK Biobank uses (`..._F`, `_W`, `_in`, `_opp`).
DIXON_CHANNELS = ("F", "W", "in", "opp")

# An EID: UK Biobank's participant ids are 7 digits; 6-8 are accepted (other applications' pseudonymised ids).
EID_PATTERN = r"\d{6,8}"
EID = re.compile(rf"^{EID_PATTERN}$")
# The dataset name each channel is written as (the original scripts' names for fat and water).
DIXON_OUTPUT_NAMES = {"F": "fat_scan", "W": "water_scan", "in": "in_scan", "opp": "opp_scan"}
