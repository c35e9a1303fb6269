"""Shared fixtures: composing the Hydra config, and running main.py the way a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "helpers"))  # the test helpers, imported by bare name


@pytest.fixture(scope="session")
def compose() -> Callable[..., object]:
    """Compose the project's config with overrides, as ``main.py`` would (no run directory, no logging set-up)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from ukbb_pipeline.config import register_configs

    register_configs()

    def _compose(overrides: Sequence[str] = ()) -> object:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))

    return _compose


@pytest.fixture
def run_main(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python main.py <overrides>`` in a subprocess, with Hydra's run folder under ``tmp_path``."""

    def _run(
        *overrides: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(REPO / "main.py"), *overrides]
        if not any(item.startswith("hydra.run.dir=") for item in overrides) and "-m" not in overrides:
            command.append(f"hydra.run.dir={tmp_path / 'hydra-run'}")
        return subprocess.run(
            command,
            cwd=tmp_path,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return _run


@pytest.fixture
def main_in_process(monkeypatch: pytest.MonkeyPatch) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``python main.py ARGS`` from ``cwd``, run in this process (no interpreter start-up): the same function the
    command runs (:func:`ukbb_pipeline.cli.main`), its exit code, stdout and stderr. For what a separate process adds
    nothing to; tests of start-up imports, ``python -m`` and the installed command keep a real subprocess."""
    import contextlib
    import io
    import logging

    def _run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        from hydra.core.global_hydra import GlobalHydra

        from ukbb_pipeline import cli

        monkeypatch.chdir(cwd)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        root = logging.getLogger()
        handlers, level, argv = root.handlers[:], root.level, sys.argv[:]
        out, err = io.StringIO(), io.StringIO()
        code = 0
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                cli.main(list(args), conf=REPO / "conf", prog="python main.py")
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        finally:
            sys.argv = argv
            GlobalHydra.instance().clear()
            for handler in root.handlers[:]:
                if handler not in handlers:
                    root.removeHandler(handler)
                    handler.close()
            root.setLevel(level)
        return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())

    return _run


@pytest.fixture
def torch():
    """PyTorch, for the paired dataset's torch path. CI installs the CPU build (.ci/run) and must run these tests
    (CI=true: a missing torch is an error); elsewhere they skip without torch (its Linux build on PyPI is CUDA, GBs)."""
    if os.environ.get("CI") == "true":
        import torch

        return torch
    return pytest.importorskip("torch")


from local_slurm import accounting, local_slurm  # noqa: E402, F401  (fixtures for the SLURM tests)
