"""writer=nifti: volumes and slabs open in viewers in the right place and orientation (read back with nibabel)."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest

from ukbb_pipeline.formats import Output
from ukbb_pipeline.formats.nifti import NiftiWriter, read_images
from ukbb_pipeline.runtime.folders import StageFolders

SPACING = (2.232, 2.5, 3.0)  # sx, sy, sz
ORIGIN = (-248.9, -120.0, 310.0)  # LPS of voxel [0, 0, 0]
SHAPE = (40, 30, 50)  # x right->left, y anterior->posterior, z head->feet

# Phantom points: LPS mm -> what they are. Each lies exactly on a voxel of the grid above.
POINTS = {
    "left shoulder": (ORIGIN[0] + 30 * SPACING[0], ORIGIN[1] + 4 * SPACING[1], ORIGIN[2] - 5 * SPACING[2]),
    "right knee": (ORIGIN[0] + 6 * SPACING[0], ORIGIN[1] + 20 * SPACING[1], ORIGIN[2] - 44 * SPACING[2]),
    "spine": (ORIGIN[0] + 18 * SPACING[0], ORIGIN[1] + 26 * SPACING[1], ORIGIN[2] - 20 * SPACING[2]),
}


def _voxel(lps: tuple[float, float, float]) -> tuple[int, int, int]:
    """The pipeline's contract: voxel (i, j, k) lies at origin + (i*sx, j*sy, -k*sz)."""
    return (
        round((lps[0] - ORIGIN[0]) / SPACING[0]),
        round((lps[1] - ORIGIN[1]) / SPACING[1]),
        round((ORIGIN[2] - lps[2]) / SPACING[2]),
    )


def _volume_output() -> Output:
    fat = np.zeros(SHAPE, np.uint16)
    water = np.zeros(SHAPE, np.uint16)
    for value, lps in enumerate(POINTS.values(), start=1):
        fat[_voxel(lps)] = 1000 * value
        water[_voxel(lps)] = 7
    return Output(arrays={"fat_scan": fat, "water_scan": water},
                  attrs={"spacing": list(SPACING), "origin": list(ORIGIN), "swapped_stations": []},
                  spacing_attr="spacing")


def _lps_of_bright_voxel(image, value: int) -> np.ndarray:
    data = np.asarray(image.dataobj)
    (index,) = np.argwhere(data == value)
    ras = nib.affines.apply_affine(image.affine, index)
    return ras * [-1, -1, 1]  # RAS -> LPS


@pytest.mark.parametrize(("layout", "codes"), [("ras", ("R", "A", "S")), ("pipeline", ("L", "P", "I"))])
def test_phantom_points_are_at_their_world_coordinates(tmp_path, layout, codes):
    folders = StageFolders(tmp_path / "mris-processed", "unzip_mri")
    path = NiftiWriter(layout=layout).write(folders, "1000001_20201_2_0", _volume_output(), fingerprint="abc")
    assert path == tmp_path / "mris-processed" / "1000001_20201_2_0"
    image = nib.load(path / "fat_scan.nii.gz")
    assert image.shape == SHAPE
    assert image.get_data_dtype() == np.uint16
    assert nib.aff2axcodes(image.affine) == codes  # the array axes as stored
    assert int(image.header["qform_code"]) == int(image.header["sform_code"]) == 1
    np.testing.assert_allclose(image.header.get_zooms(), SPACING, rtol=1e-6)
    np.testing.assert_allclose(image.get_qform(), image.get_sform(), atol=1e-4)
    for value, lps in enumerate(POINTS.values(), start=1):
        np.testing.assert_allclose(_lps_of_bright_voxel(image, 1000 * value), lps, atol=1e-3)
    water = nib.load(path / "water_scan.nii.gz")
    np.testing.assert_array_equal(water.affine, image.affine)


def test_a_viewer_sees_left_on_the_left_and_the_head_at_the_top(tmp_path):
    # viewers reorient to RAS+: the patient's left has the smaller R coordinate, the head the larger S coordinate
    folders = StageFolders(tmp_path, "unzip_mri")
    path = NiftiWriter().write(folders, "1000001_20201_2_0", _volume_output(), fingerprint="abc")
    canonical = nib.as_closest_canonical(nib.load(path / "fat_scan.nii.gz"))
    assert nib.aff2axcodes(canonical.affine) == ("R", "A", "S")
    data = np.asarray(canonical.dataobj)
    where = {name: np.argwhere(data == 1000 * value)[0] for value, name in enumerate(POINTS, start=1)}
    # in a RAS+ array, indices grow towards the patient's right, anterior and head
    assert where["left shoulder"][0] < where["spine"][0] < where["right knee"][0]
    assert where["left shoulder"][2] > where["spine"][2] > where["right knee"][2]
    assert where["spine"][1] < where["right knee"][1] < where["left shoulder"][1]


def test_slabs_keep_their_origin_and_spacing(tmp_path):
    slab = np.zeros((20, 11, 30), np.uint16)
    slab[5, 3, 7] = 99
    origin, spacing = (-240.0, 10.0, 200.0), (2.232, 4.464, 2.232)
    output = Output(arrays={"fat_scan": slab}, attrs={"spacing": list(spacing), "origin": list(origin),
                                                       "centre_index": 40, "window_shift": 0, "method": "fat"},
                    spacing_attr="spacing")
    path = NiftiWriter().write(StageFolders(tmp_path, "extract_slices"), "1000001_20201_2_0", output, fingerprint="x")
    image = nib.load(path / "fat_scan.nii.gz")
    expected_lps = (origin[0] + 5 * spacing[0], origin[1] + 3 * spacing[1], origin[2] - 7 * spacing[2])
    np.testing.assert_allclose(_lps_of_bright_voxel(image, 99), expected_lps, atol=1e-3)


@pytest.mark.parametrize(("layout", "shape"), [("ras", (30, 1, 80)), ("pipeline", (80, 30, 1))])
def test_dxa_images_are_2d_coronal_projections(tmp_path, layout, shape):
    bone = np.zeros((80, 30), np.uint8)
    bone[10, 25] = 200  # near the head, towards the patient's left (PatientOrientation L\F)
    bone[70, 2] = 100  # near the feet, towards the patient's right
    output = Output(arrays={"tissue": bone // 2, "bone": bone}, attrs={"pixel_spacing": [2.4, 2.42]},
                    spacing_attr="pixel_spacing")
    path = NiftiWriter(layout=layout).write(StageFolders(tmp_path, "unzip_dxa"), "1000001_20158_2_0", output,
                                            fingerprint="x", nested=True)
    image = nib.load(path / "bone.nii.gz")
    assert image.shape == shape
    np.testing.assert_array_equal(read_images(path, ["bone"])["bone"], bone)  # the reader gives (rows, columns)
    assert image.get_data_dtype() == np.uint8
    head_left = nib.affines.apply_affine(image.affine, np.argwhere(np.asarray(image.dataobj) == 200)[0])
    feet_right = nib.affines.apply_affine(image.affine, np.argwhere(np.asarray(image.dataobj) == 100)[0])
    assert head_left[0] < feet_right[0]  # RAS: left has the smaller R coordinate
    assert head_left[2] > feet_right[2]  # the head is superior
    assert feet_right[2] - head_left[2] == pytest.approx(-60 * 2.4)
    assert head_left[0] - feet_right[0] == pytest.approx(-23 * 2.42)


def test_the_sidecar_holds_the_fingerprint_and_a_damaged_file_means_redo(tmp_path):
    folders = StageFolders(tmp_path, "unzip_mri")
    writer = NiftiWriter()
    path = writer.write(folders, "1000001_20201_2_0", _volume_output(), fingerprint="f1")
    assert writer.stored_fingerprint(folders, "1000001_20201_2_0") == "f1"
    sidecar = json.loads((folders.sidecars / "10" / "1000001_20201_2_0.json").read_text())
    assert sidecar["attrs"]["origin"] == list(ORIGIN)
    assert sorted(sidecar["files"]) == ["fat_scan.nii.gz", "water_scan.nii.gz"]
    (path / "water_scan.nii.gz").write_bytes(b"truncated")
    assert writer.stored_fingerprint(folders, "1000001_20201_2_0") is None
    assert writer.stored_fingerprint(folders, "1000002_20201_2_0") is None


def test_a_3d_output_without_an_origin_is_refused(tmp_path):
    output = Output(arrays={"fat_scan": np.zeros((2, 2, 2), np.uint16)}, attrs={"spacing": [1, 1, 1]},
                    spacing_attr="spacing")
    with pytest.raises(ValueError, match="origin"):
        NiftiWriter().write(StageFolders(tmp_path, "unzip_mri"), "1000001_20201_2_0", output, fingerprint="x")
    assert not (tmp_path / "1000001_20201_2_0").exists()


@pytest.mark.slow
def test_writer_nifti_without_nibabel_fails_at_start_with_the_install_line(tmp_path, run_main):
    blocker = tmp_path / "no-nibabel"
    blocker.mkdir()
    (blocker / "nibabel.py").write_text("raise ImportError(\"No module named 'nibabel'\")\n")
    (tmp_path / "raw").mkdir()
    pythonpath = os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH", "")]))
    result = run_main("stage=unzip_dxa", "writer=nifti", f"stage.input_dir={tmp_path / 'raw'}",
                      f"stage.output_dir={tmp_path / 'out'}", env={"PYTHONPATH": pythonpath})
    assert result.returncode == 3, "a missing package is the machine's: exit 3"
    assert "needs nibabel: pip install nibabel" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_unzip_dxa_with_writer_nifti_through_main(tmp_path, run_main):
    from ukbb_pipeline.synthetic import Phantom, write_dxa_zip

    raw = tmp_path / "data" / "raw" / "dxas"
    raw.mkdir(parents=True)
    truth = write_dxa_zip(raw / "1000001_20158_2_0.zip", eid=1000001, phantom=Phantom.random(1))
    result = run_main("stage=unzip_dxa", "writer=nifti", f"paths.root={tmp_path / 'data'}")
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "data" / "dxas-processed" / "1000001_20158_2_0"
    bone = nib.load(folder / "bone.nii.gz")
    assert nib.aff2axcodes(bone.affine) == ("R", "A", "S")  # stored R-A-S: columns flipped first, rows flipped last
    np.testing.assert_array_equal(np.asarray(bone.dataobj)[:, 0, :], truth.bone[::-1, ::-1].T)
    np.testing.assert_allclose(np.array(bone.header.get_zooms())[[2, 0]], truth.pixel_spacing, rtol=1e-5)
    np.testing.assert_array_equal(read_images(folder, ["bone"])["bone"], truth.bone)

    again = run_main("stage=unzip_dxa", "writer=nifti", f"paths.root={tmp_path / 'data'}")
    assert again.returncode == 0
    assert "1 skipped" in again.stdout + again.stderr


@pytest.mark.slow
def test_a_stitched_volume_in_nifti_lies_where_the_phantom_is(tmp_path, run_main):
    from ukbb_pipeline.synthetic import make_cohort

    (truth,) = make_cohort(tmp_path / "data" / "raw", n_subjects=1, seed=0)
    result = run_main("stage=unzip_mri", "writer=nifti", f"paths.root={tmp_path / 'data'}")
    assert result.returncode == 0, result.stderr[-3000:]
    image = nib.load(tmp_path / "data" / "mris-processed" / "1000001_20201_2_0" / "fat_scan.nii.gz")
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
    data = np.asarray(image.dataobj).astype(np.float32)
    voxels = np.stack([np.random.default_rng(0).integers(0, n, 20_000) for n in data.shape], axis=1)
    lps = nib.affines.apply_affine(image.affine, voxels) * [-1, -1, 1]  # world (RAS) -> LPS
    values = data[tuple(voxels.T)]

    def agreement(shift: tuple[float, float, float], mirror: bool = False) -> float:
        x = -lps[:, 0] if mirror else lps[:, 0]
        fat = truth.phantom.fat(x + shift[0], lps[:, 1] + shift[1], lps[:, 2] + shift[2])
        return float(np.corrcoef(values, fat)[0, 1])

    assert agreement((0, 0, 0)) > 0.95  # every voxel holds the phantom's fat at its world position
    for shift in ((10, 0, 0), (0, 10, 0), (0, 0, 30)):  # the phantom varies slowest along z
        assert agreement(shift) < agreement((0, 0, 0)) - 0.05
    assert agreement((0, 0, 0), mirror=True) < 0.8  # left is not right


def test_stored_ras_is_nibabels_closest_canonical_of_the_pipelines_axes_and_reads_back_the_same(tmp_path):
    from ukbb_pipeline.formats.outputs import open_volume

    stored = {}
    for layout in ("ras", "pipeline"):
        folders = StageFolders(tmp_path / layout, "unzip_mri")
        stored[layout] = NiftiWriter(layout=layout).write(folders, "1000001_20201_2_0", _volume_output(),
                                                          fingerprint="abc")
    ras, own = (nib.load(stored[layout] / "fat_scan.nii.gz") for layout in ("ras", "pipeline"))
    canonical = nib.as_closest_canonical(own)
    np.testing.assert_array_equal(np.asarray(ras.dataobj), np.asarray(canonical.dataobj))
    np.testing.assert_allclose(ras.affine, canonical.affine, atol=1e-4)
    for layout in ("ras", "pipeline"):  # the pipeline's readers give its own axes back, whatever the layout
        with open_volume(stored[layout]) as volume:
            every_row = volume.rows("fat_scan", np.arange(SHAPE[1]))
            np.testing.assert_array_equal(every_row, _volume_output().arrays["fat_scan"])
            np.testing.assert_allclose(volume.info.spacing, SPACING, rtol=1e-5)
            np.testing.assert_allclose(volume.info.origin, ORIGIN, atol=1e-3)


def dcm2niix() -> str:
    """Debian's dcm2niix; skips (or fails under CI=true) when it is not installed."""
    import shutil

    found = shutil.which("dcm2niix")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("dcm2niix is not installed (Debian: apt-get install -y dcm2niix)")
    pytest.skip("dcm2niix is not installed (Debian: apt-get install -y dcm2niix)")


@pytest.mark.slow
def test_a_station_lies_in_our_volume_as_dcm2niix_stores_it(tmp_path):
    """dcm2niix converts one station's fat series; our stitched volume holds the same voxels, stored the same way."""
    import io
    import subprocess
    import zipfile

    import pydicom

    import ukbb_pipeline
    from ukbb_pipeline.synthetic import make_cohort

    converter = dcm2niix()
    make_cohort(tmp_path / "raw", n_subjects=1, seed=3)
    zip_path = tmp_path / "raw" / "mris" / "1000001_20201_2_0.zip"
    series: dict[str, list[tuple[str, bytes]]] = {}
    with zipfile.ZipFile(zip_path) as archive:
        for name in (name for name in archive.namelist() if name.endswith(".dcm")):  # not manifest.cvs
            data = archive.read(name)
            header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
            if header.SeriesDescription.endswith("_F"):
                series.setdefault(str(header.SeriesNumber), []).append((name, data))
    middle = sorted(series.values(), key=len)[len(series) // 2]  # a station inside the body, not an end
    station = tmp_path / "station"
    station.mkdir()
    for name, data in middle:
        (station / name).write_bytes(data)
    subprocess.run([converter, "-z", "n", "-b", "n", "-f", "station", "-o", str(tmp_path), str(station)],
                   check=True, capture_output=True, timeout=120)
    theirs = nib.load(tmp_path / "station.nii")

    stitched = ukbb_pipeline.stitch_mri_zip(zip_path, channels=["F"], harmonise=False, dtype="float32")
    folders = StageFolders(tmp_path / "mris-processed", "unzip_mri")
    ours = nib.load(NiftiWriter().write(folders, "1000001_20201_2_0", stitched, fingerprint="x") / "fat_scan.nii.gz")

    assert nib.aff2axcodes(ours.affine) == nib.aff2axcodes(theirs.affine) == ("R", "A", "S")
    their_data = np.asarray(theirs.dataobj, dtype=np.float32)
    our_data = np.asarray(ours.dataobj, dtype=np.float32)
    inside = np.stack(np.meshgrid(*(np.arange(1, n - 1) for n in their_data.shape), indexing="ij"), -1)
    inside = inside.reshape(-1, 3)
    world = nib.affines.apply_affine(theirs.affine, inside)

    def agreement(mirror: bool) -> float:
        points = world * ([-1, 1, 1] if mirror else 1)
        index = np.rint(nib.affines.apply_affine(np.linalg.inv(ours.affine), points)).astype(int)
        keep = np.all((index >= 0) & (index < our_data.shape), axis=1)
        return float(np.corrcoef(their_data[tuple(inside[keep].T)], our_data[tuple(index[keep].T)])[0, 1])

    assert agreement(mirror=False) > 0.95  # the same anatomy at the same world position
    assert agreement(mirror=True) < agreement(mirror=False) - 0.1
    # and the same raw-array directions: index i grows to the right, j anterior, k superior in both files
    assert np.all(np.sign(np.diag(ours.affine)[:3]) == np.sign(np.diag(theirs.affine)[:3]))
