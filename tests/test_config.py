"""The configuration: every group composes, and a typo or a bad value fails at start-up naming the key."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from ukbb_pipeline.config import (
    DemoConfig,
    DownloadConfig,
    ExtractSlicesConfig,
    Hdf5WriterConfig,
    PickleWriterConfig,
    PipelineConfig,
    UnzipDxaConfig,
    UnzipMriConfig,
    WithdrawConfig,
)

STAGES = {
    "demo": DemoConfig,
    "download": DownloadConfig,
    "unzip_dxa": UnzipDxaConfig,
    "unzip_mri": UnzipMriConfig,
    "extract_slices": ExtractSlicesConfig,
    "withdraw": WithdrawConfig,
}


def test_defaults_run_the_demo_with_hdf5(compose):
    config = OmegaConf.to_object(compose())
    assert isinstance(config, PipelineConfig)
    assert isinstance(config.stage, DemoConfig)
    assert isinstance(config.writer, Hdf5WriterConfig)
    assert config.paths.root == "outputs/demo"
    assert config.stage.unzip_mri.output_dir == "outputs/demo/mris-processed"


@pytest.mark.parametrize(("stage", "schema"), STAGES.items())
@pytest.mark.parametrize(("writer", "writer_schema"), [("hdf5", Hdf5WriterConfig), ("pickle", PickleWriterConfig)])
def test_every_stage_and_writer_composes(compose, stage, schema, writer, writer_schema):
    config = OmegaConf.to_object(compose([f"stage={stage}", f"writer={writer}", "paths.root=/data/ukbb"]))
    assert isinstance(config.stage, schema)
    assert isinstance(config.writer, writer_schema)
    assert config.stage.name == stage
    assert config.stage.output_dir.startswith("/data/ukbb")


def test_stage_folders_follow_paths_root_and_can_be_overridden(compose):
    config = OmegaConf.to_object(
        compose(["stage=unzip_dxa", "paths.root=/data/ukbb", "stage.output_dir=/scratch/dxa"])
    )
    assert config.stage.input_dir == "/data/ukbb/raw/dxas"
    assert config.stage.output_dir == "/scratch/dxa"


def test_slice_counts_and_channels_are_typed(compose):
    slices = OmegaConf.to_object(compose(["stage=extract_slices", "stage.n_neighbours=3", "stage.spacing=1"]))
    assert (slices.stage.n_neighbours, slices.stage.spacing) == (3, 1)
    mri = OmegaConf.to_object(compose(["stage=unzip_mri", "stage.channels=[F,W,in,opp]", "stage.dtype=float32"]))
    assert [channel.value for channel in mri.stage.channels] == ["F", "W", "in", "opp"]
    assert mri.stage.dtype.value == "float32"


def test_paper_experiment_selects_the_pickle_writer(compose):
    config = OmegaConf.to_object(compose(["stage=extract_slices", "experiment=paper"]))
    assert isinstance(config.writer, PickleWriterConfig)


def _messages(error: BaseException) -> str:
    """The messages of an exception and of everything it was raised from (Hydra wraps OmegaConf's errors)."""
    parts = []
    while error is not None:
        parts.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(parts)


@pytest.mark.parametrize(
    ("stage", "override", "named"),
    [
        ("extract_slices", "stage.n_neighbors=3", "stage.n_neighbors"),  # misspelt key
        ("extract_slices", "stage.n_neighbours=three", "stage.n_neighbours"),  # wrong type
        ("extract_slices", "shard.idx=1", "shard.idx"),
        ("unzip_mri", "stage.dtype=int8", "stage.dtype"),  # not one of the allowed values
        ("unzip_mri", "stage.channels=[F,fat]", "stage.channels"),
        ("unzip_dxa", "writer.compression_level=high", "writer.compression_level"),
    ],
)
def test_a_bad_override_fails_naming_the_key(compose, stage, override, named):
    with pytest.raises(ConfigCompositionException) as caught:
        compose([f"stage={stage}", override])
    assert named in _messages(caught.value)


def test_a_bad_override_on_the_command_line_exits_non_zero_naming_the_key(run_main):
    result = run_main("stage=unzip_mri", "stage.chanels=[F]")
    assert result.returncode != 0
    assert "chanels" in result.stderr
