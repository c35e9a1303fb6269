"""The launcher's options (``hydra.launcher.<key>=...``), registered as ``hydra/launcher=rap``. No
``from __future__ import annotations``: Hydra loads plugin modules outside sys.modules, where dataclasses need real
types."""


from dataclasses import asdict, dataclass, field
from typing import Optional

from hydra.core.config_store import ConfigStore


@dataclass
class RapLauncherConf:
    _target_: str = "hydra_plugins.ukbb_rap_launcher.launcher.RapLauncher"
    project: Optional[str] = None  # project-XXXX (required)
    folder: str = "/ukbb-pipeline"  # destination folder in the project: the pipeline's paths.root there
    instance_type: str = "mem1_ssd1_v2_x16"
    priority: str = "low"  # low = spot instances (restarted after an interruption), normal, high
    cost_limit: Optional[float] = None  # per job, in the project's billing currency
    name: Optional[str] = None  # job name; default ukbb-pipeline-<stage>-shard<i>of<n>
    tags: list[str] = field(default_factory=list)
    wait: bool = True  # wait for the jobs and exit with their outcome; false: submit, write the job ids, return
    dry_run: bool = False  # print one `dx run ...` per job and an estimate; submit nothing
    dx: str = "dx"  # dx-toolkit's client, on PATH or a path
    applet: Optional[str] = None  # an applet already in the project; default: built from launchers/rap when missing
    wheelhouse: Optional[str] = None  # a file in the project with the package's wheels (none: the image has it)
    inputs: dict[str, Optional[str]] = field(  # field -> project folder of its zips; null: found by field_id
        default_factory=lambda: {"20158": None, "20201": None})
    subjects: int = 0  # for the dry run's estimate: the cohort size (0: 50,000)
    poll_s: float = 10.0


# Stored as plain data, not as the dataclass: the ConfigStore travels pickled into every SLURM job of other sweeps
# (hydra-submitit-launcher), where a reference to this module would need it importable. Keys are still checked:
# the pipeline refuses unknown keys, hydra.launcher.* included.
ConfigStore.instance().store(group="hydra/launcher", name="rap", node=asdict(RapLauncherConf()),
                             provider="ukbb-pipeline")
