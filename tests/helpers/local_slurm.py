"""A real single-node SLURM cluster (launchers/start-local-slurm.sh) as a pytest fixture.

The session fixture ``local_slurm`` starts the cluster (no install), exports ``SLURM_CONF`` for the session and
yields the cluster's environment. It skips when the SLURM/munge binaries are missing or we are not root, unless
``CI=true``, where it fails instead. A cluster that was already running (started by .ci/run or by hand, in
``$LOCAL_SLURM_DIR`` or the default /tmp/local-slurm) is reused and left running; one that the fixture started is
stopped with ``--purge`` at the end of the session. Every wait has an explicit deadline, so a broken cluster fails
the tests instead of hanging them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
START = REPO / "launchers" / "start-local-slurm.sh"
STOP = REPO / "launchers" / "stop-local-slurm.sh"
DEFAULT_DIR = "/tmp/local-slurm"
BINARIES = ("munged", "munge", "slurmctld", "slurmd", "sinfo", "srun", "sbatch", "sacct", "scontrol")
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _unavailable(reason: str) -> None:
    """Skip, or fail under CI=true where the cluster is required."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"local SLURM cluster unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(f"local SLURM cluster unavailable: {reason}")


def _run(cmd: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, **kwargs)


def _cluster_answers(slurm_conf: Path) -> bool:
    if not slurm_conf.is_file():
        return False
    env = {**os.environ, "SLURM_CONF": str(slurm_conf)}
    try:
        return _run(["scontrol", "ping"], timeout=10, env=env).stdout.count("is UP") > 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def local_slurm() -> Iterator[dict[str, str]]:
    """Start the local cluster; yield {SLURM_CONF, LOCAL_SLURM_DIR, LOCAL_SLURM_PARTITION,
    LOCAL_SLURM_ACCOUNTING}. SLURM_CONF is also set in os.environ for the session, so
    sbatch/sacct called by submitit and hydra find the cluster."""
    missing = [b for b in BINARIES if shutil.which(b, path=SBIN_PATH) is None]
    if missing:
        _unavailable(f"{', '.join(missing)} not installed (run: sudo bash launchers/install-slurm-deps.sh)")
    if os.geteuid() != 0:
        _unavailable("start-local-slurm.sh must run as root (slurmd starts jobs as the submitting user)")

    cluster_dir = Path(os.environ.get("LOCAL_SLURM_DIR") or DEFAULT_DIR)
    env_sh = cluster_dir / "env.sh"
    # A running cluster is reused as it is (not restarted: its knobs may differ from
    # this process's environment) and left running at the end.
    already_running = env_sh.is_file() and _cluster_answers(cluster_dir.resolve() / "etc" / "slurm.conf")
    if already_running:
        env_lines = env_sh.read_text()
        print(f"\nusing the local SLURM cluster already running in {cluster_dir}")
    else:
        t0 = time.monotonic()
        try:
            proc = _run(["bash", str(START), str(cluster_dir)], timeout=120)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"start-local-slurm.sh did not finish in 120 s:\n{exc.stderr}", pytrace=False)
        if proc.returncode != 0:
            pytest.fail(f"start-local-slurm.sh failed ({proc.returncode}):\n{proc.stderr}", pytrace=False)
        env_lines = proc.stdout  # the lines of DIR/env.sh
        print(f"\nlocal SLURM cluster started in {cluster_dir} in {time.monotonic() - t0:.1f} s")

    env: dict[str, str] = {}
    for line in env_lines.splitlines():  # export KEY=VALUE
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export ") :].split("=", 1)
            env[key] = value
    conf_text = Path(env["SLURM_CONF"]).read_text()
    env["LOCAL_SLURM_PARTITION"] = next(
        line.split("=", 1)[1].split()[0] for line in conf_text.splitlines() if line.startswith("PartitionName=")
    )
    env["LOCAL_SLURM_ACCOUNTING"] = (
        "slurmdbd" if "AccountingStorageType=accounting_storage/slurmdbd" in conf_text else "none"
    )

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", env["SLURM_CONF"])
        yield env

    if not already_running:
        t0 = time.monotonic()
        proc = _run(["bash", str(STOP), "--purge", env["LOCAL_SLURM_DIR"]], timeout=90)
        print(f"\nlocal SLURM cluster stopped in {time.monotonic() - t0:.1f} s")
        assert proc.returncode == 0, f"stop-local-slurm.sh failed:\n{proc.stderr}"


@pytest.fixture
def accounting(local_slurm: dict[str, str]) -> None:
    """submitit reads job states only from sacct, which needs slurmdbd."""
    if local_slurm["LOCAL_SLURM_ACCOUNTING"] != "slurmdbd":
        _unavailable("the cluster runs without slurmdbd (LOCAL_SLURM_ACCOUNTING=none), so sacct fails")


def with_deadline(fn: Callable[[], Any], timeout: float, what: str) -> Any:
    """Run fn() in a daemon thread; fail (rather than hang) if it takes longer than timeout."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"{what} did not return within {timeout:.0f} s", pytrace=False)
    if "error" in box:
        raise box["error"]
    return box["value"]
