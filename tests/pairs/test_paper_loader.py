"""The paper's data loader, emulated without torch, reads what unzip_dxa and extract_slices write as pickles.

Windsor et al. 2021, rwindsor1/biobank-self-supervised-alignment ``src/datasets/CoronalScanPairsDataset.py`` with
``set_type='all'``: list ``<root>/mri-mid-corr-slices`` and ``<root>/dxas-processed``, a subject is the text before
the first underscore, pairs are the subjects in both; for each, the first DXA entry and the first MRI entry that
contain the subject, the DXA file is ``glob(<entry>/*.pkl)[0]``; both are ``pickle.load``-ed; the MRI slice is
``[:, shape[1] // 2]`` of ``fat_scan`` and ``water_scan`` with spacing ``pixel_spacing[[0, 2]]``; every other key
but ``pixel_spacing`` is resampled as a 2-D image; channels are stacked as [fat, water] and [bone, tissue].
"""

from __future__ import annotations

import glob
import os
import pickle
from os.path import basename, join
from pathlib import Path

import numpy as np
import pytest

from ukbb_pipeline.config import ExtractSlicesConfig, UnzipDxaConfig, UnzipMriConfig
from ukbb_pipeline.formats import PickleWriter
from ukbb_pipeline.formats.sidecar import read_sidecar
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.manifest import OK
from ukbb_pipeline.runtime.runner import RunOptions
from ukbb_pipeline.stages import extract_slices, unzip_dxa, unzip_mri
from ukbb_pipeline.synthetic import make_cohort

MRI_SEQS = ["fat_scan", "water_scan"]
DXA_SEQS = ["bone", "tissue"]


def paper_pairs(root: str) -> list[list[str]]:
    """``CoronalScanPairsDataset.__init__`` with ``set_type='all'``."""
    all_mris = os.listdir(join(root, "mri-mid-corr-slices"))
    all_dxas = os.listdir(join(root, "dxas-processed"))
    mri_subjects = [basename(x).split("_")[0] for x in all_mris]
    dxa_subjects = [basename(x).split("_")[0] for x in all_dxas]
    intersection_subjects = sorted(set(mri_subjects).intersection(dxa_subjects))
    pairs = []
    for subject in intersection_subjects:
        subject_dxa_scans = [x for x in all_dxas if subject in x]
        subject_mri_scans = [x for x in all_mris if subject in x]
        pairs.append([subject_dxa_scans[0], subject_mri_scans[0]])
    return pairs


def paper_item(root: str, pair: list[str]) -> dict[str, object]:
    """``__getitem__`` without augmentation, up to the torch calls: what they would receive, checked as they need."""
    dxa_path, mri_filename = pair
    dxa_fp = glob.glob(os.path.join(join(root, "dxas-processed"), dxa_path, "*.pkl"))[0]
    mri_fp = os.path.join(join(root, "mri-mid-corr-slices"), mri_filename)
    with open(dxa_fp, "rb") as f:
        dxa_scan = pickle.load(f)  # the loader's own call (these are files the pipeline wrote)
    with open(mri_fp, "rb") as f:
        mri_scan = pickle.load(f)
    raw_mri = dict(mri_scan)
    mri_mid_slice = mri_scan["fat_scan"].shape[1] // 2
    for sequence in ["fat_scan", "water_scan"]:
        mri_scan[sequence] = mri_scan[sequence][:, mri_mid_slice]
    mri_scan["pixel_spacing"] = np.array(mri_scan["pixel_spacing"])[[0, 2]]
    dxa_scan["pixel_spacing"] = [2, 2]
    for scan in (mri_scan, dxa_scan):  # resample_scans: every other key is a 2-D image scaled by 2 factors
        factors = 2 / np.array(scan["pixel_spacing"])
        assert factors.shape == (2,)
        assert np.all(np.isfinite(factors))
        assert np.all(factors > 0)
        for name, image in scan.items():
            if name != "pixel_spacing":
                assert np.asarray(image).ndim == 2, f"{name} would not resample as a 2-D image"
    mri_img = np.stack([np.asarray(mri_scan[name], dtype=np.float32) for name in MRI_SEQS])
    dxa_img = np.stack([np.asarray(dxa_scan[name], dtype=np.float32) for name in DXA_SEQS])
    return {"mri_img": mri_img, "dxa_img": dxa_img, "mri_filename": mri_fp, "dxa_filename": dxa_fp,
            "mri_spacing": mri_scan["pixel_spacing"], "raw_mri": raw_mri, "raw_dxa_keys": sorted(dxa_scan)}


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> tuple[Path, list, set[int]]:
    """A cohort of four: subject 2 has no DXA, subject 3 no MRI; everything else through the real stages."""
    root = tmp_path_factory.mktemp("paper")
    subjects = make_cohort(root / "raw", n_subjects=4, size="small", seed=5)
    (root / "raw" / "dxas" / f"{subjects[2].eid}_20158_2_0.zip").unlink()
    (root / "raw" / "mris" / f"{subjects[3].eid}_20201_2_0.zip").unlink()
    options, writer = RunOptions(n_jobs=1), PickleWriter()
    summaries = [
        *unzip_dxa.run(UnzipDxaConfig(input_dir=str(root / "raw" / "dxas"), output_dir=str(root / "dxas-processed")),
                       options=options, writer=writer),
        *unzip_mri.run(UnzipMriConfig(input_dir=str(root / "raw" / "mris"), output_dir=str(root / "mris-processed")),
                       options=options, writer=writer),
        *extract_slices.run(ExtractSlicesConfig(input_dir=str(root / "mris-processed"),
                                                output_dir=str(root / "mri-mid-corr-slices")),
                            options=options, writer=writer, qc=True),
    ]
    assert all(row.status == OK for summary in summaries for row in summary.rows)
    both = {subjects[0].eid, subjects[1].eid}
    return root, subjects, both


def test_the_loader_pairs_exactly_the_subjects_with_both_scans(processed):
    root, _, both = processed
    pairs = paper_pairs(str(root))
    assert sorted(int(dxa.split("_")[0]) for dxa, _ in pairs) == sorted(both)
    for dxa_entry, mri_entry in pairs:
        assert dxa_entry.split("_")[0] == mri_entry.split("_")[0]
        assert dxa_entry.endswith("_20158_2_0")
        assert mri_entry.endswith("_20201_2_0.pkl")
    listed = os.listdir(root / "mri-mid-corr-slices") + os.listdir(root / "dxas-processed")
    metadata = [entry for entry in listed if entry.startswith("pipeline-")]
    assert sorted(metadata) == ["pipeline-extract-slices", "pipeline-unzip-dxa"]  # present, and never paired
    dxa_pictures = list((root / "dxas-processed" / "pipeline-unzip-dxa" / "qc").rglob("*.png"))
    assert len(dxa_pictures) == 3 + 1  # a picture per DXA subject and a contact sheet, all where the loader never looks


def test_every_pair_loads_with_the_right_keys_shapes_channels_and_spacing(processed):
    root, subjects, _ = processed
    by_eid = {subject.eid: subject for subject in subjects}
    for pair in paper_pairs(str(root)):
        item = paper_item(str(root), pair)
        eid = int(pair[0].split("_")[0])
        stem = f"{eid}_20201_2_0"
        raw = item["raw_mri"]
        assert sorted(raw) == ["fat_scan", "pixel_spacing", "water_scan"]
        assert item["raw_dxa_keys"] == ["bone", "pixel_spacing", "tissue"]

        volume = read_sidecar(StageFolders(output=root / "mris-processed", stage="unzip_mri"), stem)["attrs"]
        slab = read_sidecar(StageFolders(output=root / "mri-mid-corr-slices", stage="extract_slices"), stem)["attrs"]
        with open(root / "mris-processed" / f"{stem}.pkl", "rb") as f:
            stitched = pickle.load(f)
        n_x, _, n_z = stitched["fat_scan"].shape
        assert raw["fat_scan"].shape == (n_x, 11, n_z)
        assert item["mri_img"].shape == (2, n_x, n_z)
        centre = slab["centre_index"]
        assert slab["window_shift"] == 0  # so the loader's middle slice is the chosen centre row
        np.testing.assert_array_equal(item["mri_img"][0], stitched["fat_scan"][:, centre])  # channel 0 is fat
        np.testing.assert_array_equal(item["mri_img"][1], stitched["water_scan"][:, centre])  # channel 1 is water
        assert np.abs(item["mri_img"][0] - item["mri_img"][1]).mean() > 50
        np.testing.assert_allclose(item["mri_spacing"], [volume["spacing"][0], volume["spacing"][2]])

        dxa = by_eid[eid].dxa
        assert item["dxa_img"].shape == (2, *dxa.tissue.shape)
        np.testing.assert_array_equal(item["dxa_img"][0], dxa.bone)  # channel 0 is bone
        np.testing.assert_array_equal(item["dxa_img"][1], dxa.tissue)


def test_pickled_slabs_hold_plain_float32_arrays(processed):
    root, _, both = processed
    for eid in both:
        with open(root / "mri-mid-corr-slices" / f"{eid}_20201_2_0.pkl", "rb") as f:
            payload = pickle.load(f)
        assert payload["fat_scan"].dtype == np.float32
        assert payload["water_scan"].dtype == np.float32
        assert isinstance(payload["pixel_spacing"], list)
        assert len(payload["pixel_spacing"]) == 3
