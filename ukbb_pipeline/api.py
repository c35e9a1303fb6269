"""The Python API for one file at a time, without Hydra: the same code the stages run on each input.

    import ukbb_pipeline
    mri = ukbb_pipeline.stitch_mri_zip("1234567_20201_2_0.zip", channels=["F", "W"], z_spacing=3.0)
    fat, spacing = mri.arrays["fat_scan"], mri.attrs["spacing"]        # (x, y, z), mm
    dxa = ukbb_pipeline.read_dxa_zip("1234567_20158_2_0.zip")
    tissue, bone = dxa.arrays["tissue"], dxa.arrays["bone"]             # uint8 as stored; attrs["pixel_spacing"]
    with ukbb_pipeline.open_volume("mris-processed/1234567_20201_2_0.h5") as volume:
        rows = volume.rows("fat_scan", [80, 81])                        # coronal rows, read lazily

The settings and their defaults are the stages' (``UnzipMriConfig`` in :mod:`ukbb_pipeline.config`, listed by
``ukbb-pipeline --help``). A bad file raises :class:`~ukbb_pipeline.errors.InputError` with the one-line reason a
stage would record. File names must follow UK Biobank's ``<eid>_<field>_<instance>_<array>.zip``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ukbb_pipeline.config import UnzipMriConfig, ZipLimits
from ukbb_pipeline.formats.base import Output
from ukbb_pipeline.formats.outputs import open_volume as _open_volume
from ukbb_pipeline.formats.volumes import MriVolume
from ukbb_pipeline.mri.parameters import StitchParameters
from ukbb_pipeline.runtime.inputs import parse_input

_MRI_SETTINGS = {item.name for item in dataclasses.fields(UnzipMriConfig)} - {"name", "input_dir", "output_dir"}


def stitch_mri_zip(path: str | Path, **settings: Any) -> Output:
    """One Dixon MRI zip (field 20201) stitched into one volume per channel: ``arrays`` and ``attrs`` as written.

    ``settings`` are ``unzip_mri``'s options (``channels``, ``z_spacing``, ``fix_swaps``, ``dtype``, ``trim_slices``,
    ``feather_mm``, ``harmonise``, ``limits=ZipLimits(...)``, ...), with the same defaults.
    """
    from ukbb_pipeline.stages.unzip_mri import process_mri_zip

    unknown = sorted(set(settings) - _MRI_SETTINGS)
    if unknown:
        raise TypeError(f"stitch_mri_zip: unknown setting(s) {unknown}; the settings are {sorted(_MRI_SETTINGS)}")
    stitching = {item.name for item in dataclasses.fields(StitchParameters)}
    stitch = StitchParameters(**{key: getattr(value, "value", value) for key, value in settings.items()
                                 if key in stitching})
    rest = {key: value for key, value in settings.items() if key not in stitching}
    return process_mri_zip(parse_input(Path(path).expanduser()), stitch=stitch, **rest)


def read_dxa_zip(path: str | Path, *, limits: ZipLimits | None = None) -> Output:
    """One DXA zip (field 20158): its Total Body ``tissue`` and ``bone`` images and their ``pixel_spacing`` (mm)."""
    from ukbb_pipeline.stages.unzip_dxa import process_dxa_zip

    return process_dxa_zip(parse_input(Path(path).expanduser()), limits=limits or ZipLimits())


def open_volume(path: str | Path) -> MriVolume:
    """A volume or slab written by ``unzip_mri``/``extract_slices`` (any format), opened to read coronal rows lazily."""
    return _open_volume(Path(path).expanduser())
