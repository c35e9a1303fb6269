"""One home per fact: each test fails when a second home appears (a second default, a second wording, a second check).

The stage output versions have theirs in the table of stages (tests/stages/test_status.py checks that the version in
the fingerprint is the one the manifest records and status compares); the lists of stages and writers theirs in
tests/test_registry.py.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from ukbb_pipeline import config, flags
from ukbb_pipeline.pairs.flags import UpstreamFlags

PACKAGE = Path(__file__).parents[1] / "ukbb_pipeline"


def _strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of the string constants of a module that are not docstrings (f-string parts included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def _modules(*, but: str) -> list[Path]:
    return [path for path in sorted(PACKAGE.rglob("*.py"))
            if path != PACKAGE / but and "synthetic" not in path.parts]


# ---- the seam limit: one setting, one default ----

def test_the_seam_limit_is_one_top_level_setting():
    owners = [schema.__name__ for schema in (config.PipelineConfig, *_stage_schemas())
              if "seam_mismatch_limit" in {item.name for item in dataclasses.fields(schema)}]
    assert owners == ["PipelineConfig"], "a stage with its own seam limit would disagree with the others"
    assert config.PipelineConfig().seam_mismatch_limit == flags.SEAM_MISMATCH_LIMIT


def test_the_seam_limit_setting_reaches_every_stage_through_the_run_options(compose, tmp_path):
    from ukbb_pipeline.stages import run_options

    for stage in ("collect", "extract_slices", "status", "report", "demo"):
        typed = config.pipeline_config(compose([f"stage={stage}", "seam_mismatch_limit=0.35",
                                                f"paths.root={tmp_path}"]))
        assert run_options(typed).seam_mismatch_limit == 0.35


def test_the_seam_limits_default_value_has_one_home():
    """No module but flags.py gives a number to a name about the seam limit (a default, a constant, an argument)."""
    found = []
    for path in _modules(but="flags.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            pairs: list[tuple[str, ast.AST | None]] = []
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                pairs += [(ast.unparse(target), node.value) for target in targets]
            elif isinstance(node, ast.keyword) and node.arg:
                pairs.append((node.arg, node.value))
            elif isinstance(node, ast.arguments):
                named = [*node.posonlyargs, *node.args][-len(node.defaults):] if node.defaults else []
                pairs += [(arg.arg, default) for arg, default in zip(named, node.defaults, strict=True)]
                pairs += [(arg.arg, default) for arg, default in zip(node.kwonlyargs, node.kw_defaults, strict=True)]
            found += [f"{path.relative_to(PACKAGE.parent)}:{getattr(value, 'lineno', '?')} {name}"
                      for name, value in pairs if "seam" in name.lower() and "limit" in name.lower()
                      and isinstance(value, ast.Constant) and isinstance(value.value, float)]
    assert found == []


def _stage_schemas() -> list[type]:
    from ukbb_pipeline import registry

    return [entry.schema for entry in registry.STAGES]


# ---- what a flag is: one vocabulary ----

def test_a_pair_and_a_record_say_the_same_flags_in_the_same_words():
    pair = UpstreamFlags(swapped_stations=(3, 5), swap_fixed=False, max_seam_mismatch=0.41)
    record = {"swapped_stations": "3 5", "fat_water_fixed": "False", "max_seam_mismatch": "0.41"}
    assert pair.describe(seam_mismatch_limit=0.2) == "; ".join(flags.flags_of(record, seam_mismatch_limit=0.2))
    assert pair.problems(seam_mismatch_limit=0.2) == ["swapped station 3 5", "seam mismatch 0.41"]
    fixed = UpstreamFlags(swapped_stations=(2,), swap_fixed=True)
    assert fixed.problems(seam_mismatch_limit=0.2) == []
    assert fixed.describe(seam_mismatch_limit=0.2) == "swapped station 2 (fixed)" == flags.flags_of(
        {"swapped_stations": "2", "fat_water_fixed": "True"}, seam_mismatch_limit=0.2)[0]
    assert pair.problems(seam_mismatch_limit=None) == ["swapped station 3 5"]


def test_the_flag_words_are_written_only_in_the_vocabulary():
    words = ("swapped station ", "seam mismatch ", "fat/water swap in", "window moved ")
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}"
             for path in _modules(but="flags.py") for line, text in _strings(path)
             if text.lower().startswith(words)]
    allowed = {"ukbb_pipeline/qc/pictures.py"}  # the slab picture's caption ("window moved +3 rows to fit")
    assert [item for item in found if item.split(":")[0] not in allowed] == []


# ---- range checks: only in the config's validation ----

def test_range_checks_live_only_in_the_configs_validation():
    """No module but config.py refuses a setting by its key (``stage.x must be ...``, ``writer.x ... refused``)."""
    import re

    refusal = re.compile(r"\b(stage|writer|shard)\.\w+.*\b(must|is refused|refuses)\b")
    found = []
    for path in _modules(but="config.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("ValueError", "ConfigError"):
                text = " ".join(ast.unparse(arg) for arg in node.args)
                if refusal.search(text):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert found == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stage=download", "stage.parallel=11"], "stage.parallel=11 is refused: UK Biobank allows 1 to 10"),
        (["stage=download", "shard.count=2"], "download refuses shard.count=2"),
        (["stage=unzip_mri", "stage.edge_drop=1.5"], "stage.edge_drop=1.5 is refused"),
        (["stage=unzip_mri", "stage.feather_mm=-1"], "stage.feather_mm=-1.0 is refused"),
        (["stage=status", "stage.examples=-1"], "stage.examples=-1 is refused"),
        (["stage=report", "stage.max_rows=0"], "stage.max_rows=0 is refused"),
        (["stage=collect", "writer.compression=bzip2"], "writer.compression=bzip2 is refused"),
        (["stage=collect", "seam_mismatch_limit=-0.1"], "seam_mismatch_limit=-0.1 is refused"),
    ],
)
def test_the_config_refuses_what_the_stages_no_longer_check(compose, tmp_path, overrides, message):
    from ukbb_pipeline.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        config.pipeline_config(compose([*overrides, f"paths.root={tmp_path}"]))
    assert message in str(caught.value)


def test_dx_has_no_ukbfetch_limits(compose, tmp_path):
    typed = config.pipeline_config(compose(["stage=download", "stage.backend=dx", "stage.parallel=32",
                                            f"paths.root={tmp_path}"]))
    assert typed.stage.parallel == 32
