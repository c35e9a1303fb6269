"""collect: DXA/MRI pairs of the same visit on the paper's loader geometry, one HDF5 file per shard."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from paired_inputs import (
    DXA_SPACING,
    GEOMETRY,
    SLAB_SHAPE,
    SLAB_SPACING,
    Visit,
    check_item,
    write_dxa,
    write_slab,
    write_visits,
)

from ukbb_pipeline.config import CollectConfig, Hdf5WriterConfig, PipelineConfig, Scaling, validate
from ukbb_pipeline.errors import ConfigError, OutputError
from ukbb_pipeline.formats import Hdf5Writer, collection
from ukbb_pipeline.pairs import fit as collect
from ukbb_pipeline.runtime.inputs import parse_input
from ukbb_pipeline.runtime.manifest import read_manifests
from ukbb_pipeline.runtime.runner import RunOptions
from ukbb_pipeline.stages import collect as collect_stage

VISITS = [Visit(1000001), Visit(1000002), Visit(1000002, 3), Visit(1000003)]


# --- resampling, as the paper's loader does it -----------------------------------------------------------------------


def test_bicubic_keeps_constants_exactly_and_lines_within_a_twentieth_of_a_step():
    # torch's a = -0.75 is not Keys' third-order a = -0.5: straight lines come out slightly wavy
    ramp = np.arange(50, dtype=np.float32)[:, None] * 3.0 + 7.0 + np.zeros((1, 20), np.float32)
    out = collect.resample_bicubic(ramp[None], factors=(2.232 / 2.0, 1.0))[0]
    assert out.shape == (55, 20)  # floor(50 * 1.116)
    centres = (np.arange(55) + 0.5) * 2.0 / 2.232 - 0.5  # input coordinate of each output row
    interior = (centres > 2) & (centres < 47)
    np.testing.assert_allclose(out[interior, 0], 7.0 + 3.0 * centres[interior], atol=0.05 * 3.0)
    flat = collect.resample_bicubic(np.full((1, 30, 30), 5.0, np.float32), factors=(0.7, 1.3))
    np.testing.assert_allclose(flat, 5.0, atol=1e-5)


def test_resampling_matches_torch_bicubic(torch):
    image = np.random.default_rng(1).random((2, 120, 61)).astype(np.float32) * 100
    for spacing in ((2.232, 3.0), (2.427, 2.419)):
        for scaling in collect.SCALING_RULES:
            factors = collect.zoom_factors(spacing, target=2.0, scaling=scaling, modality="mri")
            expected = torch.nn.functional.interpolate(
                torch.from_numpy(image)[None], scale_factor=list(factors), recompute_scale_factor=False, mode="bicubic"
            )[0].numpy()
            np.testing.assert_allclose(collect.resample_bicubic(image, factors=factors), expected, atol=1e-2)


def test_paper_loader_scaling_reproduces_its_inverted_factors():
    # the public loader scales by target/spacing (MRI 2.232 mm -> ~2.49 mm) and never resamples DXA
    def factors(scaling, modality):
        return collect.zoom_factors((2.232, 2.42), target=2.0, scaling=scaling, modality=modality)

    assert factors("physical", "mri") == factors("physical", "dxa") == pytest.approx((1.116, 1.21))
    assert factors("paper_loader", "mri") == pytest.approx((0.896, 0.826), abs=1e-3)
    assert factors("paper_loader", "dxa") == (1.0, 1.0)
    with pytest.raises(ValueError, match="scaling"):
        collect.zoom_factors((2.0, 2.0), target=2.0, scaling="nearest", modality="mri")


@pytest.mark.parametrize(
    ("size", "target", "offset"), [(10, 15, 2), (11, 15, 2), (20, 15, -3), (21, 15, -3), (15, 15, 0)]
)
def test_centring_puts_the_smaller_half_first_like_the_loader(size, target, offset):
    # torch.nn.functional.pad(.., [floor(diff / 2), ceil(diff / 2)]): pads and crops alike
    image = np.arange(size, dtype=np.float32)[None, :, None] + np.zeros((1, 1, 4), np.float32)
    fitted, offsets = collect.centre_pad_crop(image, shape=(target, 4), fill=np.array([-1.0]))
    assert offsets == (offset, 0)
    for row in range(target):
        source = row - offset
        assert fitted[0, row, 0] == (source if 0 <= source < size else -1.0)


def test_normalising_with_the_stored_range_gives_zero_padding_and_a_unit_range():
    image = np.random.default_rng(2).random((2, 40, 30)).astype(np.float32) * [[[500.0]], [[80.0]]] + 20
    fitted = collect.fit_channels(image, spacing=(2.0, 2.0), factors=(1.0, 1.0), shape=(60, 20))
    normalised = collect.normalise(fitted.image, fitted.value_range)
    assert fitted.offset == (10, -5)
    assert fitted.cut == (0, 10)
    np.testing.assert_allclose(normalised[:, :10], 0.0, atol=1e-6)  # padding
    full = (image - image.min(axis=(1, 2), keepdims=True)) / (np.ptp(image, axis=(1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(normalised[:, 10:50], full[:, :, 5:25], atol=1e-6)  # range of the uncropped image


# --- pairing and splits ----------------------------------------------------------------------------------------------


def _items(*names: str):
    return [parse_input(Path(name)) for name in names]


def test_pairs_are_by_eid_and_instance():
    pairing = collect.pair_by_visit(
        _items("1000001_20201_2_0.h5", "1000001_20201_3_0.h5", "1000002_20201_2_0.h5", "notes.h5"),
        _items("1000001_20158_2_0.h5", "1000003_20158_2_0.h5", "1000001_20158_3_1.h5", "1000001_20158_3_0.h5"),
    )
    assert [(p.eid, p.instance, p.mri.stem, p.dxa.stem) for p in pairing.pairs] == [
        (1000001, 2, "1000001_20201_2_0", "1000001_20158_2_0"),
        (1000001, 3, "1000001_20201_3_0", "1000001_20158_3_0"),  # the lowest array index wins
    ]
    assert [item.stem for item in pairing.mri_only] == ["1000002_20201_2_0"]
    assert [item.stem for item in pairing.dxa_only] == ["1000003_20158_2_0"]


def test_hash_split_is_stable_per_eid_and_follows_the_fractions():
    eids = range(1_000_000, 1_006_000)
    splits = [collect.hash_split(eid, fractions=(0.8, 0.1, 0.1)) for eid in eids]
    shares = {name: splits.count(name) / len(splits) for name in collect.SPLITS}
    assert shares == pytest.approx({"train": 0.8, "val": 0.1, "test": 0.1}, abs=0.015)
    assert [collect.hash_split(eid, fractions=(0.8, 0.1, 0.1)) for eid in reversed(eids)] == splits[::-1]
    reseeded = [collect.hash_split(eid, fractions=(0.8, 0.1, 0.1), seed=1) for eid in eids]
    assert reseeded != splits
    with pytest.raises(ValueError, match="summing to 1"):
        collect.hash_split(1000001, fractions=(0.8, 0.1, 0.2))


def test_split_lists_leave_others_unassigned_and_must_not_overlap():
    lists = {"train": {1000001}, "val": {1000002}, "test": {1000003}}
    assert [collect.split_from_lists(eid, lists) for eid in (1000001, 1000002, 1000003, 1000004)] == [
        "train", "val", "test", collect.UNASSIGNED]
    with pytest.raises(ValueError, match="train and test share 1 EID"):
        collect.check_disjoint({"train": {1000001, 1000002}, "test": {1000002}})


# --- the stage -------------------------------------------------------------------------------------------------------


def _config(root: Path, **overrides) -> CollectConfig:
    folders = {"input_dir": str(root / "mri-mid-corr-slices"), "dxa_dir": str(root / "dxas-processed"),
               "output_dir": str(root / "collection")}
    return CollectConfig(**{**folders, **overrides})


def _run(root: Path, options: RunOptions | None = None, **overrides):
    return collect_stage.run(_config(root, **overrides), options=options or RunOptions(), writer=Hdf5Writer())[0]


def _read(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path) as handle:
        return {name: handle[name][()] for name in handle} | {"attrs": dict(handle.attrs)}


def check_against_truth(collection: dict, index: int, visit: Visit) -> None:
    check_item(collection["mri"][index], collection["dxa"][index], visit,
               **{name: collection[name][index] for name in GEOMETRY})


def test_a_collection_holds_every_pair_on_the_target_grid(tmp_path):
    write_visits(tmp_path, VISITS)
    write_slab(tmp_path / "mri-mid-corr-slices", Visit(1000004))  # no DXA: not a pair
    write_dxa(tmp_path / "dxas-processed", Visit(1000005))  # no MRI: not a pair
    summary = _run(tmp_path)
    assert summary.counts == {"ok": 4, "failed": 0, "skipped": 0}

    collection = _read(tmp_path / "collection" / "collection-shard0of1.h5")
    assert collection["mri"].shape == (4, 2, 700, 224)
    assert collection["dxa"].shape == (4, 2, 1000, 300)
    assert [(e, i) for e, i in zip(collection["eids"], collection["instances"], strict=True)] == [
        (v.eid, v.instance) for v in VISITS]
    np.testing.assert_allclose(collection["mri_pixel_spacing"], 2.0)
    np.testing.assert_allclose(collection["dxa_pixel_spacing"], 2.0)
    np.testing.assert_allclose(collection["mri_source_spacing"], [SLAB_SPACING] * 4, rtol=1e-6)
    np.testing.assert_allclose(collection["dxa_source_spacing"], [DXA_SPACING] * 4, rtol=1e-6)
    assert list(collection["mri_slab_row"]) == [SLAB_SHAPE[1] // 2] * 4
    assert collection["mri_source"][2] == b"1000002_20201_3_0"
    assert collection["dxa_source"][2] == b"1000002_20158_3_0"
    assert list(collection["attrs"]["mri_channels"]) == ["fat_scan", "water_scan"]
    assert list(collection["attrs"]["dxa_channels"]) == ["bone", "tissue"]
    for index, visit in enumerate(VISITS):
        check_against_truth(collection, index, visit)
    # both visits of a participant are in the same split
    assert collection["splits"][1] == collection["splits"][2]

    rows = read_manifests(tmp_path / "collection")
    assert len(rows) == 4
    assert {row["status"] for row in rows} == {"ok"}
    row = next(r for r in rows if r["instance"] == "3")
    assert row["dxa_input"].endswith("1000002_20158_3_0.h5")
    assert row["split"] in collect.SPLITS
    assert (row["mri_cut_rows"], row["mri_cut_columns"]) == ("0", "25")  # 500 mm of x in 448 mm


def test_pickle_inputs_give_the_same_collection_as_hdf5(tmp_path):
    write_visits(tmp_path / "h5", VISITS[:2])
    write_visits(tmp_path / "pkl", VISITS[:2], pickle=True)
    assert (tmp_path / "pkl" / "dxas-processed" / "1000001_20158_2_0" / "1000001_20158_2_0.pkl").is_file()
    _run(tmp_path / "h5")
    _run(tmp_path / "pkl")
    from_h5 = _read(tmp_path / "h5" / "collection" / "collection-shard0of1.h5")
    from_pickle = _read(tmp_path / "pkl" / "collection" / "collection-shard0of1.h5")
    for name in ("mri", "dxa", "mri_origin", "dxa_origin", "mri_range", "eids", "splits"):
        np.testing.assert_array_equal(from_h5[name], from_pickle[name])  # origin from the pickle's sidecar


def test_a_bad_input_fails_its_pair_only_and_a_rerun_retries_it(tmp_path):
    write_visits(tmp_path, VISITS)
    damaged = tmp_path / "dxas-processed" / "1000002_20158_3_0.h5"
    good_bytes = damaged.read_bytes()
    damaged.write_bytes(good_bytes[:1000])
    with h5py.File(tmp_path / "mri-mid-corr-slices" / "1000003_20201_2_0.h5", "a") as handle:
        del handle.attrs["spacing"]
    summary = _run(tmp_path)
    assert summary.counts == {"ok": 2, "failed": 2, "skipped": 0}
    reasons = sorted(row.reason for row in summary.failed)
    assert reasons[0].startswith("DXA 1000002_20158_3_0.h5: not a readable HDF5 file")
    assert reasons[1].startswith("MRI slab: spacing attribute is None, expected 3 positive numbers")
    collection = _read(tmp_path / "collection" / "collection-shard0of1.h5")
    assert list(collection["eids"]) == [1000001, 1000002]
    assert list(collection["instances"]) == [2, 2]
    check_against_truth(collection, 1, VISITS[1])  # the gaps are closed in order
    assert collection["attrs"]["n_failed"] == 2

    damaged.write_bytes(good_bytes)
    again = _run(tmp_path)  # a shard with failures is rebuilt
    assert again.counts == {"ok": 3, "failed": 1, "skipped": 0}


def test_a_rerun_skips_an_unchanged_shard_and_rebuilds_a_changed_one(tmp_path):
    write_visits(tmp_path, VISITS[:2])
    _run(tmp_path)
    assert _run(tmp_path).counts == {"ok": 0, "failed": 0, "skipped": 2}
    write_visits(tmp_path, VISITS[2:3])  # a new pair arrives
    assert _run(tmp_path).counts == {"ok": 3, "failed": 0, "skipped": 0}
    with pytest.raises(ConfigError, match="made with other settings"):  # new settings never overwrite silently
        _run(tmp_path, target_spacing=2.5)
    assert _run(tmp_path, RunOptions(overwrite=True), target_spacing=2.5).counts["ok"] == 3
    collection = _read(tmp_path / "collection" / "collection-shard0of1.h5")
    np.testing.assert_allclose(collection["mri_pixel_spacing"], 2.5)


def test_shards_are_disjoint_and_cover_every_pair(tmp_path):
    write_visits(tmp_path, VISITS)
    for index in range(3):
        _run(tmp_path, RunOptions(shard_index=index, shard_count=3))
    seen = []
    for index in range(3):
        collection = _read(tmp_path / "collection" / f"collection-shard{index}of3.h5")
        assert collection["mri"].shape[1:] == (2, 700, 224)  # even an empty shard has the layout
        seen += list(zip(collection["eids"].tolist(), collection["instances"].tolist(), strict=True))
    assert sorted(seen) == [(v.eid, v.instance) for v in VISITS]


def test_user_split_lists_and_eid_filters(tmp_path):
    write_visits(tmp_path, VISITS)
    (tmp_path / "train.txt").write_text("1000001\n1000002\n")
    (tmp_path / "test.txt").write_text("1000003\n")
    (tmp_path / "exclude.txt").write_text("1000001\n")
    _run(tmp_path, RunOptions(exclude_eids=frozenset({1000001})), train_eids=str(tmp_path / "train.txt"),
         test_eids=str(tmp_path / "test.txt"))
    collection = _read(tmp_path / "collection" / "collection-shard0of1.h5")
    assert list(collection["eids"]) == [1000002, 1000002, 1000003]
    assert [s.decode() for s in collection["splits"]] == ["train", "train", "test"]
    (tmp_path / "val.txt").write_text("1000003\n")
    with pytest.raises(ValueError, match="share 1 EID"):
        _run(tmp_path, val_eids=str(tmp_path / "val.txt"), test_eids=str(tmp_path / "test.txt"))


def test_paper_loader_scaling_and_other_shapes(tmp_path):
    write_visits(tmp_path, VISITS[:1])
    _run(tmp_path, scaling=Scaling.paper_loader, mri_shape=[501, 224], dxa_shape=[800, 300])
    collection = _read(tmp_path / "collection" / "collection-shard0of1.h5")
    assert collection["mri"].shape == (1, 2, 501, 224)
    assert collection["dxa"].shape == (1, 2, 800, 300)
    # MRI scaled by target/spacing: 2.232 -> 2.232**2/2 mm in x; DXA not resampled at all
    np.testing.assert_allclose(collection["mri_pixel_spacing"][0], [3.0**2 / 2, 2.232**2 / 2], rtol=1e-5)
    np.testing.assert_allclose(collection["dxa_pixel_spacing"][0], DXA_SPACING, rtol=1e-6)
    check_against_truth(collection, 0, VISITS[0])


def test_missing_input_folder_and_bad_settings_fail_at_start(tmp_path):
    with pytest.raises(FileNotFoundError, match="mri-mid-corr-slices"):
        _run(tmp_path)
    for key, value in (("target_spacing", 0.0), ("mri_shape", [700])):  # refused by the config, before any work
        config = PipelineConfig(stage=_config(tmp_path, **{key: value}), writer=Hdf5WriterConfig())
        with pytest.raises(ConfigError, match=f"stage.{key}="):
            validate(config)


@pytest.mark.slow
def test_end_to_end_through_main(tmp_path, run_main):
    root = tmp_path / "data"
    write_visits(root, VISITS)
    shutil.copy(root / "dxas-processed" / "1000001_20158_2_0.h5", root / "dxas-processed" / "1000003_20158_2_0.h5")
    with h5py.File(root / "dxas-processed" / "1000003_20158_2_0.h5", "a") as handle:
        del handle["bone"]
    result = run_main("stage=collect", f"paths.root={root}", "n_jobs=2")
    assert result.returncode != 0, "a failed pair makes the process exit non-zero"
    assert "has no dataset 'bone'" in result.stdout + result.stderr
    collection = _read(root / "collection" / "collection-shard0of1.h5")
    assert list(collection["eids"]) == [1000001, 1000002, 1000002]

    allowed = run_main("stage=collect", f"paths.root={root}", "allow_failures=true")
    assert allowed.returncode == 0, allowed.stderr


def test_a_withdrawal_removes_the_shard_holding_the_participant_and_a_rerun_makes_it_again(tmp_path):
    from ukbb_pipeline.withdraw import withdraw

    write_visits(tmp_path, VISITS)
    _run(tmp_path)
    shard = tmp_path / "collection" / "collection-shard0of1.h5"
    report = withdraw({1000002}, root=tmp_path)
    assert shard in report.remade
    assert not shard.exists()
    _run(tmp_path, RunOptions(exclude_eids=frozenset({1000002})))
    assert list(_read(shard)["eids"]) == [1000001, 1000003]


def test_a_pair_from_the_synthetic_generator_lands_where_the_phantom_is(tmp_path):
    from ukbb_pipeline.config import UnzipDxaConfig
    from ukbb_pipeline.formats import Output
    from ukbb_pipeline.runtime.folders import StageFolders
    from ukbb_pipeline.stages import unzip_dxa
    from ukbb_pipeline.synthetic import sample_truth, write_dxa_zip
    from ukbb_pipeline.synthetic.cohort import subject_phantom

    phantom = subject_phantom(seed=0, index=0)
    dxa = write_dxa_zip(tmp_path / "raw" / "dxas" / "1000001_20158_2_0.zip", eid=1000001, phantom=phantom)
    unzip_dxa.run(UnzipDxaConfig(input_dir=str(tmp_path / "raw" / "dxas"), output_dir=str(tmp_path / "dxas-processed")),
                  options=RunOptions(), writer=Hdf5Writer())
    # an extract_slices output as DESIGN.md has it, sampled from the phantom's truth
    spacing, shape = (2.232, 4.464, 3.0), (224, 11, 360)
    origin = (-250.0 + spacing[0] / 2, phantom.table_y - 100.0 - 5 * spacing[1], 560.0)
    slabs = {f"{name}_scan": np.rint(sample_truth(phantom, origin=origin, spacing=spacing, shape=shape, channel=name))
             .astype(np.uint16) for name in ("fat", "water")}
    Hdf5Writer().write(StageFolders(tmp_path / "mri-mid-corr-slices", "extract_slices"), "1000001_20201_2_0",
                       Output(arrays=slabs, attrs={"spacing": list(spacing), "origin": list(origin)},
                              spacing_attr="spacing"), fingerprint="test")
    assert _run(tmp_path).counts["ok"] == 1
    collection = _read(tmp_path / "collection" / "collection-shard0of1.h5")

    (x0, y0, z0), (row_mm, column_mm) = collection["mri_origin"][0], collection["mri_pixel_spacing"][0]
    assert y0 == pytest.approx(origin[1] + 5 * spacing[1])  # the slab's middle row
    z = z0 - np.arange(700) * row_mm
    inside = (z <= origin[2] - 6) & (z >= origin[2] - (shape[2] - 1) * spacing[2] + 6)
    for channel, name in enumerate(("fat", "water")):
        truth = sample_truth(phantom, origin=(float(x0), float(y0), float(z0)),
                             spacing=(float(column_mm), 1.0, float(row_mm)), shape=(224, 1, 700), channel=name)
        error = np.abs(collection["mri"][0, channel] - truth[:, 0, :].T)[inside]
        assert np.percentile(error, 99) < 0.02 * phantom.fat_signal  # tissue edges are ~3 mm wide: a few % there
        assert error.max() < 0.05 * phantom.fat_signal

    # DXA: the body's centre of mass stays where it was in the stored image (mm from its pixel [0, 0])
    def centre_mm(image, origin_mm, spacing_mm):
        rows, columns = np.nonzero(image > 5)  # the body, not the background (nor the resampling's ripples)
        weights = image[rows, columns]
        return (origin_mm[0] + np.average(rows, weights=weights) * spacing_mm[0],
                origin_mm[1] + np.average(columns, weights=weights) * spacing_mm[1])

    collected = centre_mm(collection["dxa"][0, 1], collection["dxa_origin"][0], collection["dxa_pixel_spacing"][0])
    stored = centre_mm(dxa.tissue.astype(np.float64), (0.0, 0.0), dxa.pixel_spacing)
    assert collected == pytest.approx(stored, abs=1.0)


@pytest.mark.parametrize("compression", ["gzip", "lzf", None])
def test_every_compression_stores_the_same_items_also_after_closing_gaps(tmp_path, compression):
    write_visits(tmp_path / "reference", VISITS[1:])
    _run(tmp_path / "reference")
    reference = _read(tmp_path / "reference" / "collection" / "collection-shard0of1.h5")

    write_visits(tmp_path / "gaps", VISITS)
    (tmp_path / "gaps" / "dxas-processed" / "1000001_20158_2_0.h5").write_bytes(b"not hdf5")  # the first pair fails
    summary = collect_stage.run(_config(tmp_path / "gaps"), options=RunOptions(),
                                writer=Hdf5Writer(compression=compression))[0]
    assert summary.counts["failed"] == 1
    collection = _read(tmp_path / "gaps" / "collection" / "collection-shard0of1.h5")
    for name in ("mri", "dxa", "mri_range", "eids", "instances", "splits", "mri_origin", "dxa_source"):
        np.testing.assert_array_equal(collection[name], reference[name])


@pytest.mark.slow
def test_synthetic_zips_through_every_stage_then_collect_with_main(tmp_path, run_main):
    from ukbb_pipeline.pairs.dataset import PairedDataset
    from ukbb_pipeline.synthetic import make_cohort

    root = tmp_path / "data"
    truths = make_cohort(root / "raw", n_subjects=3, seed=0)
    make_cohort(root / "raw", n_subjects=1, seed=0, instance=3)  # the repeat-imaging visit of the first subject
    for stage in ("unzip_dxa", "unzip_mri", "extract_slices", "collect"):
        result = run_main(f"stage={stage}", f"paths.root={root}", "n_jobs=2")
        assert result.returncode == 0, result.stderr[-3000:]

    data = PairedDataset(root / "collection", normalise=False)
    assert sorted(zip(data.eids.tolist(), data.instances.tolist(), strict=True)) == [
        (1000001, 2), (1000001, 3), (1000002, 2), (1000003, 2)]
    for index in range(len(data)):
        item, geometry = data[index], data.geometry(index)
        phantom = truths[item["eid"] - 1000001].phantom
        with h5py.File(root / "mris-processed" / f"{item['mri_filename']}.h5") as volume:
            top, depth = volume.attrs["origin"][2], (volume["fat_scan"].shape[2] - 1) * volume.attrs["spacing"][2]
        (x0, y0, z0), (row_mm, column_mm) = geometry["mri_origin"], geometry["mri_pixel_spacing"]
        x = x0 + np.arange(224)[None, :] * column_mm
        z = z0 - np.arange(700)[:, None] * row_mm + np.zeros_like(x)
        inside = (z < top - 10) & (z > top - depth + 10)  # the stitched volume's extent, off its edges

        def agreement(dx: float, phantom=phantom, inside=inside, x=x, z=z, y0=y0, item=item) -> float:
            truth = phantom.fat(x + dx, np.float32(y0), z)
            return float(np.corrcoef(item["mri_img"][0][inside], truth[inside])[0, 1])

        assert agreement(0.0) > 0.97  # the collected fat image is the phantom's, where the geometry says
        assert agreement(15.0) < agreement(0.0) - 0.2  # and not 15 mm to the side


def test_a_shard_file_that_cannot_be_written_stops_the_run_and_collects_nothing(tmp_path, monkeypatch):
    write_visits(tmp_path, VISITS[:2])

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(collection.CollectionWriter, "write", full_disk)
    with pytest.raises(OutputError, match="No space left on device"):
        _run(tmp_path)
    assert not (tmp_path / "collection" / "collection-shard0of1.h5").exists()
    assert list((tmp_path / "collection" / "pipeline-collect" / "tmp").iterdir()) == []  # no scratch left over
    rows = read_manifests(tmp_path / "collection")
    assert [row["status"] for row in rows] == ["failed", "failed"]
    assert rows[0]["reason"].startswith("shard file not written")

    (tmp_path / "blocked").write_text("a file where the output folder should be")
    with pytest.raises(OutputError, match="cannot write"):
        _run(tmp_path, output_dir=str(tmp_path / "blocked"))


# --- upstream flags --------------------------------------------------------------------------------------------------

FLAGS = {
    1000001: {"swapped_stations": [3], "fat_water_fixed": False, "max_seam_mismatch": 0.05},  # unfixed swap: out
    1000002: {"swapped_stations": [2], "fat_water_fixed": True, "max_seam_mismatch": 0.05},  # fixed: in, flagged
    1000003: {"swapped_stations": [], "fat_water_fixed": False, "max_seam_mismatch": 0.6},  # failed seam check: out
}


def test_pairs_with_an_unfixed_swap_or_a_failed_seam_check_are_left_out_and_listed(tmp_path, caplog):
    write_visits(tmp_path, VISITS, flags=FLAGS)
    summary = _run(tmp_path)
    assert summary.counts == {"ok": 2, "failed": 0, "skipped": 2}
    reasons = {row.eid: row.reason for row in summary.rows if row.status == "skipped"}
    assert reasons == {
        1000001: "left out: swapped station 3 (stage.keep_flagged=true keeps it)",
        1000003: "left out: seam mismatch 0.6 (stage.keep_flagged=true keeps it)",
    }
    assert "1000001_20201_2_0.h5: left out: swapped station 3" in caplog.text
    collection = _read(tmp_path / "collection" / "collection-shard0of1.h5")
    assert [(e, i) for e, i in zip(collection["eids"], collection["instances"], strict=True)] == [
        (1000002, 2), (1000002, 3)]
    assert list(collection["swapped_stations"]) == [b"2", b"2"]  # both visits of 1000002 carry the flags
    assert list(collection["swap_fixed"]) == [1, 1]
    assert collection["flags"][0] == b"swapped station 2 (fixed)"
    for index, visit in enumerate(VISITS[1:3]):
        check_against_truth(collection, index, visit)

    again = _run(tmp_path)  # the shard is unchanged: skipped, and the left-out pairs keep their reason
    assert again.counts == {"ok": 0, "failed": 0, "skipped": 4}
    assert {row.eid: row.reason for row in again.rows if row.reason.startswith("left out")} == reasons


def test_with_keep_flagged_every_pair_is_in_with_its_flags(tmp_path):
    from ukbb_pipeline.pairs.dataset import PairedDataset

    write_visits(tmp_path, VISITS, flags=FLAGS)
    summary = _run(tmp_path, keep_flagged=True)
    assert summary.counts == {"ok": 4, "failed": 0, "skipped": 0}
    with PairedDataset(tmp_path / "collection", normalise=False) as data:
        flags = {int(data.eids[i]): data.flags(i) for i in range(len(data))}
        assert data[0]["flags"] == "swapped station 3"
    assert flags[1000001] == {"swapped_stations": [3], "swap_fixed": False, "max_seam_mismatch": pytest.approx(0.05),
                              "flags": "swapped station 3"}
    assert flags[1000003]["flags"] == "seam mismatch 0.6"
    assert flags[1000002]["swap_fixed"] is True


@pytest.mark.parametrize("writer_name", ["nifti"])
def test_nifti_inputs_give_the_same_collection_as_hdf5(tmp_path, writer_name):
    from ukbb_pipeline.formats.nifti import NiftiWriter

    write_visits(tmp_path / "h5", VISITS[:2], flags=FLAGS)
    write_visits(tmp_path / "nii", VISITS[:2], writer=NiftiWriter(), flags=FLAGS)
    assert (tmp_path / "nii" / "dxas-processed" / "1000001_20158_2_0" / "tissue.nii.gz").is_file()
    _run(tmp_path / "h5", keep_flagged=True)
    _run(tmp_path / "nii", keep_flagged=True)
    from_h5 = _read(tmp_path / "h5" / "collection" / "collection-shard0of1.h5")
    from_nifti = _read(tmp_path / "nii" / "collection" / "collection-shard0of1.h5")
    for name in ("mri", "dxa", "mri_origin", "dxa_origin", "mri_range", "eids", "splits", "flags"):
        np.testing.assert_array_equal(from_h5[name], from_nifti[name])
