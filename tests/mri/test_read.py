"""Reading a Dixon zip in one pass: channels from each slice's own description, slices in physical order."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from mri_fakes import FakeStation, dicom_bytes, small_layout, station_images, write_zip

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.mri.header import SliceHeader, channel_of
from ukbb_pipeline.mri.read import read_dixon_zip
from ukbb_pipeline.mri.series import build_series


@pytest.fixture(scope="module")
def two_stations() -> list[FakeStation]:
    return small_layout()[1:3]


def _by_key(series):
    return {(s.number, s.channel): s for s in series}


def test_every_series_is_stacked_head_first_at_its_true_positions(tmp_path, two_stations):
    path = write_zip(tmp_path / "1000001_20201_2_0.zip", two_stations, seed=1)
    read = read_dixon_zip(path, channels={"F", "W"})
    assert read.n_members == 4 * sum(len(s.z) for s in two_stations)  # in/opp are parsed too, then dropped
    found = _by_key(read.series)
    assert sorted(found) == [(7, "F"), (8, "W"), (11, "F"), (12, "W")]
    for station, (f_number, w_number) in zip(two_stations, ((7, 8), (11, 12)), strict=True):
        expected = station_images(station, seed=1)
        fat, water = found[(f_number, "F")], found[(w_number, "W")]
        np.testing.assert_allclose(fat.z, station.z, atol=1e-4)  # members were shuffled; positions decide the order
        np.testing.assert_array_equal(fat.volume, expected["F"])
        np.testing.assert_array_equal(water.volume, expected["W"])
        assert fat.x0 == pytest.approx(station.x0, abs=1e-4)
        assert fat.y0 == pytest.approx(station.y0, abs=1e-4)
        assert (fat.sx, fat.sy) == pytest.approx((station.spacing, station.spacing))


def test_the_channel_is_the_description_suffix_whatever_the_series_number():
    assert channel_of("Dixon_BH_17s_F") == "F"
    assert channel_of("Dixon_noBH_W") == "W"
    assert channel_of("Dixon_noBH_opp") == "opp"
    assert channel_of("Dixon_noBH_in") == "in"
    assert channel_of("localizer") is None
    assert channel_of("", "ORIGINAL\\PRIMARY\\M\\DIXON\\WATER") == "W"  # ImageType as a fallback


def _header(z: float, *, orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), position=(-100.0, -50.0), instance=1):
    return SliceHeader(name=f"slice{z}", channel="F", series_uid="1.2.3", series_number=3, description="x_F",
                       acquired="", position=(*position, z), orientation=orientation, spacing=(2.0, 3.0),
                       rows=2, columns=3, instance=instance)


def test_slices_are_sorted_along_the_normal_not_by_instance_number():
    zs = [10.0, 30.0, 20.0]
    headers = [_header(z, instance=i + 1) for i, z in enumerate(zs)]
    images = [np.full((2, 3), z, dtype=np.uint16) for z in zs]
    series = build_series(headers, images)
    np.testing.assert_array_equal(series.z, [30.0, 20.0, 10.0])
    np.testing.assert_array_equal(series.volume[:, 0, 0], [30, 20, 10])
    # PixelSpacing is (between rows, between columns): columns run along x at 3 mm, rows along y at 2 mm
    assert (series.sx, series.sy) == (3.0, 2.0)


def test_a_flipped_row_direction_is_laid_out_left_to_right():
    headers = [_header(z, orientation=(-1.0, 0.0, 0.0, 0.0, 1.0, 0.0), position=(100.0, -50.0)) for z in (1.0, 2.0)]
    image = np.arange(6, dtype=np.uint16).reshape(2, 3)
    series = build_series(headers, [image, image])
    np.testing.assert_array_equal(series.volume[0], image[:, ::-1])  # x now increases along the last axis
    assert series.x0 == pytest.approx(100.0 - 2 * 3.0)


def test_rows_stored_posterior_to_anterior_with_instances_from_the_feet_are_laid_out_head_first():
    """Column direction -y makes the slice normal -z: neither the rows' nor the instances' order is assumed."""
    zs = (5.0, 15.0, 25.0)
    headers = [_header(z, orientation=(1.0, 0.0, 0.0, 0.0, -1.0, 0.0), position=(-10.0, 40.0), instance=i + 1)
               for i, z in enumerate(zs)]  # InstanceNumber 1 is the most inferior slice
    images = [np.arange(6, dtype=np.uint16).reshape(2, 3) + 10 * int(z) for z in zs]
    series = build_series(headers, images)
    np.testing.assert_array_equal(series.z, [25.0, 15.0, 5.0])
    np.testing.assert_array_equal(series.volume[0], images[2][::-1, :])  # y now increases along the rows
    assert series.y0 == pytest.approx(40.0 - 1 * 2.0)


def test_transposed_in_plane_axes_are_laid_out_as_y_rows_and_x_columns():
    headers = [_header(z, orientation=(0.0, 1.0, 0.0, 1.0, 0.0, 0.0)) for z in (1.0, 2.0)]
    image = np.arange(6, dtype=np.uint16).reshape(2, 3)  # rows run along x, columns along y
    series = build_series(headers, [image, image])
    assert series.volume.shape == (2, 3, 2)
    np.testing.assert_array_equal(series.volume[0], image.T)
    assert (series.sx, series.sy) == (2.0, 3.0)


def test_oblique_slices_are_refused_with_a_reason():
    headers = [_header(z, orientation=(0.8, 0.6, 0.0, -0.6, 0.8, 0.0)) for z in (1.0, 2.0)]
    images = [np.zeros((2, 3), dtype=np.uint16)] * 2
    with pytest.raises(InputError, match="oblique"):
        build_series(headers, images)


def test_a_missing_slice_is_counted_and_noted(tmp_path, two_stations):
    path = write_zip(tmp_path / "1000002_20201_2_0.zip", two_stations, drop=(2, 6))
    found = _by_key(read_dixon_zip(path, channels={"F"}).series)
    fat = found[(7, "F")]
    assert fat.z.size == len(two_stations[0].z) - 1
    assert fat.missing_slices == 1
    assert any("missing slice" in note for note in fat.notes)
    assert found[(11, "F")].missing_slices == 0


def test_a_damaged_dicom_member_fails_the_zip_naming_it(tmp_path, two_stations):
    path = write_zip(tmp_path / "1000003_20201_2_0.zip", two_stations)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    victim = sorted(name for name in members if name.endswith(".dcm"))[3]
    members[victim] = members[victim][:200]  # truncated inside the header
    damaged = tmp_path / "1000004_20201_2_0.zip"
    with zipfile.ZipFile(damaged, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(InputError, match=re.escape(victim[-40:])):
        read_dixon_zip(damaged, channels={"F", "W"})


def test_slices_that_are_not_dixon_images_are_reported_not_read(tmp_path, two_stations):
    localizer = dicom_bytes(np.zeros((4, 4), np.uint16), description="AAHead_Scout", series_number=100,
                            series_uid="1.2.3.4", series_time="090000", position=(0, 0, 0), spacing=1.0, instance=1)
    path = write_zip(tmp_path / "1000005_20201_2_0.zip", two_stations, extra_members={"scout.dcm": localizer})
    read = read_dixon_zip(path, channels={"F", "W"})
    assert len(read.series) == 4
    assert any("AAHead_Scout" in note for note in read.notes)


def test_a_zip_without_dicoms_is_a_clear_failure(tmp_path):
    path = tmp_path / "1000006_20201_2_0.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.cvs", "filename\n")
    with pytest.raises(InputError, match=r"no \.dcm members"):
        read_dixon_zip(Path(path), channels={"F"})
