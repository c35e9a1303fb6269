"""PairedDataset: a collection's shards read as one, lazily, with or without PyTorch."""

from __future__ import annotations

import logging
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from paired_inputs import GEOMETRY, Visit, check_item, write_visits

from ukbb_pipeline.config import CollectConfig
from ukbb_pipeline.formats import Hdf5Writer
from ukbb_pipeline.pairs.dataset import PairedDataset
from ukbb_pipeline.pairs.fit import UNASSIGNED
from ukbb_pipeline.runtime.runner import RunOptions
from ukbb_pipeline.stages import collect as collect_stage

VISITS = [Visit(1000001), Visit(1000002), Visit(1000002, 3), Visit(1000003), Visit(1000004)]
SHARDS = 3  # these visits hash to shards 2, 0, 2, 0, 1: every shard file holds some


def _collect(root: Path, *, shards: int = SHARDS, **overrides) -> Path:
    config = CollectConfig(input_dir=str(root / "mri-mid-corr-slices"), dxa_dir=str(root / "dxas-processed"),
                           output_dir=str(root / "collection"), **overrides)
    for index in range(shards):
        collect_stage.run(config, options=RunOptions(shard_index=index, shard_count=shards), writer=Hdf5Writer())
    return root / "collection"


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("paired")
    write_visits(root, VISITS)
    return _collect(root)


def test_an_epoch_over_all_shards_serves_every_pair_once_matching_the_truth(collection):
    data = PairedDataset(collection, normalise=False)
    assert len(data) == len(VISITS)
    assert len(data.paths) == SHARDS
    seen = []
    for index in range(len(data)):
        item = data[index]
        visit = Visit(item["eid"], item["instance"])
        seen.append(visit)
        assert item["mri_img"].shape == (2, 700, 224)
        assert item["dxa_img"].shape == (2, 1000, 300)
        assert item["mri_img"].dtype == item["dxa_img"].dtype == np.float32
        assert item["mri_filename"] == f"{visit.eid}_20201_{visit.instance}_0"
        assert item["dxa_filename"] == f"{visit.eid}_20158_{visit.instance}_0"
        geometry = data.geometry(index)
        check_item(item["mri_img"], item["dxa_img"], visit, **{name: geometry[name] for name in GEOMETRY})
    assert sorted(seen, key=lambda v: (v.eid, v.instance)) == VISITS
    with pytest.raises(IndexError):
        data[len(data)]


def test_normalised_items_are_the_loaders_min_max_with_zero_padding(collection):
    raw, normalised = PairedDataset(collection, normalise=False), PairedDataset(collection)
    for index in range(len(raw)):
        for key in ("mri_img", "dxa_img"):
            image, scaled = raw[index][key], normalised[index][key]
            assert scaled.min() == pytest.approx(0.0, abs=1e-6)
            assert scaled.max() <= 1.0
            low = image.min(axis=(1, 2), keepdims=True)  # padding holds the channel minimum
            high = image.max(axis=(1, 2), keepdims=True)  # the whole source image is inside here
            np.testing.assert_allclose(scaled, (image - low) / (high - low + 1e-5), atol=1e-6)
            assert scaled[:, 0, 0] == pytest.approx([0.0, 0.0], abs=1e-6)  # corner padding is 0


def test_splits_partition_the_pairs_and_keep_a_participant_together(collection):
    everything = PairedDataset(collection)
    by_split = {name: PairedDataset(collection, split=name) for name in ("train", "val", "test")}
    assert sum(len(part) for part in by_split.values()) == len(everything)
    for name, part in by_split.items():
        assert set(part.splits) <= {name}
    assert len({split for eid, split in zip(everything.eids, everything.splits, strict=True) if eid == 1000002}) == 1
    with pytest.raises(ValueError, match="split must be one of"):
        PairedDataset(collection, split="training")


def test_opening_reads_no_images_and_the_dataset_pickles_without_handles(collection):
    data = PairedDataset(collection)
    assert data._handles == {}  # nothing open until an item is read
    first = data[0]
    assert len(data._handles) == 1
    clone = pickle.loads(pickle.dumps(data))
    assert clone._handles == {}
    np.testing.assert_array_equal(clone[0]["mri_img"], first["mri_img"])
    data.close()
    clone.close()


def test_one_file_or_a_list_of_files_works_too(collection):
    files = sorted(collection.glob("collection-shard*.h5"))
    assert len(PairedDataset(files)) == len(VISITS)
    assert sum(len(PairedDataset(path)) for path in files) == len(VISITS)


def test_mixed_shard_counts_duplicates_and_missing_shards_are_caught(collection, tmp_path, caplog):
    folder = tmp_path / "mixed"
    shutil.copytree(collection, folder)
    shutil.copy(folder / "collection-shard0of3.h5", folder / "collection-shard0of1.h5")
    with pytest.raises(ValueError, match="2 shard counts"):
        PairedDataset(folder)
    with pytest.raises(ValueError, match="more than one shard file"):
        PairedDataset([folder / "collection-shard0of3.h5", folder / "collection-shard0of1.h5"])
    (folder / "collection-shard0of1.h5").unlink()
    (folder / "collection-shard1of3.h5").unlink()
    with caplog.at_level(logging.WARNING):
        partial = PairedDataset(folder)
    assert "lacks shard(s) 1 of 3" in caplog.text
    assert len(partial) == len(VISITS) - 1


def test_shards_collected_with_different_settings_are_refused(collection, tmp_path):
    root = tmp_path / "other"
    write_visits(root, VISITS[:2])
    other = _collect(root, shards=SHARDS, target_spacing=2.5)
    with pytest.raises(ValueError, match=r"other settings .*target_spacing"):
        PairedDataset([collection / "collection-shard0of3.h5", other / "collection-shard1of3.h5"])


def test_user_lists_leave_unlisted_pairs_out_of_every_split(tmp_path):
    write_visits(tmp_path, VISITS[:3])
    (tmp_path / "train.txt").write_text("1000001\n")
    folder = _collect(tmp_path, shards=1, train_eids=str(tmp_path / "train.txt"))
    assert list(PairedDataset(folder, split="train").eids) == [1000001]
    assert list(PairedDataset(folder, split=UNASSIGNED).eids) == [1000002, 1000002]
    assert len(PairedDataset(folder, split="test")) == 0


def test_importing_the_reader_does_not_import_torch():
    code = "import sys, ukbb_pipeline.pairs.dataset; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_torch_dataloader_with_workers_runs_an_epoch(collection, torch):
    from torch.utils.data import DataLoader

    dataset = PairedDataset(collection).torch_dataset()
    assert isinstance(dataset, torch.utils.data.Dataset)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, multiprocessing_context="spawn")
    eids = []
    for batch in loader:
        assert batch["mri_img"].dtype == torch.float32
        assert batch["mri_img"].shape[1:] == (2, 700, 224)
        assert batch["dxa_img"].shape[1:] == (2, 1000, 300)
        assert float(batch["mri_img"].max()) <= 1.0
        eids += batch["eid"].tolist()
    assert sorted(eids) == sorted(v.eid for v in VISITS)
