"""The configuration: every group composes, and a typo or a bad value fails at start-up naming the key."""

from __future__ import annotations

from pathlib import Path

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
    pipeline_config,
)
from ukbb_pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

STAGES = {
    "demo": DemoConfig,
    "download": DownloadConfig,
    "unzip_dxa": UnzipDxaConfig,
    "unzip_mri": UnzipMriConfig,
    "extract_slices": ExtractSlicesConfig,
    "withdraw": WithdrawConfig,
}


def test_defaults_run_the_demo_with_hdf5_in_its_own_folder(compose):
    config = pipeline_config(compose())
    assert isinstance(config, PipelineConfig)
    assert isinstance(config.stage, DemoConfig)
    assert isinstance(config.writer, Hdf5WriterConfig)
    assert config.paths.root == "outputs/demo"
    assert config.stage.unzip_mri.output_dir == "outputs/demo/mris-processed"


@pytest.mark.parametrize(("stage", "keys"), [
    ("unzip_mri", "stage.input_dir and stage.output_dir"),
    ("collect", "stage.input_dir and stage.output_dir and stage.dxa_dir"),
    ("status", "stage.input_dir and stage.output_dir and stage.raw_inputs"),
    ("download", "stage.output_dir"),
])
def test_outside_the_demo_a_stage_without_a_root_is_refused_naming_its_folders(compose, stage, keys):
    with pytest.raises(ConfigError) as refused:
        pipeline_config(compose([f"stage={stage}"]))
    assert str(refused.value) == (f"stage={stage} needs paths.root=<your data folder> (or {keys}): "
                                  "only the demo has a default folder (outputs/demo)")


def test_a_stage_given_its_own_folders_needs_no_root(compose):
    config = pipeline_config(compose(["stage=unzip_mri", "stage.input_dir=/mnt/mris", "stage.output_dir=/data/out"]))
    assert (config.paths.root, config.stage.input_dir, config.stage.output_dir) == (None, "/mnt/mris", "/data/out")
    moved = pipeline_config(compose(["stage=extract_slices", "paths.mri=/a", "paths.slices=/b"]))
    assert (moved.stage.input_dir, moved.stage.output_dir) == ("/a", "/b")


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


def test_the_paper_experiment_pins_every_stage_it_touches(compose):
    slices = OmegaConf.to_object(compose(["stage=extract_slices", "experiment=paper", "stage.n_neighbours=5"]))
    assert (slices.stage.n_neighbours, slices.stage.spacing) == (5, 2)
    collect = OmegaConf.to_object(compose(["stage=collect", "experiment=paper"]))
    assert collect.stage.scaling.value == "paper_loader"
    assert isinstance(collect.writer, PickleWriterConfig)
    demo = OmegaConf.to_object(compose(["experiment=paper"]))
    assert demo.stage.collect.scaling.value == "paper_loader"
    assert (demo.stage.extract_slices.n_neighbours, demo.stage.extract_slices.spacing) == (5, 2)
    assert compose(["stage=collect"]).stage.scaling == "physical", "without the experiment: the default"


def test_the_command_line_wins_over_the_experiment(compose):
    config = OmegaConf.to_object(compose(["stage=collect", "experiment=paper", "stage.scaling=physical"]))
    assert config.stage.scaling.value == "physical"


def test_an_experiment_sets_top_level_keys_and_two_stages_keys(tmp_path):
    """An experiment file can set any top-level key (``_self_`` comes first in config.yaml) and pin stages' keys."""
    import shutil

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from ukbb_pipeline.config import register_configs

    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    (conf / "experiment" / "mine.yaml").write_text("# @package _global_\nqc: false\nn_jobs: 3\nshard:\n  count: 4\n")
    (conf / "experiment_stage" / "mine_extract_slices.yaml").write_text("n_neighbours: 2\n")
    (conf / "experiment_stage" / "mine_collect.yaml").write_text("target_spacing: 2.5\n")
    register_configs()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        slices = OmegaConf.to_object(hydra_compose("config", overrides=["stage=extract_slices", "experiment=mine"]))
        collect = OmegaConf.to_object(hydra_compose("config", overrides=["stage=collect", "experiment=mine"]))
    assert (slices.qc, slices.n_jobs, slices.shard.count) == (False, 3, 4)
    assert slices.stage.n_neighbours == 2
    assert collect.stage.target_spacing == 2.5 and collect.n_jobs == 3


def test_schemas_are_not_stage_choices(compose):
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException):
        compose(["stage=unzip_mri_schema"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stage.n_neighbours=-1", "stage.n_neighbours=-1 is refused: must be >= 0"),
        ("n_jobs=0", "n_jobs=0 is refused"),
        ("shard.index=5", "shard.index=5 is refused: must be in [0, shard.count=1)"),
        ("stage.spacing=0", "stage.spacing=0 is refused"),
        ("+stage.n_neighbors=3", "unknown key stage.n_neighbors (did you mean stage.n_neighbours?)"),
        ("+shard.idx=1", "unknown key shard.idx (did you mean shard.index?)"),
        ("+foo=1", "unknown key foo"),
    ],
)
def test_values_out_of_range_and_appended_keys_are_refused_naming_the_key(compose, override, message):
    from ukbb_pipeline.errors import ConfigError
    from ukbb_pipeline.stages import pipeline_config

    with pytest.raises(ConfigError) as caught:
        pipeline_config(compose(["stage=extract_slices", "paths.root=/data/ukbb", override]))
    assert message in str(caught.value)


def test_the_demo_sub_stages_are_range_checked_too(compose):
    from ukbb_pipeline.errors import ConfigError
    from ukbb_pipeline.stages import pipeline_config

    with pytest.raises(ConfigError, match=r"stage\.collect\.target_spacing=0\.0 is refused"):
        pipeline_config(compose(["stage.collect.target_spacing=0"]))


def test_home_and_environment_variables_are_expanded_in_every_path(compose, monkeypatch):
    from ukbb_pipeline.stages import pipeline_config

    monkeypatch.setenv("HOME", "/home/someone")
    monkeypatch.setenv("UKBB_LISTS", "/lists")
    config = pipeline_config(compose(["stage=collect", "paths.root='~/ukbb'", "stage.train_eids=$UKBB_LISTS/train.txt",
                                      "exclude_eids_file=${oc.env:UKBB_LISTS}/w.csv"]))
    assert config.paths.root == "/home/someone/ukbb"
    assert config.stage.output_dir == "/home/someone/ukbb/collection"
    assert config.stage.dxa_dir == "/home/someone/ukbb/dxas-processed"
    assert config.stage.train_eids == "/lists/train.txt"
    assert config.exclude_eids_file == "/lists/w.csv"


def test_the_stitch_defaults_have_one_home():
    """The stitching options' defaults live in mri.parameters.StitchParameters; the schema and the API take them."""
    import dataclasses
    import inspect

    from ukbb_pipeline.mri.assemble import stitch_stations
    from ukbb_pipeline.mri.parameters import StitchParameters
    from ukbb_pipeline.stages.unzip_mri import process_mri_zip, stitch_parameters

    assert stitch_parameters(UnzipMriConfig()) == StitchParameters()
    names = {item.name for item in dataclasses.fields(StitchParameters)}
    for function in (stitch_stations, process_mri_zip):
        assert not names & set(inspect.signature(function).parameters), f"{function.__name__} repeats a stitch option"
    schema = UnzipMriConfig()
    assert [c.value for c in schema.channels] == list(inspect.signature(process_mri_zip).parameters["channels"].default)
