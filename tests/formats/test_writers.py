"""Writers: what goes in comes out, atomically, in the layouts downstream code relies on."""

from __future__ import annotations

import io
import os
import pickle
import pickletools

import h5py
import numpy as np
import pytest

from ukbb_pipeline.formats import Hdf5Writer, Output, PickleWriter, safe_load
from ukbb_pipeline.formats.pickle import dump_compatible
from ukbb_pipeline.formats.sidecar import read_sidecar
from ukbb_pipeline.runtime.folders import StageFolders

RNG = np.random.default_rng(0)


def _volume_output() -> Output:
    fat = RNG.integers(0, 4000, size=(24, 17, 30), dtype=np.uint16)
    water = RNG.integers(0, 4000, size=(24, 17, 30), dtype=np.uint16)
    return Output(
        arrays={"fat_scan": fat, "water_scan": water},
        attrs={"spacing": [2.23, 2.23, 3.0], "origin": [-250.0, -190.0, 300.0], "swapped_stations": []},
        spacing_attr="spacing",
    )


def test_hdf5_round_trip_keeps_arrays_attributes_and_fingerprint(tmp_path):
    folders = StageFolders(output=tmp_path / "mris-processed", stage="unzip_mri")
    output = _volume_output()
    path = Hdf5Writer().write(folders, "1000001_20201_2_0", output, fingerprint="abc123")
    assert path == tmp_path / "mris-processed" / "1000001_20201_2_0.h5"
    with h5py.File(path) as handle:
        np.testing.assert_array_equal(handle["fat_scan"][()], output.arrays["fat_scan"])
        np.testing.assert_array_equal(handle["water_scan"][()], output.arrays["water_scan"])
        assert handle["fat_scan"].dtype == np.uint16
        np.testing.assert_allclose(handle.attrs["spacing"], [2.23, 2.23, 3.0])
        assert handle.attrs["swapped_stations"].shape == (0,)
        assert handle.attrs["settings_fingerprint"] == "abc123"
        # one coronal slice (axis 1) per chunk, built-in filters only: plain h5py reads a slab cheaply
        assert handle["fat_scan"].chunks == (24, 1, 30)
        assert handle["fat_scan"].compression == "gzip"
    assert Hdf5Writer().stored_fingerprint(folders, "1000001_20201_2_0") == "abc123"


def test_hdf5_stores_a_list_of_strings_as_strings_not_json_text(tmp_path):
    folders = StageFolders(output=tmp_path, stage="unzip_mri")
    output = _volume_output()
    output.attrs.update(swapped_stations=[5], swapped_regions=["5:left-leg", "6:right-leg z -215 to -330 mm"])
    path = Hdf5Writer().write(folders, "1000001_20201_2_0", output, fingerprint="abc")
    with h5py.File(path) as handle:
        regions = [item.decode() if isinstance(item, bytes) else item for item in handle.attrs["swapped_regions"]]
        assert regions == ["5:left-leg", "6:right-leg z -215 to -330 mm"]
        assert handle.attrs["swapped_stations"].tolist() == [5]


def test_hdf5_output_that_does_not_open_has_no_fingerprint(tmp_path):
    folders = StageFolders(output=tmp_path, stage="unzip_mri")
    path = Hdf5Writer().write(folders, "1000001_20201_2_0", _volume_output(), fingerprint="abc")
    path.write_bytes(path.read_bytes()[:1000])  # damaged after the fact
    assert Hdf5Writer().stored_fingerprint(folders, "1000001_20201_2_0") is None


def test_pickle_round_trip_has_exactly_the_original_keys_as_float32(tmp_path):
    folders = StageFolders(output=tmp_path, stage="unzip_mri")
    output = _volume_output()
    path = PickleWriter().write(folders, "1000001_20201_2_0", output, fingerprint="f1")
    assert path == tmp_path / "1000001_20201_2_0.pkl"
    with open(path, "rb") as handle:
        loaded = pickle.load(handle)
    assert set(loaded) == {"fat_scan", "water_scan", "pixel_spacing"}
    assert loaded["fat_scan"].dtype == np.float32
    np.testing.assert_array_equal(loaded["water_scan"], output.arrays["water_scan"].astype(np.float32))
    assert loaded["pixel_spacing"] == [2.23, 2.23, 3.0]
    sidecar = read_sidecar(folders, "1000001_20201_2_0")
    assert sidecar["attrs"]["origin"] == [-250.0, -190.0, 300.0]
    assert PickleWriter().stored_fingerprint(folders, "1000001_20201_2_0") == "f1"


def test_dxa_pickles_sit_in_a_folder_of_their_own(tmp_path):
    folders = StageFolders(output=tmp_path, stage="unzip_dxa")
    tissue = RNG.integers(0, 250, size=(40, 16), dtype=np.uint8)
    output = Output(arrays={"tissue": tissue, "bone": tissue // 2}, attrs={"pixel_spacing": [2.4, 2.4]},
                    spacing_attr="pixel_spacing")
    path = PickleWriter().write(folders, "1000001_20158_2_0", output, fingerprint="f", nested=True)
    assert path == tmp_path / "1000001_20158_2_0" / "1000001_20158_2_0.pkl"
    assert os.listdir(path.parent) == [path.name]
    loaded = safe_load(path)
    assert set(loaded) == {"tissue", "bone", "pixel_spacing"}
    np.testing.assert_array_equal(loaded["tissue"], tissue)


def test_pickles_name_only_globals_that_numpy_1_and_2_both_have():
    buffer = io.BytesIO()
    dump_compatible({"fat_scan": np.ones((3, 4), np.float32), "pixel_spacing": [1.0, 2.0, 3.0]}, buffer)
    globals_named = {arg for op, arg, _ in pickletools.genops(buffer.getvalue()) if op.name == "GLOBAL"}
    assert globals_named == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    assert not any(op.name == "STACK_GLOBAL" for op, _, _ in pickletools.genops(buffer.getvalue()))


def test_safe_load_reads_the_original_scripts_pickles(tmp_path):
    # the original wrote float64 arrays and numpy scalars with the default pickler
    path = tmp_path / "orig.pkl"
    original = {"fat_scan": np.ones((4, 3, 5)), "pixel_spacing": [np.float64(2.23)] * 3}
    path.write_bytes(pickle.dumps(original))
    loaded = safe_load(path)
    np.testing.assert_array_equal(loaded["fat_scan"], original["fat_scan"])
    assert loaded["pixel_spacing"] == [2.23] * 3


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_safe_load_refuses_pickles_that_would_run_code(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"fat_scan": _Exploit()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        safe_load(path)


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    folders = StageFolders(output=tmp_path / "out", stage="unzip_mri")
    broken = Output(arrays={"fat_scan": np.zeros((2, 2, 2), object)}, attrs={"spacing": [1, 1, 1]},
                    spacing_attr="spacing")
    with pytest.raises(TypeError):
        Hdf5Writer().write(folders, "1000001_20201_2_0", broken, fingerprint="f")
    assert not (tmp_path / "out" / "1000001_20201_2_0.h5").exists()
    assert not folders.scratch.exists() or list(folders.scratch.iterdir()) == []
