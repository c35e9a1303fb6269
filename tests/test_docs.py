"""Every code block in the docs and the README runs, on the demo's outputs, as a reader would run it.

Blocks are fenced with a language: ``bash`` blocks run with ``bash -euo pipefail`` and ``python`` blocks with the
checkout's package, each page's blocks in order, in a folder of its own holding a copy of the demo's outputs at
``outputs/demo`` (``/data/ukbb``, the docs' name for your own root, is that copy too); ``yaml`` blocks are settings
files, merged onto the configuration's schema (an unknown key fails); ``text`` blocks show output and are not run. A
block that cannot run here (it needs SLURM, the platform, ukbfetch, or installs something) is preceded by
``<!-- not-run: <why> -->``; such blocks are kept rare.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
FENCE = re.compile(r"(?:<!-- not-run: (?P<why>[^>]*?) -->\n)?^(?P<indent> *)```(?P<lang>[\w-]*)[^\n]*\n"
                   r"(?P<body>.*?)^(?P=indent)```$", re.S | re.M)
LANGUAGES = {"bash", "python", "yaml", "text"}
YOUR_ROOT = "/data/ukbb"


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    body: str
    not_run: str | None

    def __str__(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line} ({self.lang})"


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [Block(page, text.count("\n", 0, match.start()) + 1, match.group("lang"),
                  textwrap.dedent(match.group("body")), match.group("why")) for match in FENCE.finditer(text)]


ALL = [block for page in PAGES for block in blocks(page)]
RUNNABLE_PAGES = sorted({block.page for block in ALL if block.lang in ("bash", "python") and not block.not_run})


def test_every_block_says_its_language_and_few_are_not_run():
    assert ALL, "no code blocks found"
    unknown = [str(block) for block in ALL if block.lang not in LANGUAGES]
    assert not unknown, f"fence each block with one of {sorted(LANGUAGES)}: {unknown}"
    code = [block for block in ALL if block.lang in ("bash", "python")
            and not (block.not_run or "").startswith("a fragment")]  # a file's fragment (develop pages) is no command
    not_run = [block for block in code if block.not_run]
    assert len(not_run) <= 0.25 * len(code), [str(block) for block in not_run]


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "yaml" and not b.not_run], ids=str)
def test_settings_blocks_fit_the_schema(block):
    from omegaconf import OmegaConf

    from ukbb_pipeline.config import PipelineConfig

    OmegaConf.merge(OmegaConf.structured(PipelineConfig), OmegaConf.create(block.body))


def test_the_options_page_lists_every_option():
    from ukbb_pipeline import config, registry

    page = (REPO / "docs" / "reference" / "options.md").read_text()
    keys = [key for key in config.schema_keys(config.PipelineConfig) if key not in ("stage", "writer")]
    for entry in registry.STAGES:
        keys += [f"stage.{key}" for key in config.schema_keys(entry.schema) if key != "name" and "." not in key]
    for entry in registry.WRITERS:
        keys += [f"writer.{key}" for key in config.schema_keys(entry.schema) if key != "name"]
    missing = sorted({key for key in keys if f"`{key}`" not in page and f"`{key}.*`" not in page
                      and not any(f"`{key}." in line for line in page.splitlines())})
    assert not missing, f"docs/reference/options.md lacks {missing}: regenerate it from `ukbb-pipeline --help`"


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Path:
    """The demo's outputs, made once: ``<folder>/outputs/demo``."""
    work = tmp_path_factory.mktemp("docs-demo")
    result = subprocess.run([sys.executable, str(REPO / "main.py")], cwd=work, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "outputs" / "demo"


def _environment(folder: Path) -> dict[str, str]:
    """PATH with an ``ukbb-pipeline`` that runs this checkout; a home of the page's own (no ~/.config of yours)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    command = bin_dir / "ukbb-pipeline"
    command.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import sys; from ukbb_pipeline.cli import main; "
                       f"main(sys.argv[1:])' \"$@\"\n")
    command.chmod(0o755)
    (folder / "home").mkdir()
    env = {key: value for key, value in os.environ.items() if key != "XDG_CONFIG_HOME"}
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "PYTHONPATH": str(REPO), "HOME": str(folder / "home"),
            "MPLBACKEND": "Agg"}


def _run(block: Block, *, cwd: Path, env: dict[str, str], your_root: Path) -> subprocess.CompletedProcess[str]:
    body = block.body.replace(YOUR_ROOT, str(your_root))
    command = ["bash", "-euo", "pipefail", "-c", body] if block.lang == "bash" else [sys.executable, "-c", body]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_code_block_of_the_page_runs(page, demo, tmp_path):
    shutil.copytree(demo, tmp_path / "outputs" / "demo", symlinks=True)
    your_root = tmp_path / "data" / "ukbb"
    shutil.copytree(demo, your_root, symlinks=True)
    env = _environment(tmp_path)
    for block in blocks(page):
        if block.lang not in ("bash", "python") or block.not_run:
            continue
        result = _run(block, cwd=tmp_path, env=env, your_root=your_root)
        assert result.returncode == 0, f"{block} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr, f"{block}:\n{result.stderr[-3000:]}"
