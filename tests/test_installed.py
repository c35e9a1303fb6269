"""`pip install .` (not editable) into a fresh venv gives a working `ukbb-pipeline`, run from an empty folder.

The venv reuses the machine's installed dependencies (``--system-site-packages``) so that the test takes seconds,
not the minutes a full dependency install takes; the project itself is built as a wheel from a copy of the checkout
and installed into the venv, and every command runs without the checkout on ``PYTHONPATH``.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("installed")
    source = base / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "outputs", "build", "*.egg-info", "__pycache__", ".hypothesis", ".*_cache", "local", ".venv"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    env = _clean_env()
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", str(source)], capture_output=True, text=True,
                         env=env, timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    package = Path(subprocess.run([str(python), "-c", "import ukbb_pipeline; print(ukbb_pipeline.__file__)"],
                                  capture_output=True, text=True, env=env, cwd=base, check=True).stdout.strip()).parent
    return {"venv": venv, "python": python, "command": venv / "bin" / "ukbb-pipeline", "package": package}


def _clean_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "HYDRA_FULL_ERROR"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=_clean_env(), timeout=600)


def test_the_installed_package_is_not_the_checkout_and_ships_the_same_configs(installed):
    package = installed["package"]
    assert installed["venv"] in package.parents, f"imported {package}, not the venv's copy"
    shipped = sorted(p.relative_to(package / "conf") for p in (package / "conf").rglob("*.yaml"))
    checkout = sorted(p.relative_to(REPO / "conf") for p in (REPO / "conf").rglob("*.yaml")
                      if "local" not in p.relative_to(REPO / "conf").parts)
    assert shipped == checkout, "every config of conf/ is shipped, and nothing else"
    _, mismatch, errors = filecmp.cmpfiles(REPO / "conf", package / "conf", [str(p) for p in checkout], shallow=False)
    assert (mismatch, errors) == ([], [])


def test_the_installed_command_runs_the_demo_from_an_empty_folder(installed, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run([str(installed["command"]), "stage.subjects=2"], cwd=empty)  # the demo, smaller
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "demo finished" in result.stdout
    demo = empty / "outputs" / "demo"
    assert len(list((demo / "mris-processed").glob("*.h5"))) == 2
    assert (demo / "collection" / "collection-shard0of1.h5").is_file()
    assert list((demo / "pipeline-report").glob("report-*.html"))
    assert list((empty / "outputs" / "runs").iterdir()), "Hydra's run folder is under the current folder"
    assert not (installed["package"] / "outputs").exists() and not (installed["package"].parent / "outputs").exists()

    # every stage, Hydra overrides, multirun and `python -m` behave as with main.py
    again = _run([str(installed["python"]), "-m", "ukbb_pipeline", "stage=extract_slices", "stage.n_neighbours=3",
                  "paths.root=outputs/demo", "stage.output_dir=outputs/slices3"], cwd=empty)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list((empty / "outputs" / "slices3").glob("*.h5"))) == 2
    sweep = _run([str(installed["command"]), "-m", "stage=unzip_dxa", "paths.root=outputs/demo", "shard.count=2",
                  "shard.index=range(2)"],
                 cwd=empty)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    assert len(list((empty / "outputs" / "multirun").rglob("ukbb-pipeline.log"))) == 2


def test_the_installed_command_helps_and_refuses_like_main_py(installed, tmp_path):
    result = _run([str(installed["command"]), "--help"], cwd=tmp_path)
    assert result.returncode == 0 and "usage: ukbb-pipeline" in result.stdout
    assert "Options of stage=collect:" in result.stdout
    refused = _run([str(installed["command"]), "stage=extract_slices", "+stage.n_neighbors=3"], cwd=tmp_path)
    assert refused.returncode == 2
    assert "did you mean stage.n_neighbours?" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "outputs").exists()
