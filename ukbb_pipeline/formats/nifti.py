"""NIfTI outputs, for viewers (ITK-SNAP, 3D Slicer, FSLeyes) and segmenters (nnU-Net, TotalSegmentator): one
``.nii.gz`` per image.

Layout: ``<output_dir>/<stem>/<dataset>.nii.gz`` (e.g. ``fat_scan.nii.gz``, ``water_scan.nii.gz``), written as one
folder atomically; the settings fingerprint and every attribute go to a JSON sidecar in the stage's metadata folder,
as with the pickle writer.

Storage (``writer.layout``). ``ras`` (the default): voxels stored in the closest canonical layout, axis codes
(R, A, S): the first array axis runs to the patient's right, the second anterior, the third superior, as dcm2niix
writes a Dixon station and ``nibabel.as_closest_canonical`` gives, so code that reads the raw array (or builds an
nnU-Net dataset without reorienting) sees what other UK Biobank NIfTI files show. ``pipeline``: the pipeline's own
array axes, as in HDF5 and pickle outputs (i: x right->left, j: y anterior->posterior, k: z head->feet; axis codes
(L, P, I)). Either way the affine (qform and sform, code 1, scanner) puts every voxel at its true position, and the
readers here give the pipeline's axes back.

The pipeline's volumes put voxel (i, j, k) at LPS ``origin + (i*sx, j*sy, -k*sz)``; NIfTI's world space is RAS, so
the affine in the pipeline's axes negates x and y: RAS = (-(ox + i*sx), -(oy + j*sy), oz - k*sz).

DXA images (2-D, no position in the DICOM) are 2-D coronal images: in the pipeline's axes (rows, columns, 1), rows
running head->feet and columns towards the patient's left (DICOM PatientOrientation ``L\\F``), so RAS =
(-column*sc, 0, -row*sr) with the origin at 0; stored R-A-S they are (columns, 1, rows) with the rows flipped. They
open in the right orientation, but their position is not the MRI's: the DXA and the MRI share no coordinate system.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ukbb_pipeline import __version__
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.formats.sidecar import read_sidecar, sidecar_attrs, write_sidecar
from ukbb_pipeline.formats.volumes import ArrayVolume, MriVolume, first_line
from ukbb_pipeline.runtime.atomic import atomic_dir
from ukbb_pipeline.runtime.folders import StageFolders

INSTALL_HINT = 'writer=nifti needs nibabel: pip install nibabel (or pip install "<your checkout>[nifti]")'
SCANNER = 1  # NIfTI xform code: scanner-based anatomical coordinates
LAYOUTS = ("ras", "pipeline")  # writer.layout: the closest canonical storage, or the pipeline's own array axes
VOLUME_AXES = ("L", "P", "I")  # the pipeline's volume and slab axes as NIfTI axis codes
PROJECTION_AXES = ("I", "L", "A")  # a DXA image (rows, columns, 1)


def require_nibabel() -> Any:
    """Import nibabel, or fail with the line that installs it."""
    try:
        import nibabel
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return nibabel


def volume_affine(*, spacing: Any, origin: Any) -> np.ndarray:
    """Voxel (i, j, k) -> RAS mm for the pipeline's volumes and slabs (LPS origin, k towards the feet)."""
    sx, sy, sz = (float(value) for value in spacing)
    ox, oy, oz = (float(value) for value in origin)
    return np.array(
        [
            [-sx, 0.0, 0.0, -ox],
            [0.0, -sy, 0.0, -oy],
            [0.0, 0.0, -sz, oz],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def projection_affine(*, pixel_spacing: Any) -> np.ndarray:
    """Pixel (row, column, 0) -> RAS mm for a coronal projection (rows to the feet, columns to the patient's left)."""
    row, column = (float(value) for value in pixel_spacing)
    return np.array(
        [
            [0.0, -column, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [-row, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


class NiftiWriter(Writer):
    name = "nifti"
    suffix = ".nii.gz"

    def __init__(self, *, compression_level: int = 1, layout: str = "ras"):
        require_nibabel()  # fail at start-up, with the install line, when it is missing
        self.compression_level = compression_level
        self.layout = layout

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "layout": self.layout}

    def output_path(self, folders: StageFolders, stem: str, *, nested: bool = False) -> Path:
        """The folder ``<output_dir>/<stem>/`` holding one ``<dataset>.nii.gz`` per image."""
        return folders.output / stem

    def write(
        self, folders: StageFolders, stem: str, output: Output, *, fingerprint: str, nested: bool = False
    ) -> Path:
        final = self.output_path(folders, stem)
        nibabel = require_nibabel()
        affine = self._affine(output)
        sizes = {}
        with atomic_dir(final, scratch_dir=folders.scratch) as tmp_dir:
            for name, array in output.arrays.items():
                data = array if array.ndim == 3 else np.asarray(array)[:, :, None]
                image = nibabel.Nifti1Image(np.asarray(data), affine)
                if self.layout == "ras":
                    image = nibabel.as_closest_canonical(image)
                image.set_qform(image.affine, code=SCANNER)
                image.set_sform(image.affine, code=SCANNER)
                image.header.set_xyzt_units("mm")
                image.header["descrip"] = f"ukbb-pipeline {stem} {name}".encode()[:79]
                path = tmp_dir / f"{name}{self.suffix}"
                with open(path, "wb") as raw, gzip.GzipFile(
                    filename="", mode="wb", fileobj=raw, compresslevel=self.compression_level, mtime=0
                ) as handle:
                    image.to_stream(handle)
                sizes[path.name] = path.stat().st_size
        sidecar = {
            "settings_fingerprint": fingerprint,
            "pipeline_version": __version__,
            "files": sizes,
            "layout": self.layout,
            "affine": affine.tolist(),  # in the pipeline's axes (the files hold it reoriented when stored R-A-S)
            "attrs": output.attrs,
        }
        write_sidecar(folders, stem, sidecar)
        return final

    def stored_fingerprint(self, folders: StageFolders, stem: str, *, nested: bool = False) -> str | None:
        """The sidecar's fingerprint, when every file it lists is there with the recorded size."""
        folder = self.output_path(folders, stem)
        try:
            sidecar = read_sidecar(folders, stem)
            files = sidecar["files"]
            if not files or any((folder / name).stat().st_size != size for name, size in files.items()):
                return None
            return str(sidecar["settings_fingerprint"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    @staticmethod
    def _affine(output: Output) -> np.ndarray:
        ndims = {np.ndim(array) for array in output.arrays.values()}
        if ndims == {3}:
            if "origin" not in output.attrs:
                raise ValueError("a 3-D output needs an 'origin' attribute for its NIfTI affine")
            return volume_affine(spacing=output.attrs[output.spacing_attr], origin=output.attrs["origin"])
        if ndims == {2}:
            return projection_affine(pixel_spacing=output.attrs[output.spacing_attr])
        raise ValueError(f"NIfTI output needs 2-D or 3-D images of one kind, got dimensions {sorted(ndims)}")



# ---------------------------------------------------------------------------------------------------------------------
# Reading: a ``<stem>/`` folder of ``<dataset>.nii.gz``; attributes from the sidecar, else geometry from the affine.


def make_writer(config: Any) -> NiftiWriter:
    """The writer ``writer=nifti`` configures (it needs nibabel: without it, the line that installs it)."""
    return NiftiWriter(compression_level=config.compression_level, layout=config.layout.value)


def find(path: Path) -> Path | None:
    """The output a folder entry is: a ``<stem>/`` folder of ``<dataset>.nii.gz``."""
    return path if path.is_dir() and images_in(path) else None


def require() -> None:
    """What reading NIfTI outputs needs (nibabel), checked before any work."""
    require_nibabel()


def images_in(folder: Path) -> dict[str, Path]:
    """The images of a NIfTI output folder: dataset name -> file."""
    return {path.name[: -len(".nii.gz")]: path for path in sorted(folder.glob("*.nii.gz"))}


def _load(path: Path, axes: tuple[str, str, str]) -> tuple[np.ndarray, np.ndarray]:
    """An image's voxels and affine in the pipeline's ``axes`` (axis codes), whatever layout the file stores."""
    nibabel = require_nibabel()
    orientations = nibabel.orientations
    try:
        image = nibabel.load(path)
        data = np.asanyarray(image.dataobj)
        affine = np.asarray(image.affine, dtype=np.float64)
    except Exception as error:  # a truncated gzip or a foreign file: a bad input
        raise InputError(f"{path.name} is not a readable NIfTI file ({first_line(error)})") from error
    if data.ndim != 3:
        return data, affine
    change = orientations.ornt_transform(orientations.io_orientation(affine), orientations.axcodes2ornt(axes))
    return (orientations.apply_orientation(data, change),
            affine @ orientations.inv_ornt_aff(change, data.shape))


def open_volume(path: Path, *, locking: bool | None = None) -> MriVolume:
    """A NIfTI volume or slab folder (each image read whole, as gzip must be)."""
    files = images_in(path)
    if not files:
        raise InputError("no .nii.gz images in the folder")
    loaded = {name: _load(file, VOLUME_AXES) for name, file in files.items()}
    affine = next(iter(loaded.values()))[1]
    attrs = sidecar_attrs(path)
    spacing = attrs.get("spacing", [-affine[0, 0], -affine[1, 1], -affine[2, 2]])
    origin = attrs.get("origin", [-affine[0, 3], -affine[1, 3], affine[2, 3]])
    return ArrayVolume({name: data for name, (data, _) in loaded.items()}, spacing=spacing, origin=origin,
                       attrs=attrs)


def read_images(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named 2-D images (stored as (rows, columns, 1)) of a NIfTI output folder."""
    files = images_in(path)
    missing = [name for name in names if name not in files]
    if missing:
        raise InputError(f"has no image {missing[0]!r} (it has {', '.join(files) or 'none'})")
    out = {}
    for name in names:
        data, _ = _load(files[name], PROJECTION_AXES)
        out[name] = data[:, :, 0] if data.ndim == 3 and data.shape[2] == 1 else data
    return out


def read_attrs(path: Path) -> dict[str, Any]:
    """The sidecar's attributes; without a sidecar, the pixel spacing from a 2-D image's affine."""
    attrs = sidecar_attrs(path)
    if "pixel_spacing" not in attrs and "spacing" not in attrs:
        files = images_in(path)
        if files:
            _, affine = _load(next(iter(files.values())), PROJECTION_AXES)
            attrs["pixel_spacing"] = [-affine[2, 0], -affine[0, 1]]
    return attrs
