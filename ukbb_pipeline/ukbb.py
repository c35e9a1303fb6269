"""UK Biobank constants: field ids and what the bulk files of each field hold."""

from __future__ import annotations

DXA_FIELD = 20158  # DXA images (GE Lunar iDXA), one zip per visit
MRI_FIELD = 20201  # Dixon technique for internal fat, neck-to-knee body MRI
