"""The synthetic generator against the spec (ukbb-format.md 1.2-1.6, 3): names, tags, geometry, quirks, truth."""

from __future__ import annotations

import csv
import io
import itertools
import re
import struct
import zipfile
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from ukbb_pipeline.synthetic import (
    DxaQuirks,
    MriQuirks,
    Phantom,
    make_cohort,
    mixed_quirks,
    sample_truth,
    station_geometries,
    write_dxa_zip,
    write_mri_zip,
)
from ukbb_pipeline.synthetic.__main__ import main as cli_main
from ukbb_pipeline.synthetic.dxa_images import REGIONS
from ukbb_pipeline.synthetic.mr_headers import VARYING_TAGS, Series, Study, file_meta, series_dataset, slice_elements
from ukbb_pipeline.synthetic.part10 import Encapsulated, SeriesEncoder
from ukbb_pipeline.synthetic.stations import SEAM_OVERLAPS, ds_text

EID = 1234567
UID = re.compile(r"^(0|[1-9]\d*)(\.(0|[1-9]\d*))+$")
SIEMENS_SOP = re.compile(r"^1\.3\.12\.2\.1107\.5\.2\.18\.\d{5}\.\d{24}$")
GE_SOP = re.compile(r"^1\.2\.840\.113619\.2\.110\.(\d+)\.(\d{14})\.(\d+)\.(\d+)\.12\.1$")
ANON_NAME = re.compile(r"^[A-Z0-9]{2}( [A-Z0-9]{2}){3}\^Bio$")
ANON_ID = re.compile(r"^[A-Z0-9]{2}( [A-Z0-9]{2}){3}$")
CLEAN = MriQuirks(noise_sigma=0.0)


def read_zip(path: Path) -> tuple[list[str], dict[str, Dataset], dict[str, bytes]]:
    """Member names in zip order, parsed DICOMs by name, and the raw bytes of the other members."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        raw = {name: archive.read(name) for name in names}
    dicoms = {n: pydicom.dcmread(io.BytesIO(b)) for n, b in raw.items() if n.endswith(".dcm")}
    others = {n: b for n, b in raw.items() if not n.endswith(".dcm")}
    return names, dicoms, others


def by_series(dicoms: dict[str, Dataset]) -> dict[int, list[Dataset]]:
    series = defaultdict(list)
    for ds in dicoms.values():
        series[int(ds.SeriesNumber)].append(ds)
    return {number: sorted(items, key=lambda d: int(d.InstanceNumber)) for number, items in series.items()}


def stack(slices: list[Dataset]) -> np.ndarray:
    return np.stack([ds.pixel_array.astype(np.float32) for ds in slices])


def truth_slice(phantom: Phantom, ds: Dataset, *, channel: str) -> np.ndarray:
    """The truth at the voxels of one written slice, via the output-grid sampler (table included)."""
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    spacing = float(ds.PixelSpacing[0])
    volume = sample_truth(
        phantom,
        origin=(x, y, z),
        spacing=(spacing, spacing, 1.0),
        shape=(int(ds.Columns), int(ds.Rows), 1),
        channel=channel,
        include_bed=True,
    )
    return volume[:, :, 0].T  # (x, y) -> (rows, columns)


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    return Phantom.random(11)


@pytest.fixture(scope="module")
def clean_zip(tmp_path_factory, phantom):
    path = tmp_path_factory.mktemp("mri") / f"{EID}_20201_2_0.zip"
    truth = write_mri_zip(path, eid=EID, phantom=phantom, quirks=CLEAN, seed=3)
    return truth, *read_zip(path)


# --- geometry -------------------------------------------------------------------------------------------------------


def test_full_geometry_is_the_real_layout():
    stations = station_geometries("full")
    assert [g.rows for g in stations] == [168, 174, 174, 174, 162, 156]
    assert [g.n_slices for g in stations] == [64, 44, 44, 44, 72, 64]
    assert [g.thickness for g in stations] == [3.0, 4.5, 4.5, 4.5, 3.5, 4.0]
    assert all(g.columns == 224 for g in stations)
    assert ds_text(stations[0].pixel_spacing).startswith("2.2321429252")
    assert 4 * sum(g.n_slices for g in stations) == 1328
    for upper, lower in itertools.pairwise(stations):
        overlap = upper.bottom_edge - lower.top_edge
        assert overlap == pytest.approx(-(lower.top_edge - upper.bottom_edge))
        assert 30.0 <= lower.top_edge - upper.bottom_edge <= 40.0
    assert stations[0].top_edge - stations[-1].bottom_edge == pytest.approx(1294.0 - sum(SEAM_OVERLAPS))
    for g in stations:
        assert g.x0 == pytest.approx(-250.0 + g.pixel_spacing / 2, abs=1e-6)
        assert g.y0 + (g.rows - 1) * g.pixel_spacing / 2 == pytest.approx(0.0, abs=1e-6)  # FOV centred A-P
        assert np.all(np.diff(g.zs) == pytest.approx(-g.thickness))


def test_small_geometry_keeps_the_slabs():
    full, small = station_geometries("full"), station_geometries("small")
    for f, s in zip(full, small, strict=True):
        assert s.columns == 56
        assert s.pixel_spacing == pytest.approx(4 * f.pixel_spacing, rel=1e-9)
        assert s.top_edge == pytest.approx(f.top_edge)
        assert s.bottom_edge == pytest.approx(f.bottom_edge)
        assert s.rows * s.pixel_spacing == pytest.approx(f.rows * f.pixel_spacing, rel=0.05)
        assert s.n_slices < f.n_slices
        assert s.rows % 2 == 0
    with pytest.raises(ValueError, match="size"):
        station_geometries("medium")


# --- MRI zip: names, tags, conventions ------------------------------------------------------------------------------


def test_mri_members_and_series(clean_zip):
    truth, names, dicoms, others = clean_zip
    small = station_geometries("small")
    assert len(dicoms) == 4 * sum(g.n_slices for g in small) == truth.n_dicoms
    assert set(others) == {"manifest.cvs"}
    assert all("/" not in name for name in names)  # flat
    assert names != sorted(names)  # shuffled
    series = by_series(dicoms)
    assert sorted(series) == list(range(1, 25))
    for number, slices in series.items():
        station, channel = (number - 1) // 4 + 1, ("in", "opp", "F", "W")[(number - 1) % 4]
        base = "Dixon_BH_17s" if station in (2, 3, 4) else "Dixon_noBH"
        assert {ds.SeriesDescription for ds in slices} == {f"{base}_{channel}"}
        assert len({ds.SeriesInstanceUID for ds in slices}) == 1
        g = small[station - 1]
        assert [int(ds.InstanceNumber) for ds in slices] == list(range(1, g.n_slices + 1))
        assert {(int(ds.Rows), int(ds.Columns)) for ds in slices} == {(g.rows, g.columns)}
    assert len({ds.SeriesInstanceUID for ds in dicoms.values()}) == 24
    assert len({ds.StudyInstanceUID for ds in dicoms.values()}) == 1


def test_mri_files_are_part10_named_by_sop_uid(clean_zip):
    truth, _names, dicoms, _ = clean_zip
    with zipfile.ZipFile(truth.path) as archive:
        for name in list(dicoms)[:20]:
            assert archive.read(name)[128:132] == b"DICM"
    for name, ds in dicoms.items():
        assert name == f"{ds.SOPInstanceUID}.dcm"
        assert SIEMENS_SOP.match(ds.SOPInstanceUID), ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        for uid in (ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID):
            assert UID.match(uid), uid
            assert len(uid) <= 64, uid
    assert len({ds.SOPInstanceUID for ds in dicoms.values()}) == len(dicoms)


def test_mri_tags(clean_zip):
    truth, _, dicoms, _ = clean_zip
    for ds in dicoms.values():
        assert ds.Manufacturer == "SIEMENS"
        assert ds.Modality == "MR"
        assert ds.SOPClassUID == pydicom.uid.MRImageStorage
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert ds.SamplesPerPixel == 1
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert float(ds.SliceLocation) == float(ds.ImagePositionPatient[2])
        assert float(ds.SliceThickness) == float(ds.SpacingBetweenSlices)
        assert "M" in ds.ImageType
        assert ANON_NAME.match(str(ds.PatientName))
        assert ANON_ID.match(ds.PatientID)
        assert ds.PatientPosition == "HFS"
        assert re.fullmatch(r"\d{6}\.\d{6}", ds.SeriesTime)
        assert ds.AcquisitionTime
        assert int(ds.LargestImagePixelValue) == int(ds.pixel_array.max())
        assert ds.pixel_array.dtype == np.uint16
        assert ds.pixel_array.max() < 4096
        assert 0x00291010 in ds
        assert 0x00291020 in ds
    assert str(next(iter(dicoms.values())).PatientName) == truth.visit.patient_name


def test_instance_one_is_most_superior_and_ipp_matches_geometry(clean_zip):
    truth, _, dicoms, _ = clean_zip
    for number, slices in by_series(dicoms).items():
        station = truth.station((number - 1) // 4 + 1)
        z = [float(ds.ImagePositionPatient[2]) for ds in slices]
        assert z == sorted(z, reverse=True)
        assert z == pytest.approx(list(station.geometry.z))
        x, y = {tuple(float(v) for v in ds.ImagePositionPatient[:2]) for ds in slices}.pop()
        assert (x, y) == pytest.approx(station.origin[:2])
        assert x == pytest.approx(-250.0 + float(slices[0].PixelSpacing[0]) / 2, abs=1e-6)
    y_first = {int(ds.Rows): float(ds.ImagePositionPatient[1]) for ds in dicoms.values()}
    assert len(set(y_first.values())) == len(y_first)  # IPP y differs when Rows differ (FOV centred A-P)


def test_siemens_csa_headers_parse(clean_zip):
    _, _, dicoms, _ = clean_zip
    ds = next(iter(dicoms.values()))
    for tag in (0x00291010, 0x00291020):
        blob = ds[tag].value
        assert blob[:4] == b"SV10"
        n_tags, check = struct.unpack_from("<II", blob, 8)
        assert check == 77
        assert n_tags > 0
        names, offset = [], 16
        for _ in range(n_tags):
            name, _vm, _vr, _syngo, n_items, _x = struct.unpack_from("<64si4siii", blob, offset)
            names.append(name.split(b"\x00")[0].decode())
            offset += 84
            for _ in range(n_items):
                length = struct.unpack_from("<4i", blob, offset)[1]
                offset += 16 + length + (-length % 4)
        assert offset <= len(blob)
    assert "MrPhoenixProtocol" in names


def test_truth_sampler_agrees_with_zip_voxels(clean_zip, phantom):
    truth, _, dicoms, _ = clean_zip
    series = by_series(dicoms)
    for station in truth.stations:
        for channel in ("F", "W"):
            slices = series[station.series_numbers[channel]]
            for ds in (slices[0], slices[len(slices) // 2], slices[-1]):
                expected = truth_slice(phantom, ds, channel=channel)
                assert np.abs(ds.pixel_array - expected).max() <= 0.501
    body_voxels = stack(series[11])  # station 3 fat
    assert body_voxels.max() > 500
    assert (body_voxels == 0).mean() > 0.2


def test_in_and_opposed_phase_follow_fat_and_water(clean_zip):
    _, _, dicoms, _ = clean_zip
    series = by_series(dicoms)
    for first in (1, 9, 21):
        inp, opp, fat, water = (stack(series[first + i]) for i in range(4))
        assert np.abs(inp - (fat + water)).max() <= 1.0
        assert np.abs(opp - np.abs(water - fat)).max() <= 1.0


def test_manifest_format(clean_zip):
    truth, _, dicoms, others = clean_zip
    text = others["manifest.cvs"].decode("ascii")
    lines = text.splitlines()
    header = lines[0].split(",")
    assert "series discription" in header
    assert "filename" in header
    assert "date" in header
    assert '"' not in text
    assert len(lines) == 1 + len(dicoms)
    rows = list(csv.reader(lines[1:]))
    assert all(len(row) == len(header) + 1 for row in rows)  # the comma in the date shifts every later column
    assert re.match(r"^[A-Z][a-z]{2} \d{1,2}, 20\d\d \d{1,2}:\d\d:\d\d [AP]M$", rows[0][4] + "," + rows[0][5])
    assert {row[0] for row in rows} == set(dicoms)
    descriptions = {row[header.index("series discription") + 1] for row in rows}
    assert "Dixon_noBH_F" in descriptions
    assert "Dixon_BH_17s_W" in descriptions
    assert {row[1] for row in rows} == {truth.visit.patient_id}


def test_manifest_variants(tmp_path, phantom):
    malformed = write_mri_zip(tmp_path / "a.zip", eid=EID, phantom=phantom, quirks=MriQuirks(manifest_malformed=True))
    with zipfile.ZipFile(malformed.path) as archive:
        text = archive.read("manifest.cvs").decode("ascii")
    lines = text.split("\n")
    assert not text.endswith("\n")
    assert len(lines[-1].split(",")) <= 2  # truncated
    assert any(line.count(".dcm") == 2 for line in lines)  # a run-on record
    assert len(lines) == malformed.n_dicoms  # header + all records - one lost line break
    renamed = write_mri_zip(
        tmp_path / "b.zip", eid=EID, phantom=phantom, quirks=MriQuirks(manifest_name="manifest.csv")
    )
    missing = write_mri_zip(tmp_path / "c.zip", eid=EID, phantom=phantom, quirks=MriQuirks(manifest_name=None))
    assert "manifest.csv" in renamed.members
    assert "manifest.cvs" not in renamed.members
    assert not any("manifest" in name for name in missing.members)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, phantom):
    a = write_mri_zip(tmp_path / "a.zip", eid=EID, phantom=phantom, seed=5)
    b = write_mri_zip(tmp_path / "b.zip", eid=EID, phantom=phantom, seed=5)
    c = write_mri_zip(tmp_path / "c.zip", eid=EID, phantom=phantom, seed=6)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.path.read_bytes() != c.path.read_bytes()
    assert {m for m in a.members if m.endswith(".dcm")}.isdisjoint(c.members)  # fresh UIDs
    d1 = write_dxa_zip(tmp_path / "d1.zip", eid=EID, phantom=phantom, seed=5)
    d2 = write_dxa_zip(tmp_path / "d2.zip", eid=EID, phantom=phantom, seed=5)
    assert d1.path.read_bytes() == d2.path.read_bytes()
    assert Phantom.random(3) == Phantom.random(3) != Phantom.random(4)


def test_noise_has_the_requested_sigma(tmp_path, phantom):
    truth = write_mri_zip(tmp_path / "n.zip", eid=EID, phantom=phantom, quirks=MriQuirks(noise_sigma=20.0))
    slices = by_series(read_zip(truth.path)[1])[11]
    residual = stack(slices) - np.stack([truth_slice(phantom, ds, channel="fat") for ds in slices])
    bright = np.stack([truth_slice(phantom, ds, channel="fat") for ds in slices]) > 300
    assert residual[bright].std() == pytest.approx(20.0, rel=0.15)
    assert abs(residual[bright].mean()) < 3.0


# --- MRI quirks -----------------------------------------------------------------------------------------------------


def test_swapped_station_exchanges_fat_and_water(tmp_path, phantom):
    truth = write_mri_zip(
        tmp_path / "s.zip", eid=EID, phantom=phantom, quirks=MriQuirks(swapped_station=3, noise_sigma=0)
    )
    assert truth.swapped_stations == (3,)
    series = by_series(read_zip(truth.path)[1])
    fat_series = series[11]  # station 3, F
    for ds in fat_series[::5]:
        assert np.abs(ds.pixel_array - truth_slice(phantom, ds, channel="water")).max() <= 0.501
        assert np.abs(ds.pixel_array - truth_slice(phantom, ds, channel="fat")).max() > 100
    ds = series[7][3]  # station 2 untouched
    assert np.abs(ds.pixel_array - truth_slice(phantom, ds, channel="fat")).max() <= 0.501


def test_repeated_station_later_and_good(tmp_path, phantom):
    truth = write_mri_zip(
        tmp_path / "r.zip", eid=EID, phantom=phantom, quirks=MriQuirks(repeated_station=2, noise_sigma=2)
    )
    series = by_series(read_zip(truth.path)[1])
    assert sorted(series) == list(range(1, 29))
    assert [series[n][0].SeriesDescription for n in range(25, 29)] == [
        f"Dixon_BH_17s_{c}" for c in ("in", "opp", "F", "W")
    ]
    latest_other = max(float(series[n][0].SeriesTime) for n in range(1, 25))
    assert all(float(series[n][0].SeriesTime) > latest_other for n in range(25, 29))
    assert [float(ds.ImagePositionPatient[2]) for ds in series[7]] == [
        float(ds.ImagePositionPatient[2]) for ds in series[27]
    ]  # superimposed: same positions
    assert truth.station(2).series_numbers["F"] == 27
    assert truth.discarded[0].series_numbers["F"] == 7

    def error(number: int) -> float:
        return float(
            np.mean([np.abs(ds.pixel_array - truth_slice(phantom, ds, channel="fat")).mean() for ds in series[number]])
        )

    assert error(27) < 3.0 < 10 * 3.0 < error(7)


def test_dropped_slice(tmp_path, phantom):
    truth = write_mri_zip(tmp_path / "d.zip", eid=EID, phantom=phantom, quirks=MriQuirks(dropped_slice=(3, 7)))
    series = by_series(read_zip(truth.path)[1])
    n = station_geometries("small")[2].n_slices
    for number in (9, 10, 11, 12):
        assert [int(ds.InstanceNumber) for ds in series[number]] == [i for i in range(1, n + 1) if i != 8]
    assert len(series[5]) == len(series[13]) == n
    assert truth.n_dicoms == 4 * sum(g.n_slices for g in station_geometries("small")) - 4
    only_w = write_mri_zip(
        tmp_path / "w.zip",
        eid=EID,
        phantom=phantom,
        quirks=MriQuirks(dropped_slice=(3, 7), dropped_slice_channels=("W",)),
    )
    assert only_w.station(3).dropped == {"in": (), "opp": (), "F": (), "W": (7,)}


def test_missing_station(tmp_path, phantom):
    truth = write_mri_zip(tmp_path / "m.zip", eid=EID, phantom=phantom, quirks=MriQuirks(missing_station=3))
    series = by_series(read_zip(truth.path)[1])
    assert sorted(series) == [n for n in range(1, 25) if n not in (9, 10, 11, 12)]
    assert truth.station_numbers == (1, 2, 4, 5, 6)
    with pytest.raises(KeyError):
        truth.station(3)


def test_size_mismatch_station(tmp_path, phantom):
    quirks = MriQuirks(size_mismatch_station=5, noise_sigma=0)
    truth = write_mri_zip(tmp_path / "z.zip", eid=EID, phantom=phantom, quirks=quirks)
    series = by_series(read_zip(truth.path)[1])
    fat, water = series[19][4], series[20][4]
    assert (int(water.Rows), int(water.Columns)) < (int(fat.Rows), int(fat.Columns))
    assert int(water.Columns) < int(fat.Columns)
    assert list(water.ImagePositionPatient) == list(fat.ImagePositionPatient)
    rows, columns = int(water.Rows), int(water.Columns)
    assert np.abs(water.pixel_array - truth_slice(phantom, fat, channel="water")[:rows, :columns]).max() <= 0.501
    assert truth.station(5).shapes["W"][1:] == (rows, columns)


def test_slab_edge_loss(tmp_path, phantom):
    quirks = MriQuirks(slab_edge_loss=True, noise_sigma=0)
    truth = write_mri_zip(tmp_path / "e.zip", eid=EID, phantom=phantom, quirks=quirks)
    series = by_series(read_zip(truth.path)[1])
    for station in truth.stations:
        factors = np.asarray(station.edge_factors)
        assert factors[0] < 1.0
        assert factors[-1] < 1.0
        assert factors[len(factors) // 2] == 1.0
        slices = series[station.series_numbers["W"]]
        for index in (0, len(slices) // 2, len(slices) - 1):
            ds = slices[index]
            clean = truth_slice(phantom, ds, channel="water")
            written = ds.pixel_array.astype(np.float32)
            if factors[index] == 1.0:
                assert np.abs(written - clean).max() <= 0.501
            else:
                assert np.abs(written - clean).mean() > 5.0
                assert np.abs(written - np.rint(station.expected("W")[index])).mean() < 25.0


def test_station_gains(tmp_path, phantom):
    gains = (0.8, 1.0, 1.25, 0.9, 1.1, 1.0)
    truth = write_mri_zip(
        tmp_path / "g.zip", eid=EID, phantom=phantom, quirks=MriQuirks(station_gains=gains, noise_sigma=0)
    )
    series = by_series(read_zip(truth.path)[1])
    for station, gain in zip(truth.stations, gains, strict=True):
        ds = series[station.series_numbers["F"]][station.geometry.n_slices // 2]
        clean = truth_slice(phantom, ds, channel="fat")
        assert np.abs(ds.pixel_array - np.clip(np.rint(gain * clean), 0, 4095)).max() <= 1.0
        assert station.gain == gain


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, RLELossless]
)
def test_transfer_syntaxes_decode_to_the_same_pixels(tmp_path, phantom, syntax, clean_zip):
    truth = write_mri_zip(
        tmp_path / "t.zip", eid=EID, phantom=phantom, seed=3, quirks=MriQuirks(noise_sigma=0, transfer_syntax=syntax)
    )
    reference = {ds.SOPInstanceUID: ds for ds in clean_zip[2].values()}
    with zipfile.ZipFile(truth.path) as archive:
        for name in [n for n in archive.namelist() if n.endswith(".dcm")][:12]:
            ds = pydicom.dcmread(io.BytesIO(archive.read(name)))
            assert ds.file_meta.TransferSyntaxUID == syntax
            assert np.array_equal(ds.pixel_array, reference[ds.SOPInstanceUID].pixel_array)


def test_quirks_are_validated():
    with pytest.raises(ValueError, match="station"):
        MriQuirks(swapped_station=7)
    with pytest.raises(ValueError, match="station_gains"):
        MriQuirks(station_gains=(1.0, 1.0))
    with pytest.raises(ValueError, match="manifest_name"):
        MriQuirks(manifest_name="manifest.txt")
    with pytest.raises(ValueError, match="n_total_body_pairs"):
        DxaQuirks(n_total_body_pairs=3)


def test_part10_encoder_writes_what_pydicom_writes(clean_zip):
    truth = clean_zip[0]
    study = Study(
        visit=truth.visit,
        scanner_serial=45961,
        study_uid="1.2.3",
        frame_of_reference_uid="1.2.4",
        start=datetime(2020, 1, 1, 10, 10, 10),
        size="small",
    )
    geometry = station_geometries("small")[1]
    series = Series(
        station=2,
        channel="W",
        number=8,
        uid="1.2.5",
        time=study.start,
        acquired=study.start,
        geometry=geometry,
        rows=geometry.rows,
        columns=geometry.columns,
    )
    image = (np.arange(geometry.rows * geometry.columns) % 4000).reshape(geometry.rows, geometry.columns)
    for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless):
        shared = series_dataset(study, series)
        own = slice_elements(study, series, index=3, sop_instance_uid="1.2.6.7", image=image, transfer_syntax=syntax)
        ours = SeriesEncoder(shared=shared, file_meta=file_meta(syntax), varying_tags=VARYING_TAGS).encode(
            own, sop_instance_uid="1.2.6.7"
        )
        merged = series_dataset(study, series)
        for tag, vr, value in own:
            if isinstance(value, Encapsulated):
                merged.add_new(tag, vr, value.data)
                merged[tag].is_undefined_length = True
            else:
                merged.add_new(tag, vr, value)
        merged.file_meta = FileMetaDataset(file_meta(syntax))
        merged.file_meta.MediaStorageSOPInstanceUID = "1.2.6.7"
        theirs = io.BytesIO()
        merged.save_as(theirs, enforce_file_format=True)
        assert ours == theirs.getvalue()


# --- full size ------------------------------------------------------------------------------------------------------


def test_full_size_zip_is_the_real_layout(tmp_path, phantom):
    truth = write_mri_zip(tmp_path / f"{EID}_20201_2_0.zip", eid=EID, phantom=phantom, size="full", seed=1)
    headers = {}
    with zipfile.ZipFile(truth.path) as archive:
        names = archive.namelist()
        for name in names:
            if name.endswith(".dcm"):
                with archive.open(name) as member:
                    head = member.read(120_000)  # the header, CSA blobs included, without most pixels
                headers[name] = pydicom.dcmread(io.BytesIO(head), stop_before_pixels=True)
    assert len(names) == 1329
    assert "manifest.cvs" in names
    assert truth.n_dicoms == len(headers) == 1328
    series = defaultdict(list)
    for ds in headers.values():
        series[int(ds.SeriesNumber)].append(ds)
    assert sorted(series) == list(range(1, 25))
    assert [len(series[4 * s + 1]) for s in range(6)] == [64, 44, 44, 44, 72, 64]
    assert [int(series[4 * s + 1][0].Rows) for s in range(6)] == [168, 174, 174, 174, 162, 156]
    assert {int(ds.Columns) for ds in headers.values()} == {224}
    assert [float(series[4 * s + 1][0].SliceThickness) for s in range(6)] == [3.0, 4.5, 4.5, 4.5, 3.5, 4.0]
    spacings = {float(value) for ds in headers.values() for value in ds.PixelSpacing}
    assert len(spacings) == 1
    assert spacings.pop() == pytest.approx(2.232142925262451, abs=1e-12)
    image_csa = [len(ds[0x00291010].value) for ds in headers.values()]
    series_csa = [len(ds[0x00291020].value) for ds in headers.values()]
    assert min(image_csa) > 10_000
    assert max(image_csa) < 14_000
    assert min(series_csa) > 70_000
    assert max(series_csa) < 90_000


# --- DXA ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dxa_zip(tmp_path_factory, phantom):
    path = tmp_path_factory.mktemp("dxa") / f"{EID}_20158_2_0.zip"
    truth = write_dxa_zip(path, eid=EID, phantom=phantom, seed=3)
    return truth, *read_zip(path)


def test_dxa_members_and_tags(dxa_zip):
    _truth, _names, dicoms, others = dxa_zip
    assert set(others) == {"manifest.cvs"}
    assert len(dicoms) == 2 + len(_truth.regional)
    protocols = sorted(ds.ProtocolName for ds in dicoms.values())
    assert protocols == sorted([*_truth.regional, "Total Body", "Total Body"])
    for name, ds in dicoms.items():
        match = GE_SOP.match(ds.SOPInstanceUID)
        assert match
        assert name == f"{ds.SOPInstanceUID}.dcm"
        assert match.group(1) == ds.DeviceSerialNumber
        assert int(match.group(3)) == int(ds.SeriesNumber)
        offset = int(ds.InstanceNumber) - int(match.group(4))  # the AP Spine's tag may be 16 off its UID's number
        assert offset == 0 or (ds.ProtocolName, offset) == ("AP Spine", 16)
        assert ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
        assert ds.file_meta.ImplementationVersionName == "OFFIS_DCMBP_360"
        assert ds.file_meta.SourceApplicationEntityTitle == "GELUNAR"
        assert ds.SOPClassUID == pydicom.uid.ComputedRadiographyImageStorage
        assert ds.Modality == "CR"
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (8, 8, 7, 0)
        assert ds.SeriesDescription == "DXA Images"
        assert ds.StudyDescription == "DXA Exam"
        assert ds.Manufacturer == "GE Healthcare"
        assert ds.ManufacturerModelName == "Lunar iDXA"
        assert ds.PerformedProcedureStepDescription == ds.ProtocolName
        assert list(ds.PatientOrientation) == ["L", "F"]
        for absent in ("PixelSpacing", "ImagerPixelSpacing", "RescaleSlope", "WindowCenter"):
            assert absent not in ds
        assert ds.pixel_array.dtype == np.uint8
        assert ANON_NAME.match(str(ds.PatientName))
        assert ANON_ID.match(ds.PatientID)
        assert not np.isin(ds.pixel_array, [250, 251]).any()


def test_dxa_total_body_pair(dxa_zip):
    truth, _, dicoms, _ = dxa_zip
    total = sorted((ds for ds in dicoms.values() if ds.ProtocolName == "Total Body"), key=lambda d: d.InstanceNumber)
    tissue, bone = total
    assert (tissue.InstanceNumber, bone.InstanceNumber) == (11, 12) == truth.instance_numbers
    assert list(tissue.ExposedArea) == [658, 1920] == list(bone.ExposedArea)
    assert np.array_equal(tissue.pixel_array, truth.tissue)
    assert np.array_equal(bone.pixel_array, truth.bone)
    rows, columns = truth.tissue.shape
    assert truth.pixel_spacing == pytest.approx((1920 / rows, 658 / columns))
    for image in (truth.tissue, truth.bone):
        body = image > 0
        assert 0.35 < 1 - body.mean() < 0.8  # background exactly 0, about half the image
        assert image[body].min() >= 1
        assert image[image != 252].max() <= 249
    assert (truth.bone == 252).sum() > 20
    assert (truth.tissue == 252).sum() == 0
    assert np.array_equal(truth.tissue > 0, truth.bone > 0)
    assert truth.tissue[0].max() == 0  # headroom above the head


def test_dxa_regional_images_have_their_real_sizes(tmp_path, phantom):
    full = write_dxa_zip(tmp_path / "full.zip", eid=EID, phantom=phantom, size="full", seed=2)
    dicoms = read_zip(full.path)[1]
    sizes = {ds.ProtocolName: (int(ds.Rows), int(ds.Columns), list(ds.ExposedArea)) for ds in dicoms.values()}
    for region in REGIONS:
        if region.name not in full.regional:
            continue
        assert sizes[region.name] == (region.rows, region.columns, list(region.area))
        image = next(ds for ds in dicoms.values() if ds.ProtocolName == region.name).pixel_array
        assert (image[:, 0] == 252).all()
        assert (image[:, -1] == 252).all()
    assert (REGIONS[0].rows, REGIONS[0].columns, REGIONS[0].area) == (780, 716, (180, 197))
    rows, columns, _ = sizes["Total Body"]
    assert 780 <= rows <= 830
    assert 264 <= columns <= 288
    assert full.pixel_spacing == pytest.approx((1920 / rows, 658 / columns))
    plain = write_dxa_zip(tmp_path / "p.zip", eid=EID, phantom=phantom, quirks=DxaQuirks(regional_images=False))
    assert len(plain.members) == 3
    assert plain.regional == {}


def test_dxa_repeated_total_body(tmp_path, phantom):
    truth = write_dxa_zip(tmp_path / "r.zip", eid=EID, phantom=phantom, quirks=DxaQuirks(n_total_body_pairs=2))
    dicoms = read_zip(truth.path)[1]
    total = {int(ds.InstanceNumber): ds for ds in dicoms.values() if ds.ProtocolName == "Total Body"}
    assert sorted(total) == [11, 12, 13, 14]
    assert truth.instance_numbers == (13, 14)
    assert truth.superseded_instance_numbers == (11, 12)
    for old, new in ((11, 13), (12, 14)):
        assert total[new].AcquisitionTime > total[old].AcquisitionTime
        assert total[new].ContentTime > total[old].ContentTime
        assert not np.array_equal(total[new].pixel_array, total[old].pixel_array)
    assert np.array_equal(total[13].pixel_array, truth.tissue)
    assert np.array_equal(total[14].pixel_array, truth.bone)


def test_dxa_only_one_total_body(tmp_path, phantom):
    truth = write_dxa_zip(tmp_path / "o.zip", eid=EID, phantom=phantom, quirks=DxaQuirks(only_one_total_body=True))
    dicoms = read_zip(truth.path)[1]
    total = [ds for ds in dicoms.values() if ds.ProtocolName == "Total Body"]
    assert len(total) == 1
    assert int(total[0].InstanceNumber) == 11
    assert truth.bone is None


def test_dxa_image_sets_and_times_vary_as_real_exams_do(tmp_path, phantom):
    layouts, mismatched = set(), 0
    for eid in range(EID, EID + 8):
        truth = write_dxa_zip(tmp_path / f"{eid}.zip", eid=eid, phantom=phantom, seed=1)
        dicoms = read_zip(truth.path)[1]
        layouts.add(tuple(sorted(truth.regional.items())))
        total = [ds for ds in dicoms.values() if ds.ProtocolName == "Total Body"]
        regional = [ds for ds in dicoms.values() if ds.ProtocolName != "Total Body"]
        assert {ds.AcquisitionTime for ds in total} == {total[0].StudyTime}, "the pair is timed at the study's start"
        assert all(ds.AcquisitionTime > total[0].AcquisitionTime for ds in regional)
        spine = [ds for ds in regional if ds.ProtocolName == "AP Spine"]
        mismatched += any(int(ds.InstanceNumber) != int(GE_SOP.match(ds.SOPInstanceUID).group(4)) for ds in spine)
    assert len(layouts) == 8, "which regional images, and their numbers, differ between subjects"
    assert mismatched >= 1


def test_dxa_foreign_images_reports_and_monochrome1(tmp_path, phantom):
    quirks = DxaQuirks(foreign=("AP Spine", "Total Body"), rgb_report=True, pdf_report=True, monochrome1=True,
                       swapped_instance_numbers=True)
    truth = write_dxa_zip(tmp_path / "v.zip", eid=EID, phantom=phantom, quirks=quirks, seed=4)
    dicoms = read_zip(truth.path)[1]
    assert truth.fault is None
    assert sorted(truth.ignored.values()) == ["foreign", "foreign", "foreign", "pdf_report", "rgb_report"]
    exam_id = dicoms[truth.tissue_member].PatientID
    for name, why in truth.ignored.items():
        ds = dicoms[name]
        assert ds.ProtocolName in ("AP Spine", "Total Body")
        if why == "foreign":
            assert ds.PatientID != exam_id and int(ds.SeriesNumber) == 2
            assert ds.StudyInstanceUID != dicoms[truth.tissue_member].StudyInstanceUID
        elif why == "rgb_report":
            assert (ds.SamplesPerPixel, ds.PhotometricInterpretation) == (3, "RGB")
            assert ds.pixel_array.shape[2] == 3
        else:
            assert "PixelData" not in ds and ds.SOPClassUID == pydicom.uid.EncapsulatedPDFStorage
    foreign_tb = [dicoms[n] for n, why in truth.ignored.items() if why == "foreign" and
                  dicoms[n].ProtocolName == "Total Body"]
    assert len(foreign_tb) == 2 and foreign_tb[0].StudyDate > dicoms[truth.tissue_member].StudyDate, "newer"
    tissue, bone = dicoms[truth.tissue_member], dicoms[truth.bone_member]
    assert (int(tissue.InstanceNumber), int(bone.InstanceNumber)) == (12, 11) == truth.instance_numbers
    for ds, expected in ((tissue, truth.tissue), (bone, truth.bone)):
        assert ds.PhotometricInterpretation == "MONOCHROME1"
        np.testing.assert_array_equal(ds.pixel_array, 255 - expected)


def test_dxa_faults_a_reader_must_refuse(tmp_path, phantom):
    reversed_area = write_dxa_zip(tmp_path / "r.zip", eid=EID, phantom=phantom,
                                  quirks=DxaQuirks(reversed_exposed_area=True))
    assert reversed_area.fault == "reversed_exposed_area"
    assert list(read_zip(reversed_area.path)[1][reversed_area.tissue_member].ExposedArea) == [1920, 658]
    third = write_dxa_zip(tmp_path / "t.zip", eid=EID, phantom=phantom, quirks=DxaQuirks(third_total_body=True))
    total = [ds for ds in read_zip(third.path)[1].values() if ds.ProtocolName == "Total Body"]
    assert sorted(int(ds.InstanceNumber) for ds in total) == [11, 12, 13] and third.fault == "third_total_body"
    assert third.n_total_body == 3


# --- phantom and truth helpers ---------------------------------------------------------------------------------------


def test_phantom_anatomy(phantom):
    z_knee = phantom.z_shift - 350.0 * phantom.height_scale
    xs = np.linspace(-240, 240, 241)
    ys = np.linspace(-200, 180, 191)
    fat, water = phantom.grid(xs=xs, ys=ys, zs=np.array([z_knee, phantom.z_shift + 250.0]))
    knee = (fat[0] + water[0]) > 200
    assert knee.any(axis=0)[np.abs(xs - phantom.x_shift) < 10].sum() == 0  # two legs, a gap between them
    assert knee.any(axis=0)[xs < phantom.x_shift].any()
    assert knee.any(axis=0)[xs > phantom.x_shift].any()
    abdomen_fat, abdomen_water = fat[1], water[1]
    column = abdomen_fat[:, np.argmin(np.abs(xs - phantom.x_shift))]
    assert column.max() > 0.8 * phantom.fat_signal  # subcutaneous fat
    assert abdomen_water.max() > 0.6 * phantom.water_signal  # water-rich muscle and organs
    assert phantom.fat(0.0, 0.0, 5000.0) == 0.0
    assert phantom.body_mask(phantom.x_shift, phantom.y_rest - 80.0, phantom.z_shift + 250.0)
    lung = (phantom.x_shift + 50.0, phantom.y_rest - 100.0, phantom.z_shift + 500.0 * phantom.height_scale)
    assert phantom.water(*lung) < 0.1 * phantom.water_signal  # air-filled, dark in both images
    assert phantom.body_mask(*lung)  # yet inside the body
    assert not phantom.body_mask(phantom.x_shift, phantom.y_rest - 80.0, phantom.head_top_z + 30.0)
    # the table lies posterior to the body, with signal in both images
    bed = phantom.bed(phantom.x_shift, ys[:, None], phantom.z_shift + 250.0)[:, 0]
    body_rows = ys[(abdomen_fat + abdomen_water).max(axis=1) > 50]
    assert ys[bed > 100].min() > body_rows.max() - 5
    assert phantom.bed_fat(0.0, phantom.table_y + 10, 0.0) > 100
    assert phantom.bed_water(0.0, phantom.table_y + 10, 0.0) > 100
    assert phantom.fat(0.0, phantom.table_y + 10, 0.0) < 0.5  # the table is not body


def test_phantom_random_varies_size_and_position():
    phantoms = [Phantom.random(seed) for seed in range(8)]
    assert np.ptp([p.x_shift for p in phantoms]) > 15
    assert np.ptp([p.table_y for p in phantoms]) > 5
    assert np.ptp([p.fat_scale for p in phantoms]) > 0.4
    assert np.ptp([p.width_scale for p in phantoms]) > 0.08


def test_sample_truth_axes_follow_the_output_convention(phantom):
    origin, spacing, shape = (-100.0, -50.0, 300.0), (2.0, 3.0, 4.0), (20, 10, 5)
    volume = sample_truth(phantom, origin=origin, spacing=spacing, shape=shape, channel="water")
    assert volume.shape == shape
    assert volume.dtype == np.float32
    i, j, k = 7, 4, 3
    point = (origin[0] + i * spacing[0], origin[1] + j * spacing[1], origin[2] - k * spacing[2])
    assert volume[i, j, k] == pytest.approx(float(phantom.water(*point)), rel=1e-5)
    opp = sample_truth(phantom, origin=origin, spacing=spacing, shape=shape, channel="opp")
    fat = sample_truth(phantom, origin=origin, spacing=spacing, shape=shape, channel="F")
    assert np.allclose(opp, np.abs(volume - fat), atol=1e-3)
    with pytest.raises(ValueError, match="channel"):
        sample_truth(phantom, origin=origin, spacing=spacing, shape=shape, channel="T1")


def test_covering_grid_spans_every_station(clean_zip):
    truth = clean_zip[0]
    grid = truth.covering_grid(z_spacing=3.0)
    (x0, y0, top), (_, sy, sz), (nx, ny, nz) = grid["origin"], grid["spacing"], grid["shape"]
    assert (nx, ny, sz) == (56, 44, 3.0)
    assert top == truth.z_range[1]
    assert top - (nz - 1) * sz <= truth.z_range[0] + sz
    assert top - (nz - 1) * sz >= truth.z_range[0]
    for station in truth.stations:
        g = station.geometry
        assert g.x0 == x0
        assert y0 <= g.y0 <= g.y0 + (g.rows - 1) * g.pixel_spacing <= y0 + (ny - 1) * sy + 1e-6
    volume = truth.sample(**grid, channel="fat", include_bed=True)
    assert volume.shape == (nx, ny, nz)
    assert truth.repeated_station is None
    assert truth.missing_station is None


def test_mid_coronal_is_the_weighted_median_row(phantom):
    xs = np.arange(-248.0, 250.0, 8.0)
    ys = np.arange(-190.0, 175.0, 4.0)
    zs = np.arange(640.0, -460.0, -12.0)
    index = phantom.mid_coronal_index(ys=ys, x=xs, z=zs)
    fat, _ = phantom.grid(xs=xs, ys=ys, zs=zs)
    cumulative = np.cumsum(fat.sum(axis=(0, 2), dtype=np.float64))
    half = cumulative[-1] / 2
    assert cumulative[index - 1] <= half + 0.01 * cumulative[-1]
    assert cumulative[index] >= half - 0.01 * cumulative[-1]
    assert phantom.mid_coronal_y(ys=ys, x=xs, z=zs) == ys[index]
    body = ys[fat.sum(axis=(0, 2)) > 0.01 * fat.sum(axis=(0, 2)).max()]
    assert body.min() < ys[index] < body.max()
    assert phantom.mid_coronal_y(ys=ys, x=xs, z=zs, include_bed=True) >= ys[index]


# --- cohort and CLI ------------------------------------------------------------------------------------------------


def test_cohort_layout_and_determinism(tmp_path):
    quirks = {1: MriQuirks(swapped_station=4)}
    subjects = make_cohort(tmp_path / "raw", n_subjects=2, seed=9, mri_quirks=quirks, first_eid=2000001)
    assert [s.eid for s in subjects] == [2000001, 2000002]
    assert sorted(p.name for p in (tmp_path / "raw" / "mris").iterdir()) == [
        "2000001_20201_2_0.zip",
        "2000002_20201_2_0.zip",
    ]
    assert sorted(p.name for p in (tmp_path / "raw" / "dxas").iterdir()) == [
        "2000001_20158_2_0.zip",
        "2000002_20158_2_0.zip",
    ]
    assert subjects[1].mri.swapped_stations == (4,)
    assert subjects[0].mri.swapped_stations == ()
    assert subjects[0].phantom != subjects[1].phantom
    assert subjects[0].mri.visit.patient_id == subjects[0].dxa.visit.patient_id  # one visit, one anonymised id
    again = make_cohort(tmp_path / "again", n_subjects=1, seed=9, first_eid=2000001)
    assert again[0].phantom == subjects[0].phantom
    assert again[0].mri.path.read_bytes() == subjects[0].mri.path.read_bytes()


def test_mixed_quirks_cycle_through_the_faults():
    mri, dxa = mixed_quirks(9, include_failures=True)
    assert mri[0] == MriQuirks()
    assert dxa[0] == DxaQuirks()
    assert {q.swapped_station for q in mri.values()} >= {3}
    assert mri[8].missing_station == 4
    assert dxa[8].only_one_total_body
    assert mixed_quirks(9)[0][8].missing_station is None
    styles = {q.headers for q in mri.values()}
    assert len(styles) >= 6, "the subjects show several header styles"
    assert mixed_quirks(9, include_failures=True)[0][3].headers == mri[3].headers, "the same for the same index"


def test_cli_writes_a_cohort(tmp_path, capsys):
    assert cli_main(["--out", str(tmp_path), "--subjects", "1", "--size", "small", "--seed", "4"]) == 0
    output = capsys.readouterr().out
    assert "1000001_20201_2_0.zip" in output
    assert "1000001_20158_2_0.zip" in output
    assert (tmp_path / "mris" / "1000001_20201_2_0.zip").exists()


# --- the variations of real exams (ukbb-format.md 1.7) ---------------------------------------------------------------


def _geometry_of(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The LPS x of each column and y of each row of a slice, from its IPP/IOP alone."""
    x0, y0, _ = (float(v) for v in ds.ImagePositionPatient)
    iop = [float(v) for v in ds.ImageOrientationPatient]
    spacing = float(ds.PixelSpacing[0])
    return x0 + iop[0] * spacing * np.arange(ds.Columns), y0 + iop[4] * spacing * np.arange(ds.Rows)


def test_a_regional_swap_exchanges_fat_and_water_on_one_side_only(tmp_path, phantom):
    quirks = MriQuirks(swapped_region=(5, "left", 0.0, 1.0), noise_sigma=0)
    truth = write_mri_zip(tmp_path / "r.zip", eid=EID, phantom=phantom, quirks=quirks)
    assert truth.swapped_stations == (5,)
    ds = by_series(read_zip(truth.path)[1])[19][12]  # station 5 F, a middle slice
    xs, _ = _geometry_of(ds)
    left = xs > phantom.x_shift
    fat, water = truth_slice(phantom, ds, channel="fat"), truth_slice(phantom, ds, channel="water")
    assert np.abs(ds.pixel_array[:, left] - water[:, left]).max() <= 0.501
    assert np.abs(ds.pixel_array[:, ~left] - fat[:, ~left]).max() <= 0.501
    np.testing.assert_allclose(truth.station(5).expected("F")[12], ds.pixel_array, atol=0.501)


def test_orientation_conventions_are_told_only_by_ipp_iop(tmp_path, phantom):
    quirks = MriQuirks(orientation=(True, True, True, True), noise_sigma=0)
    truth = write_mri_zip(tmp_path / "o.zip", eid=EID, phantom=phantom, quirks=quirks)
    series = by_series(read_zip(truth.path)[1])[11]  # station 3 F, by InstanceNumber
    assert [float(v) for v in series[0].ImageOrientationPatient] == [-1, 0, 0, 0, -1, 0]
    z = [float(ds.ImagePositionPatient[2]) for ds in series]
    assert z == sorted(z), "InstanceNumber 1 is the most inferior slice"
    assert all(float(ds.SliceLocation) == -float(ds.ImagePositionPatient[2]) for ds in series)
    ds = series[3]
    xs, ys = _geometry_of(ds)
    assert xs[0] > xs[-1] and ys[0] > ys[-1]
    spacing = float(ds.PixelSpacing[0])
    expected = sample_truth(phantom, origin=(xs.min(), ys.min(), float(ds.ImagePositionPatient[2])),
                            spacing=(spacing, spacing, 1.0), shape=(int(ds.Columns), int(ds.Rows), 1),
                            channel="fat", include_bed=True)[:, :, 0].T  # rows y and columns x increasing
    assert np.abs(ds.pixel_array[::-1, ::-1] - expected).max() <= 0.501


def test_position_jitter_moves_subjects_and_channels_by_small_amounts(tmp_path, phantom):
    truth = write_mri_zip(tmp_path / "j.zip", eid=EID, phantom=phantom, quirks=MriQuirks(position_jitter=True))
    series = by_series(read_zip(truth.path)[1])
    fat, water = (np.array([[float(v) for v in ds.ImagePositionPatient] for ds in series[n]]) for n in (11, 12))
    difference = np.abs(fat - water).max()
    assert 0 < difference < 0.01  # micrometres
    plain = station_geometries("small")[2]
    assert 0 < abs(truth.station(3).geometry.z[0] - plain.z[0]) <= 2.0


def test_repeats_rereconstructions_and_derived_series(tmp_path, phantom):
    quirks = MriQuirks(partial_repeat=(3, 0.5), rereconstructed_station=4, derived_series=("W",))
    truth = write_mri_zip(tmp_path / "p.zip", eid=EID, phantom=phantom, quirks=quirks)
    series = by_series(read_zip(truth.path)[1])
    assert len(series[27]) == 8 and len(series[11]) == 15  # the aborted repeat: the first 8 of 15 slices
    assert series[27][0].ImagePositionPatient == series[11][0].ImagePositionPatient
    assert series[27][0].AcquisitionTime > series[11][0].AcquisitionTime
    assert series[31][0].AcquisitionTime == series[15][0].AcquisitionTime  # one acquisition, reconstructed again
    assert series[31][0].SeriesTime > series[15][0].SeriesTime
    assert truth.station(4).series_numbers["F"] == 31  # the complete newer reconstruction is the truth
    derived = series[112][0]
    assert derived.SeriesDescription == "Dixon_BH_17s_W_ND" and "ND" in derived.ImageType


def test_a_shifted_repeat_a_touching_seam_and_a_report(tmp_path, phantom):
    quirks = MriQuirks(shifted_repeat=(3, 110.0), touching_seam=4, non_image_member=True)
    truth = write_mri_zip(tmp_path / "t.zip", eid=EID, phantom=phantom, quirks=quirks)
    _, dicoms, _ = read_zip(truth.path)
    series = by_series({n: d for n, d in dicoms.items() if "PixelData" in d})
    shift = float(series[11][0].ImagePositionPatient[2]) - float(series[27][0].ImagePositionPatient[2])
    assert shift == pytest.approx(110.0, abs=1e-3)
    four, five = truth.station(4).geometry, truth.station(5).geometry
    assert four.bottom_edge == pytest.approx(five.top_edge, abs=1e-3)
    reports = [d for d in dicoms.values() if "PixelData" not in d]
    assert len(reports) == 1 and reports[0].SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
