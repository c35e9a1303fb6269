"""Stage ``download`` with the Research Analysis Platform's ``dx`` (a fake on PATH), and the read-only mount."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fake_dx import FakePlatform
from fakes import DX_FOLDERS, FakeTools, synthetic_zip

from ukbb_pipeline.config import DownloadBackend, DownloadConfig
from ukbb_pipeline.download.tools import ToolNotFound
from ukbb_pipeline.runtime.inputs import discover_inputs
from ukbb_pipeline.runtime.runner import RunOptions
from ukbb_pipeline.stages import download

EIDS = [1000000 + i for i in range(4)] + [2100000 + i for i in range(4)]  # in two two-digit folders: 10 and 21
STEMS = [f"{eid}_{field}_2_0" for eid in EIDS for field in (20158, 20201)]


@pytest.fixture
def fakes(tmp_path, monkeypatch) -> FakeTools:
    tools = FakeTools(tmp_path / "fakes").install()
    tools.publish(STEMS)
    monkeypatch.setenv("PATH", tools.path_with_fakes_first())
    (tmp_path / "eids.txt").write_text("".join(f"{eid}\n" for eid in EIDS))
    return tools


def make_config(tmp_path, **overrides) -> DownloadConfig:
    settings = {
        "output_dir": str(tmp_path / "raw"), "eids_file": str(tmp_path / "eids.txt"), "backend": DownloadBackend.dx,
        "dx_project": "project-Gk1", "dx_folders": {str(field): folder for field, folder in DX_FOLDERS.items()},
        "key_file": str(tmp_path / "no-key-needed"), "retry_backoff_s": 0.0, "parallel": 4,
    }
    return DownloadConfig(**{**settings, **overrides})


def test_dx_downloads_each_file_from_its_bulk_folder_into_the_raw_folders(tmp_path, fakes):
    fakes.behave(sleep_per_file=0.3)  # long enough that the calls in flight overlap however slow the machine
    [summary] = download.run(make_config(tmp_path), options=RunOptions())
    assert summary.counts == {"ok": 16, "failed": 0, "skipped": 0}
    calls = fakes.calls("dx")
    assert len(calls) == 16
    assert all(len(call["requested"]) == 1 for call in calls)
    paths = {call["argv"][1] for call in calls}
    assert "project-Gk1:/Bulk/Whole Body MRI/Dixon/21/2100003_20201_2_0.zip" in paths
    assert "project-Gk1:/Bulk/Whole Body DXA/DXA/10/1000002_20158_2_0.zip" in paths
    for stem in STEMS:
        folder = "dxas" if "_20158_" in stem else "mris"
        assert (tmp_path / "raw" / folder / f"{stem}.zip").read_bytes() == (fakes.served / f"{stem}.zip").read_bytes()
    assert 2 <= fakes.peak_concurrency("dx") <= 4


def test_dx_retries_damaged_downloads_and_reports_files_it_cannot_find(tmp_path, fakes):
    fakes.behave(transient={"1000001_20201_2_0": 1}, truncate={"2100002_20158_2_0": 1}, missing=[2100003])
    [summary] = download.run(make_config(tmp_path, retries=1), options=RunOptions())
    assert summary.counts == {"ok": 14, "failed": 2, "skipped": 0}
    rows = {row.input: row for row in summary.rows}
    assert rows["1000001_20201_2_0"].qc["attempts"] == 2
    assert rows["2100002_20158_2_0"].qc["attempts"] == 2
    assert rows["2100003_20201_2_0"].reason.startswith("after 2 attempts: dx failed (exit code 3: ")
    assert "Unable to resolve" in rows["2100003_20201_2_0"].reason


def test_dx_resumes_where_it_stopped(tmp_path, fakes):
    fakes.behave(missing=[1000002])
    download.run(make_config(tmp_path, retries=0), options=RunOptions())
    fakes.behave()
    before = len(fakes.calls())
    [again] = download.run(make_config(tmp_path), options=RunOptions())
    assert again.counts == {"ok": 2, "failed": 0, "skipped": 14}
    assert sorted(s for call in fakes.calls()[before:] for s in call["requested"]) == [
        "1000002_20158_2_0", "1000002_20201_2_0"]


def test_dx_needs_its_executable_and_a_folder_per_field_but_no_key_file(tmp_path, fakes):
    with pytest.raises(ToolNotFound, match=r"dx-missing not found on PATH.*stage\.dx="):
        download.run(make_config(tmp_path, dx="dx-missing"), options=RunOptions())
    with pytest.raises(ValueError, match=r"stage.dx_folders entry for field\(s\) \[20158\], and no stage.dx_proj"):
        download.run(make_config(tmp_path, dx_folders={"20201": "/Bulk/Whole Body MRI/Dixon"}, dx_project=None),
                     options=RunOptions())
    assert fakes.calls() == []


def test_a_field_without_a_folder_is_found_by_its_field_id_property_never_guessed(tmp_path, monkeypatch):
    """The platform's DXA folder is not known: the files carrying field_id=20158 say where it is."""
    platform = FakePlatform(tmp_path / "store")
    for stem in STEMS:
        folder = tmp_path / "bulk" / stem.split("_")[1] / stem[:2]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.zip").write_bytes(synthetic_zip(stem))
    platform.seed(tmp_path / "bulk" / "20158", "/Bulk/DXA/DXA", properties=lambda p: {"field_id": "20158"})
    platform.seed(tmp_path / "bulk" / "20201", "/Bulk/Whole Body MRI/Dixon", properties=lambda p: {"field_id": "20201"})
    for key, value in platform.env().items():
        monkeypatch.setenv(key, value)
    (tmp_path / "eids.txt").write_text("".join(f"{eid}\n" for eid in EIDS))
    config = make_config(tmp_path, dx_project=platform.project, dx_folders={})
    [summary] = download.run(config, options=RunOptions())
    assert summary.counts == {"ok": 16, "failed": 0, "skipped": 0}
    served = tmp_path / "bulk" / "20158" / "10" / "1000002_20158_2_0.zip"
    assert (tmp_path / "raw" / "dxas" / served.name).read_bytes() == served.read_bytes()
    platform.seed(tmp_path / "bulk" / "20158", "/Elsewhere", properties=lambda p: {"field_id": "20158"})
    with pytest.raises(ValueError, match=r"field 20158: its files lie in 2 folders .* stage.dx_folders.20158="):
        download.run(config, options=RunOptions())


def test_on_the_mounted_project_an_eid_list_lists_only_the_folders_it_needs(tmp_path, fakes, monkeypatch):
    """The other stages can read ``/mnt/project/Bulk/...`` in place; with an EID list only its NN folders are listed."""
    mounted = fakes.project / "Bulk" / "Whole Body MRI" / "Dixon"
    listed: list[str] = []
    original_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda folder: listed.append(Path(folder).name) or original_scandir(folder))
    found = discover_inputs(mounted, suffix=".zip", eids={2100001, 2100003})
    assert {item.eid for item in found} == set(EIDS[4:])  # the folder "21" (the runner then keeps the listed EIDs)
    assert sorted(set(listed)) == ["21", "Dixon"]  # never the folder "10"
