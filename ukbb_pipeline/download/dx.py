"""One ``dx download`` per file from the Research Analysis Platform's
``/Bulk/<Category>/<group>/<first two digits of eid>/<eid>_<field>_<instance>_<array>.zip``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ukbb_pipeline.download.bulk import BulkRequest
from ukbb_pipeline.download.tools import ChildProcesses, ToolRun


def dx_remote_path(request: BulkRequest, *, folders: Mapping[int, str], project: str | None) -> str:
    """The file's path in the project, ``[<project>:]<folder>/<NN>/<eid>_<field>_<instance>_<array>.zip``."""
    if request.field not in folders:
        raise KeyError(f"no Research Analysis Platform folder for field {request.field} (set stage.dx_folders)")
    path = f"{folders[request.field].rstrip('/')}/{str(request.eid)[:2]}/{request.file_name}"
    return f"{project}:{path}" if project else path


def dx_argv(executable: str, *, remote_path: str, output: Path) -> list[str]:
    return [executable, "download", remote_path, "-o", str(output), "--no-progress"]


@dataclass(frozen=True)
class DxBackend:
    """Fetches one file per ``dx download`` call into ``scratch`` for the caller to verify."""

    executable: str
    folders: Mapping[int, str] = field(default_factory=dict)
    project: str | None = None
    timeout_per_file_s: float = 900.0
    name: str = "dx"
    max_per_call: int = 1

    def fetch(self, requests: Sequence[BulkRequest], scratch: Path, children: ChildProcesses) -> ToolRun:
        [request] = requests
        remote = dx_remote_path(request, folders=self.folders, project=self.project)
        argv = dx_argv(self.executable, remote_path=remote, output=scratch / request.file_name)
        return children.run(argv, cwd=scratch, timeout_s=self.timeout_per_file_s)
