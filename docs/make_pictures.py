"""Make the pictures of the docs (docs/images/*.png) from the demo, run on full-size synthetic subjects.

    python docs/make_pictures.py            # about a minute; rewrites docs/images/*.png

No real UK Biobank data: the subjects come from the package's synthetic generator (subject 1000002 carries a
whole-station fat/water swap). The pictures are small 8-bit PNGs, meant to be committed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
SUBJECT = "1000001_20201_2_0"


def run_demo(root: Path) -> None:
    command = [sys.executable, str(REPO / "main.py"), f"paths.root={root}", "stage.size=full", "stage.subjects=4",
               f"hydra.run.dir={root / 'hydra'}"]
    subprocess.run(command, check=True, cwd=root, capture_output=True)


def save_small(figure: plt.Figure, path: Path) -> None:
    """Save a figure as an 8-bit palette PNG (a few tens of kB)."""
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)
    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)


def coronal(volume: np.ndarray, row: int) -> np.ndarray:
    """The coronal slice at ``row`` as an image: head at the top, the patient's right on the left (radiological)."""
    return volume[:, row, :].T  # (z head->feet, x right->left)


def stitched_coronal(root: Path) -> None:
    with h5py.File(root / "mris-processed" / f"{SUBJECT}.h5") as volume, \
            h5py.File(root / "mri-mid-corr-slices" / f"{SUBJECT}.h5") as slab:
        row = int(slab.attrs["centre_index"])
        fat, water = volume["fat_scan"][:, row, :], volume["water_scan"][:, row, :]
        sx, _, sz = volume.attrs["spacing"]
        top = volume.attrs["origin"][2]
        seams = (top - volume.attrs["seam_z_mm"]) / sz
    figure, axes = plt.subplots(1, 2, figsize=(6.4, 6.0))
    for axis, image, name in zip(axes, (fat, water), ("fat", "water"), strict=True):
        axis.imshow(image.T, cmap="gray", aspect=sz / sx, vmax=np.percentile(image, 99.5))
        for seam in seams:
            axis.axhline(seam, color="#ff4060", lw=0.8, ls="--")
        axis.set_title(f"{name}, coronal row {row}", fontsize=9)
        axis.set_axis_off()
    figure.suptitle("Six stations stitched; seams dashed", fontsize=10)
    save_small(figure, IMAGES / "stitched-coronal.png")


def fat_profile(root: Path) -> None:
    with h5py.File(root / "mris-processed" / f"{SUBJECT}.h5") as volume, \
            h5py.File(root / "mri-mid-corr-slices" / f"{SUBJECT}.h5") as slab:
        fat = volume["fat_scan"][()].astype(np.float32)
        centre, rows = int(slab.attrs["centre_index"]), list(slab.attrs["source_rows"])
    body = fat > np.percentile(fat, 60)
    profile = (fat * body).sum(axis=(0, 2))
    figure, axis = plt.subplots(figsize=(6.4, 2.6))
    axis.plot(np.arange(profile.size), profile / profile.max(), color="#7030a0")
    axis.axvspan(min(rows), max(rows), color="#7030a0", alpha=0.12, label="slab rows")
    axis.axvline(centre, color="#d00000", lw=1.2, label=f"centre row {centre}")
    axis.set_xlabel("coronal row (anterior -> posterior)")
    axis.set_ylabel("body fat (relative)")
    axis.legend(fontsize=8, frameon=False)
    save_small(figure, IMAGES / "fat-profile.png")


def slab_on_volume(root: Path) -> None:
    with h5py.File(root / "mris-processed" / f"{SUBJECT}.h5") as volume, \
            h5py.File(root / "mri-mid-corr-slices" / f"{SUBJECT}.h5") as slab:
        fat = volume["fat_scan"]
        x = fat.shape[0] // 2
        sagittal = fat[x, :, :]  # (y anterior->posterior, z head->feet)
        _, sy, sz = volume.attrs["spacing"]
        rows = list(slab.attrs["source_rows"])
    figure, axis = plt.subplots(figsize=(4.0, 6.0))
    axis.imshow(sagittal.T, cmap="gray", aspect=sz / sy, vmax=np.percentile(sagittal, 99.5))
    for row in rows:
        axis.axvline(row, color="#00c0ff", lw=0.7)
    axis.set_title("Sagittal view: the slab's rows", fontsize=9)
    axis.set_xlabel("anterior -> posterior")
    axis.set_yticks([])
    save_small(figure, IMAGES / "slab-on-volume.png")


def contact_sheet(root: Path) -> None:
    (sheet,) = sorted((root / "mri-mid-corr-slices" / "pipeline-extract-slices" / "qc" / "sheets").rglob("*.png"))[:1]
    image = Image.open(sheet).convert("RGB")
    image.thumbnail((900, 900))
    image.quantize(colors=128).save(IMAGES / "contact-sheet.png", optimize=True)


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="ukbb-docs-pictures-"))
    try:
        run_demo(root)
        for make in (stitched_coronal, fat_profile, slab_on_volume, contact_sheet):
            make(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for path in sorted(IMAGES.glob("*.png")):
        print(f"{path.relative_to(REPO)}: {path.stat().st_size // 1024} kB")


if __name__ == "__main__":
    main()
