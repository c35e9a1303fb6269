"""The job's side of the upload contract, against the fake platform's store (no jobs): what is there is linked,
what the stage writes is uploaded once, a new version replaces the old, a removed file leaves the project."""

from __future__ import annotations

import os

import pytest
from fake_dx import FakePlatform

from ukbb_pipeline.rap import estimate
from ukbb_pipeline.rap.dx import Dx
from ukbb_pipeline.rap.sync import Uploader, mirror

FOLDER = "/ukbb"


@pytest.fixture
def platform(tmp_path, monkeypatch) -> FakePlatform:
    platform = FakePlatform(tmp_path / "store")
    for key, value in platform.env().items():
        monkeypatch.setenv(key, value)
    return platform


def job_view(platform: FakePlatform, tmp_path, name: str):
    """A job's start: its snapshot of the project (as the fake lays it out) and its mirror of the folder."""
    from fake_dx import snapshot

    mount, local = tmp_path / name / "mnt", tmp_path / name / "local"
    mount.mkdir(parents=True)
    snapshot(platform.project, mount)
    dx = Dx()
    versions = mirror(dx.find_files(platform.project, folder=FOLDER), folder=FOLDER, mount=mount, local=local)
    return Uploader(dx, project=platform.project, folder=FOLDER, local=local, mount=mount, versions=versions)


def names(platform: FakePlatform) -> list[str]:
    return sorted(f"{f['folder']}/{f['name']}" for f in platform.files(FOLDER))


def test_what_a_stage_writes_is_uploaded_once_in_the_same_layout(platform, tmp_path):
    first = job_view(platform, tmp_path, "job1")
    (first.local / "mris-processed" / "pipeline-unzip-mri").mkdir(parents=True)
    (first.local / "mris-processed" / "1000001_20201_2_0.h5").write_bytes(b"volume")
    manifest = first.local / "mris-processed" / "pipeline-unzip-mri" / "manifest-unzip_mri-1.csv"
    manifest.write_text(f"input,output\nx,{first.local}/mris-processed/1000001_20201_2_0.h5\n")
    (first.local / "mris-processed" / "pipeline-unzip-mri" / "state.csv").write_text("a cache\n")
    first.sweep(final=False)
    assert names(platform) == ["/ukbb/mris-processed/1000001_20201_2_0.h5"]  # manifests wait for the end
    first.sweep(final=True)
    first.sweep(final=True)
    assert names(platform) == ["/ukbb/mris-processed/1000001_20201_2_0.h5",
                               "/ukbb/mris-processed/pipeline-unzip-mri/manifest-unzip_mri-1.csv"]
    [uploaded] = [f for f in platform.files(FOLDER) if "manifest" in f["name"]]
    assert platform.read(uploaded).decode().endswith(",/mnt/project/ukbb/mris-processed/1000001_20201_2_0.h5\n")

    second = job_view(platform, tmp_path, "job2")  # a re-run: the output is a link, the manifest a local copy
    output = second.local / "mris-processed" / "1000001_20201_2_0.h5"
    assert output.is_symlink() and output.read_bytes() == b"volume"
    copied = second.local / "mris-processed" / "pipeline-unzip-mri" / "manifest-unzip_mri-1.csv"
    assert not copied.is_symlink() and f",{second.local}/mris-processed/" in copied.read_text()
    second.sweep(final=True)
    assert len(platform.files(FOLDER)) == 2  # nothing uploaded twice

    output.unlink()
    output.write_bytes(b"volume, redone")  # a changed setting: a new version replaces the old
    second.sweep(final=True)
    [redone] = [f for f in platform.files(FOLDER) if f["name"].endswith(".h5")]
    assert platform.read(redone) == b"volume, redone"
    copied.unlink()  # withdrawn: removed locally, removed from the project
    second.removed()
    assert names(platform) == ["/ukbb/mris-processed/1000001_20201_2_0.h5"]


def test_a_file_uploaded_after_the_job_started_is_not_laid_out(platform, tmp_path):
    early = job_view(platform, tmp_path, "early")
    late = tmp_path / "late.h5"
    late.write_bytes(b"x")
    Dx().upload(late, project=platform.project, folder=f"{FOLDER}/dxas-processed", name="1000009_20158_2_0.h5")
    dx = Dx()
    versions = mirror(dx.find_files(platform.project, folder=FOLDER), folder=FOLDER, mount=early.mount,
                      local=tmp_path / "early" / "local2")
    assert "dxas-processed/1000009_20158_2_0.h5" in versions
    assert not os.path.lexists(tmp_path / "early" / "local2" / "dxas-processed" / "1000009_20158_2_0.h5")


def test_the_estimate_grows_with_the_cohort_and_shrinks_with_cores():
    small = estimate.estimate(stage="unzip_mri", subjects=50_000, jobs=50, instance_type="mem1_ssd1_v2_x16")
    large = estimate.estimate(stage="unzip_mri", subjects=100_000, jobs=50, instance_type="mem1_ssd1_v2_x16")
    assert large["machine_hours"] > small["machine_hours"] and large["cost_gbp"] > small["cost_gbp"]
    fewer_cores = estimate.estimate(stage="unzip_mri", subjects=100_000, jobs=50, instance_type="mem1_ssd1_v2_x4")
    assert fewer_cores["wall_hours"] > large["wall_hours"]
    assert estimate.cores("mem1_ssd1_v2_x16") == 16


def test_a_shard_job_lays_out_what_its_stage_writes_and_reads_and_project_paths_go_through_its_mount(tmp_path):
    from ukbb_pipeline.rap.job import in_mount, laid_out

    assert laid_out("extract_slices", folder="/ukbb") == [
        "/ukbb/mri-mid-corr-slices", "/ukbb/mris-processed", "/ukbb/pipeline-runs"]
    assert laid_out("unzip_dxa", folder="/ukbb") == ["/ukbb/dxas-processed", "/ukbb/pipeline-runs"]
    assert laid_out("status", folder="/ukbb") == ["/ukbb"]
    mount = tmp_path / "mnt"
    assert in_mount("exclude_eids_file=/mnt/project/w/list.csv", mount) == f"exclude_eids_file={mount}/w/list.csv"
    assert in_mount("eids_file=/mnt/projects.txt", mount) == "eids_file=/mnt/projects.txt"
