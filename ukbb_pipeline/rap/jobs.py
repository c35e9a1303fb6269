"""The platform jobs of a sweep submitted with ``hydra.launcher.wait=false``: their states, read afresh with
``dx describe --json`` from the ids the launcher wrote to ``<sweep dir>/rap-jobs.json``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ukbb_pipeline.rap.dx import Dx, DxError

JOBS_FILE = "rap-jobs.json"


def job_states(sweep: Path, *, dx: Dx | None = None) -> list[tuple[str, str, str]]:
    """(job id, job name, state) of each job of the sweep; a failed job's state carries its reason."""
    path = sweep if sweep.is_file() else sweep / JOBS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: stage.jobs takes a hydra/launcher=rap sweep folder")
    client = dx or Dx()
    states = []
    for job in json.loads(path.read_text(encoding="utf-8"))["jobs"]:
        try:
            desc = client.describe(job["id"])
            state = desc["state"]
            if state == "failed":
                state += f" ({desc.get('failureReason')}: {desc.get('failureMessage')})"
        except DxError as error:
            state = f"unknown ({error})"
        states.append((job["id"], job["name"], state))
    return states


def format_job_states(states: list[tuple[str, str, str]]) -> str:
    counts = Counter(state.split(" ")[0] for _, _, state in states)
    lines = [f"platform jobs: {len(states)}: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))]
    lines += [f"  {job_id}  {name}  {state}" for job_id, name, state in states]
    return "\n".join(lines)
