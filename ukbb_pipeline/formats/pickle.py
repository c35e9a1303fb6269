"""Pickle outputs in the original scripts' layout, for the paper's public data loader.

Each pickle is a dict of float32 images plus ``pixel_spacing`` (a list of floats) and nothing else. Arrays are
pickled in the numpy 1.x form (``numpy.core.multiarray._reconstruct``), which numpy >= 1.20 and 2.x both load; the
default numpy 2 form names ``numpy._core`` and fails under numpy 1.x. Everything else (origin, QC figures, the
settings fingerprint) goes to a JSON sidecar in the stage's metadata folder.

Unpickling runs code named in the file, so this module only ever loads pickles through :func:`safe_load`, which
refuses anything but plain arrays, lists, dicts and numbers.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ukbb_pipeline import __version__
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.formats.base import Output, Writer
from ukbb_pipeline.formats.sidecar import read_sidecar, sidecar_attrs, write_sidecar
from ukbb_pipeline.formats.volumes import ArrayVolume, MriVolume, check_origin, first_line
from ukbb_pipeline.runtime.atomic import atomic_dir, atomic_file
from ukbb_pipeline.runtime.folders import StageFolders

_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),  # numpy scalars, e.g. a float64 pixel spacing in the original pickles
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _Numpy1Pickler(pickle._Pickler):  # the pure-Python pickler lets us choose how globals are named
    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", "") or ""
        if module.startswith("numpy._core"):
            legacy = module.replace("numpy._core", "numpy.core", 1)
            qualname = name or obj.__qualname__
            self.write(pickle.GLOBAL + f"{legacy}\n{qualname}\n".encode())  # type: ignore[attr-defined]
            self.memoize(obj)  # type: ignore[attr-defined]
            return
        super().save_global(obj, name)  # type: ignore[misc]


def dump_compatible(payload: dict[str, Any], handle: BinaryIO) -> None:
    """Pickle ``payload`` so that numpy 1.x (>= 1.20) and 2.x both load it."""
    _Numpy1Pickler(handle, protocol=3).dump(payload)


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a plain array pickle")
        return super().find_class(module, name)


def safe_load(path: Path) -> dict[str, Any]:
    """Load a pickle that may hold only arrays, lists, dicts and numbers (never arbitrary objects)."""
    with open(path, "rb") as handle:
        payload = _SafeUnpickler(io.BufferedReader(handle)).load()
    if not isinstance(payload, dict):
        raise pickle.UnpicklingError(f"{path} does not hold a dict")
    return payload


class PickleWriter(Writer):
    name = "pickle"
    suffix = ".pkl"

    def output_path(self, folders: StageFolders, stem: str, *, nested: bool = False) -> Path:
        """``<stem>.pkl``, or ``<stem>/<stem>.pkl`` for nested outputs (the original DXA layout)."""
        if nested:
            return folders.output / stem / f"{stem}{self.suffix}"
        return folders.output / f"{stem}{self.suffix}"

    def write(
        self, folders: StageFolders, stem: str, output: Output, *, fingerprint: str, nested: bool = False
    ) -> Path:
        payload: dict[str, Any] = {name: np.asarray(array, dtype=np.float32) for name, array in output.arrays.items()}
        payload["pixel_spacing"] = [float(value) for value in output.attrs[output.spacing_attr]]
        final = self.output_path(folders, stem, nested=nested)
        if nested:
            with atomic_dir(final.parent, scratch_dir=folders.scratch) as tmp_dir:
                with open(tmp_dir / final.name, "wb") as handle:
                    dump_compatible(payload, handle)
        else:
            with atomic_file(final, scratch_dir=folders.scratch) as tmp:
                with open(tmp, "wb") as handle:
                    dump_compatible(payload, handle)
        sidecar = {
            "settings_fingerprint": fingerprint,
            "pipeline_version": __version__,
            "size_bytes": final.stat().st_size,
            "nested": nested,
            "attrs": output.attrs,
        }
        write_sidecar(folders, stem, sidecar)
        return final

    def stored_fingerprint(self, folders: StageFolders, stem: str, *, nested: bool = False) -> str | None:
        """The sidecar's fingerprint, when the pickle exists with the size the sidecar recorded."""
        path = self.output_path(folders, stem, nested=nested)
        try:
            sidecar = read_sidecar(folders, stem)
            if path.stat().st_size != sidecar["size_bytes"]:
                return None
            return str(sidecar["settings_fingerprint"])
        except (OSError, ValueError, KeyError):
            return None


# ---------------------------------------------------------------------------------------------------------------------
# Reading: the pickle holds the images and pixel_spacing; everything else is in the sidecar.


def make_writer(config: Any) -> PickleWriter:
    """The writer ``writer=pickle`` configures (it has no options)."""
    return PickleWriter()


def find(path: Path) -> Path | None:
    """The output a folder entry is or holds: ``<stem>.pkl``, or the nested layout's ``<stem>/<stem>.pkl``."""
    if path.suffix == PickleWriter.suffix:
        return path
    nested = path / f"{path.name}{PickleWriter.suffix}"
    return nested if nested.is_file() else None


def load(path: Path) -> dict[str, Any]:
    """:func:`safe_load`, with every way a bad file fails as an :class:`InputError`."""
    try:
        return safe_load(path)
    except OSError:
        raise
    except Exception as error:  # a truncated or foreign pickle fails in many ways; all mean a bad input
        raise InputError(f"not a readable pickle of arrays ({first_line(error)})") from error


def open_volume(path: Path, *, locking: bool | None = None) -> MriVolume:
    """A pickled volume or slab (loaded whole, as pickles must be); its origin and attributes from the sidecar."""
    payload = load(path)
    if "pixel_spacing" not in payload:
        raise InputError("the pickle has no pixel_spacing")
    attrs = sidecar_attrs(path)
    try:
        origin = check_origin(attrs.get("origin"))
    except InputError:
        origin = None
    images = {key: value for key, value in payload.items() if key != "pixel_spacing"}
    return ArrayVolume(images, spacing=payload["pixel_spacing"], origin=origin, attrs=attrs,
                       spacing_name="pixel_spacing")


def read_images(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    payload = load(path)
    missing = [name for name in names if name not in payload]
    if missing:
        raise InputError(f"has no {missing[0]!r} (it has {', '.join(sorted(payload))})")
    return {name: np.asarray(payload[name]) for name in names}


def read_attrs(path: Path) -> dict[str, Any]:
    """The sidecar's attributes, with the pickle's own ``pixel_spacing``."""
    payload = load(path)
    return {**sidecar_attrs(path), "pixel_spacing": payload.get("pixel_spacing")}
