"""The launcher: one ``dx run`` per job of the sweep, through dx-toolkit's ``dx`` client only.

``dry_run`` prints each command and an estimate; otherwise the jobs are submitted (their ids written to
``<sweep dir>/rap-jobs.json``, which ``stage=status stage.jobs=<sweep dir>`` reads) and, with ``wait``, followed until
they end: the command then exits with their outcome (1 when any failed, naming them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

CHECKOUT_APPLET = Path(__file__).resolve().parents[2] / "launchers" / "rap" / "ukbb-pipeline"
JOBS_FILE = "rap-jobs.json"
TERMINAL = ("done", "failed", "terminated")
FIELD_STAGES = {"unzip_dxa": ("20158",), "unzip_mri": ("20201",), "status": ("20158", "20201"),
                "report": ("20158", "20201")}


def applet_source() -> Path:
    """The applet's folder: the checkout's launchers/rap/, or the copy the package ships."""
    if (CHECKOUT_APPLET / "dxapp.json").is_file():
        return CHECKOUT_APPLET
    from ukbb_pipeline.rap import applet  # type: ignore[attr-defined]

    return Path(applet.__path__[0])


def applet_name(source: Path, version: str) -> str:
    """Named after the version and the digest of its files, so a changed applet is built anew."""
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0" + path.read_bytes())
    return f"ukbb-pipeline-{version}-{digest.hexdigest()[:10]}"


def option(overrides: Sequence[str], key: str, default: str = "") -> str:
    return next((item.split("=", 1)[1] for item in overrides if item.split("=", 1)[0] == key), default)


class RapLauncher(Launcher):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.config = config

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from ukbb_pipeline import __version__
        from ukbb_pipeline.errors import ConfigError, StageFailed
        from ukbb_pipeline.rap import estimate
        from ukbb_pipeline.rap.dx import Dx
        from ukbb_pipeline.rap.inputs import field_folders

        assert self.config is not None
        s = self.settings
        project, folder = s.get("project"), "/" + str(s["folder"]).strip("/")
        if not project or not str(project).startswith("project-"):
            raise ConfigError("hydra/launcher=rap needs hydra.launcher.project=project-XXXX")
        dx = Dx(s["dx"])
        stage = option(job_overrides[0], "stage")
        given = {str(k): str(v) for k, v in (s.get("inputs") or {}).items() if v}
        try:
            inputs = field_folders(dx, project, FIELD_STAGES.get(stage, ()), given)
        except ValueError as error:
            raise ConfigError(f"{error} with hydra.launcher.inputs.<field>=<folder>") from None
        source = applet_source()
        applet = s.get("applet") or f"{project}:{folder}/.ukbb-pipeline/{applet_name(source, __version__)}"
        commands = [self._command(list(overrides), applet=applet, project=project, folder=folder, inputs=inputs)
                     for overrides in job_overrides]
        if s["dry_run"]:
            for command in commands:
                print(shlex.join(command))
            subjects = int(s.get("subjects") or 50_000)
            print(estimate.describe(stage=stage, subjects=subjects, jobs=len(commands),
                                    instance_type=s["instance_type"]))
            return [self._returned(list(o), initial_job_idx + i) for i, o in enumerate(job_overrides)]
        if not s.get("applet") and not dx.find_files(project, folder=f"{folder}/.ukbb-pipeline",
                                                     name=applet.rsplit("/", 1)[1], classname="applet"):
            log.info("building the applet %s", applet)
            dx.build(source, applet)
        if not s.get("wheelhouse"):
            log.warning("no hydra.launcher.wheelhouse: the jobs need ukbb-pipeline %s installed in their image "
                        "(docs/how-to/platform.md says how to upload a wheelhouse once per version)", __version__)
        sweep = Path(self.config.hydra.sweep.dir)
        sweep.mkdir(parents=True, exist_ok=True)
        jobs: list[dict[str, Any]] = []
        for overrides, command in zip(job_overrides, commands, strict=False):
            job_id = dx.call(*command[1:]).strip()
            jobs.append({"id": job_id, "overrides": list(overrides), "name": command[command.index("--name") + 1]})
            log.info("submitted %s: %s", job_id, " ".join(overrides))
        (sweep / JOBS_FILE).write_text(json.dumps({"project": project, "folder": folder, "jobs": jobs}, indent=1))
        print(f"{len(jobs)} platform jobs submitted; their ids are in {sweep / JOBS_FILE}")
        if s["wait"]:
            states = self._wait(dx, [job["id"] for job in jobs], float(s["poll_s"]))
            failed = [f"{job['id']} ({job['name']}): {states[job['id']]}" for job in jobs
                      if not states[job["id"]].startswith("done")]
            if failed:
                raise StageFailed(f"{len(failed)} of {len(jobs)} platform jobs failed: {'; '.join(failed[:5])}")
        return [self._returned(list(o), initial_job_idx + i) for i, o in enumerate(job_overrides)]

    def _command(self, overrides: list[str], *, applet: str, project: str, folder: str,
                 inputs: dict[str, str]) -> list[str]:
        s = self.settings
        stage = option(overrides, "stage", "demo")
        index, count = option(overrides, "shard.index", "0"), option(overrides, "shard.count", "1")
        name = s.get("name") or f"ukbb-pipeline-{stage}-shard{index}of{count}"
        command = [s["dx"], "run", applet, *(f"-ioverrides={item}" for item in overrides), f"-ifolder={folder}",
                   *(f"-iinputs={field}={path}" for field, path in inputs.items())]
        if s.get("wheelhouse"):
            from ukbb_pipeline import __version__

            command += [f"-iwheelhouse={s['wheelhouse']}", f"-iversion={__version__}"]
        command += ["--destination", f"{project}:{folder}", "--instance-type", s["instance_type"],
                    "--priority", s["priority"], "--name", name]
        if s.get("cost_limit") is not None:
            command += ["--cost-limit", str(s["cost_limit"])]
        for tag in s.get("tags") or []:
            command += ["--tag", str(tag)]
        return [*command, "-y", "--brief"]

    def _wait(self, dx: Any, ids: list[str], poll_s: float) -> dict[str, str]:
        states: dict[str, str] = {}
        while True:
            for job_id in ids:
                if states.get(job_id, "").split(" ")[0] not in TERMINAL:
                    desc = dx.describe(job_id)
                    states[job_id] = desc["state"] + (f" ({desc.get('failureReason')}: {desc.get('failureMessage')})"
                                                      if desc["state"] == "failed" else "")
            if all(state.split(" ")[0] in TERMINAL for state in states.values()):
                return states
            time.sleep(poll_s)

    def _returned(self, overrides: list[str], index: int) -> JobReturn:
        assert self.config is not None
        returned = JobReturn(overrides=overrides, cfg=OmegaConf.create({}), hydra_cfg=self.config,
                             working_dir=str(self.config.hydra.sweep.dir), task_name="ukbb-pipeline",
                             status=JobStatus.COMPLETED)
        returned.return_value = None
        return returned
