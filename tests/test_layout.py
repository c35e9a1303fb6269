"""The import rule of ukbb_pipeline/__init__.py, checked on the source (imports parsed with ast, nothing imported)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "ukbb_pipeline"
SCIENCE = ("ukbb_pipeline.dxa", "ukbb_pipeline.mri", "ukbb_pipeline.slices", "ukbb_pipeline.pairs.fit",
           "ukbb_pipeline.pairs.flags")
NOT_FOR_SCIENCE = ("ukbb_pipeline.runtime", "ukbb_pipeline.formats", "ukbb_pipeline.stages", "ukbb_pipeline.config",
                   "hydra", "omegaconf")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str | None = None) -> set[str]:
    """Every module ``path`` (module ``name``) imports, at any depth of the file, relative imports resolved
    (``from a import b`` counts as ``a`` and ``a.b``)."""
    found: set[str] = set()
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _violations(sources: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{name} imports {imported}" for name, path in MODULES.items() if within(name, sources)
                  for imported in imports(path) if within(imported, forbidden))


def test_the_modules_are_found():
    assert {"ukbb_pipeline.mri.assemble", "ukbb_pipeline.runtime.runner", "ukbb_pipeline.synthetic"} <= MODULES.keys()
    assert "ukbb_pipeline.runtime.inputs" in imports(MODULES["ukbb_pipeline.runtime.runner"])


def test_science_never_imports_the_runtime_formats_stages_config_or_hydra():
    assert _violations(SCIENCE, NOT_FOR_SCIENCE) == []


def test_the_runtime_never_imports_science():
    assert _violations(("ukbb_pipeline.runtime",), SCIENCE) == []


def test_the_synthetic_generator_never_imports_the_product():
    product = tuple(name for name in {".".join(n.split(".")[:2]) for n in MODULES}
                    if name not in ("ukbb_pipeline", "ukbb_pipeline.synthetic"))
    assert _violations(("ukbb_pipeline.synthetic",), product) == []


def test_a_violation_would_be_seen_also_through_a_relative_or_nested_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import numpy\n\ndef f():\n    from ..runtime import inputs\n    import hydra.utils\n")
    found = imports(probe, "ukbb_pipeline.mri.probe")
    assert {"ukbb_pipeline.runtime.inputs", "hydra.utils"} <= found
    assert [name for name in found if within(name, NOT_FOR_SCIENCE)] != []


def test_the_table_of_stages_and_writers_is_a_leaf_every_layer_may_read():
    assert [name for name in imports(MODULES["ukbb_pipeline.registry"]) if name.startswith("ukbb_pipeline")] == []


def test_no_module_writes_into_another_objects_dict():
    """An object's state is its own: ``other.__dict__[...] = ...`` (priming another class's cache) is refused."""
    found = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [node.func.value] if (
                isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("update", "setdefault", "__setitem__")) else []
            for target in targets:
                for item in (target, getattr(target, "value", None)):  # other.__dict__ or other.__dict__[key]
                    mine = isinstance(item, ast.Attribute) and ast.unparse(item.value) == "self"
                    if isinstance(item, ast.Attribute) and item.attr == "__dict__" and not mine:
                        found.append(f"{name}:{node.lineno}")
    assert found == []


def test_pairs_holds_science_and_the_users_reader_not_the_collect_stage():
    """The collect stage's orchestration (settings, the shard's sink) lives in stages.collect, not in pairs."""
    assert _violations(("ukbb_pipeline.pairs",), ("ukbb_pipeline.runtime.runner", "ukbb_pipeline.config",
                                                  "ukbb_pipeline.stages", "hydra", "omegaconf")) == []


def test_the_runtime_never_imports_the_formats_the_stages_or_the_config():
    """The run loop knows units, results and sinks; a per-file stage's writer is joined to it in stages.file_stage."""
    upward = ("ukbb_pipeline.formats", "ukbb_pipeline.stages", "ukbb_pipeline.config", "hydra", "omegaconf")
    assert _violations(("ukbb_pipeline.runtime",), upward) == []


def test_no_test_skips_on_an_import_of_the_project_or_of_a_test_dependency():
    """An import error must fail, not read as a skip: importorskip only for what the test extra leaves out (torch)."""
    tests = Path(__file__).parent
    found = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("importorskip") and node.args:
                name = ast.unparse(node.args[0]).strip("'\"")
                if name != "torch":
                    found.append(f"{path.relative_to(tests)}:{node.lineno} importorskip({name})")
    assert found == []


def test_the_formats_and_the_io_around_the_science_never_import_the_stages_or_hydra():
    io = ("ukbb_pipeline.formats", "ukbb_pipeline.dicomio", "ukbb_pipeline.download", "ukbb_pipeline.qc",
          "ukbb_pipeline.pairs", "ukbb_pipeline.rap")
    assert _violations(io, ("ukbb_pipeline.stages", "hydra")) == []


def test_the_flag_vocabulary_is_a_leaf_every_layer_may_read():
    assert [name for name in imports(MODULES["ukbb_pipeline.flags"]) if name.startswith("ukbb_pipeline")] == []
