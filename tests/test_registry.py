"""The table of stages and the list of writers (``ukbb_pipeline/registry.py``) are the only lists of them.

Adding a stage is its module, its schema, its yaml and one row: these tests fail when one of those is missing, and
when a second hand-made list of stage or writer names appears anywhere in the package.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from ukbb_pipeline import config, registry

PACKAGE = Path(__file__).parents[1] / "ukbb_pipeline"
CONF = Path(__file__).parents[1] / "conf"


def test_every_stage_has_its_module_schema_yaml_and_one_row():
    modules = {path.stem for path in (PACKAGE / "stages").glob("*.py") if path.stem != "__init__"}
    modules |= {path.parent.name for path in (PACKAGE / "stages").glob("*/__init__.py")}  # a stage with helpers
    yamls = {path.stem for path in (CONF / "stage").glob("*.yaml")}
    names = list(registry.STAGE_NAMES)
    assert len(names) == len(set(names)), "a stage has two rows"
    assert set(names) == yamls, "every conf/stage/<name>.yaml has a row, and every row a yaml"
    assert set(names) <= modules
    for entry in registry.STAGES:
        assert entry.module == f"ukbb_pipeline.stages.{entry.name}"
        assert callable(entry.run())
        assert issubclass(entry.schema, config.StageConfig)
        assert entry.schema().name == entry.name, f"{entry.schema_name}.name is not {entry.name!r}"
        assert f"/schema/stage/{entry.name}@_here_" in (CONF / "stage" / f"{entry.name}.yaml").read_text()
        assert entry.upstream is None or entry.upstream in names


def test_every_writer_has_its_schema_yaml_format_module_and_one_row():
    yamls = {path.stem for path in (CONF / "writer").glob("*.yaml")}
    assert {entry.name for entry in registry.WRITERS} == yamls
    for entry in registry.WRITERS:
        assert issubclass(entry.schema, config.WriterConfig) and entry.schema().name == entry.name
        module = entry.format()
        for function in ("make_writer", "find", "open_volume", "read_images", "read_attrs"):
            assert callable(getattr(module, function)), f"{entry.module} has no {function}"


def test_the_config_registers_exactly_the_tables_schemas():
    from hydra.core.config_store import ConfigStore

    config.register_configs()
    store = ConfigStore.instance().repo["schema"]
    assert {name.removesuffix(".yaml") for name in store["stage"]} == set(registry.STAGE_NAMES)
    assert {name.removesuffix(".yaml") for name in store["writer"]} == {entry.name for entry in registry.WRITERS}


def test_the_status_and_report_folders_come_from_the_table():
    tracked = [entry.name for entry in registry.STAGES if entry.tracked]
    assert list(config.ReportConfig().stage_dirs) == tracked
    assert config.ReportConfig().stage_dirs["unzip_dxa"] == config.UnzipDxaConfig().output_dir
    zips = {entry.name: entry.schema().input_dir for entry in registry.STAGES if entry.reads_zips}
    assert config.StatusConfig().raw_inputs == zips == config.ReportConfig().raw_inputs


def test_the_demos_sub_stages_are_validated_through_their_schemas():
    demo_stages = [item.name for item in dataclasses.fields(config.DemoConfig)
                   if isinstance(getattr(config.DemoConfig(), item.name), config.StageConfig)]
    assert demo_stages == ["unzip_dxa", "unzip_mri", "extract_slices", "collect", "report"]
    bad = config.PipelineConfig(stage=config.DemoConfig(), writer=config.Hdf5WriterConfig())
    bad.stage.extract_slices.n_neighbours = -1
    from ukbb_pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match=r"stage.extract_slices.n_neighbours=-1"):
        config.validate(bad)


def _literal_lists(path: Path) -> list[tuple[int, list[str]]]:
    """(line, strings) for each tuple, list, set or dict literal in a module (a dict's keys)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        items = node.keys if isinstance(node, ast.Dict) else node.elts if isinstance(
            node, (ast.Tuple, ast.List, ast.Set)) else []
        strings = [item.value for item in items if isinstance(item, ast.Constant) and isinstance(item.value, str)]
        if strings:
            found.append((node.lineno, strings))
    return found


def _second_lists(names: set[str], *, at_least: int = 2) -> list[str]:
    allowed = {PACKAGE / "registry.py"}
    return [f"{path.relative_to(PACKAGE.parent)}:{line}: {sorted(set(strings) & names)}"
            for path in sorted(PACKAGE.rglob("*.py")) if path not in allowed
            for line, strings in _literal_lists(path) if len(set(strings) & names) >= at_least]


def test_no_second_list_of_stages_or_writers():
    assert _second_lists(set(registry.STAGE_NAMES)) == []
    assert _second_lists({entry.name for entry in registry.WRITERS}) == []


def test_a_second_list_would_be_seen(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('ORDER = ("download", "unzip_dxa")\nFOLDERS = {"unzip_mri": 1, "collect": 2}\n')
    found = [strings for _, strings in _literal_lists(probe)]
    assert ["download", "unzip_dxa"] in found and ["unzip_mri", "collect"] in found
