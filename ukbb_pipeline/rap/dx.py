"""dx-toolkit's ``dx`` command-line client, called as a subprocess: never the platform's API directly, so any ``dx``
on PATH serves (the real one, or the tests' fake)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DxError(RuntimeError):
    """A ``dx`` call that failed; the message is the command and dx's last line."""


@dataclass(frozen=True)
class Dx:
    executable: str = "dx"

    def path(self) -> str:
        found = shutil.which(self.executable)
        if found is None:
            raise FileNotFoundError(f"dx not found ({self.executable}): install dx-toolkit (pip install dxpy) or "
                                    "set hydra.launcher.dx=<path to dx>")
        return found

    def call(self, *args: str) -> str:
        env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}  # dx is not Hydra
        done = subprocess.run([self.path(), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
        if done.returncode != 0:
            said = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
            raise DxError(f"dx {' '.join(args[:2])} failed (exit {done.returncode}): {said[-1] if said else ''}")
        return done.stdout

    def find_files(self, project: str, *, folder: str = "/", properties: Mapping[str, str] | None = None,
                   name: str | None = None, classname: str = "file") -> list[dict[str, Any]]:
        """The files (or applets) under ``project:folder`` (recursively), as ``dx find data --json`` describes
        them."""
        args = ["find", "data", "--class", classname, "--path", f"{project}:{folder}", "--json"]
        for key, value in (properties or {}).items():
            args += ["--property", f"{key}={value}"]
        if name is not None:
            args += ["--name", name, "--name-mode", "exact"]
        try:
            return [item["describe"] for item in json.loads(self.call(*args) or "[]")]
        except DxError as error:
            if "ResourceNotFound" in str(error) or "could not be found" in str(error):
                return []  # a folder not made yet: nothing in it
            raise

    def upload(self, local: Path, *, project: str, folder: str, name: str) -> str:
        """A new file object ``project:folder/name`` with ``local``'s bytes; its id."""
        destination = f"{project}:{folder.rstrip('/')}/{name}"
        return self.call("upload", str(local), "--path", destination, "--parents", "--brief", "--no-progress").strip()

    def download(self, reference: str, output: Path) -> None:
        self.call("download", reference, "-o", str(output), "-f", "--no-progress")

    def remove(self, project: str, ids: Sequence[str]) -> None:
        if ids:
            self.call("rm", *(f"{project}:{file_id}" for file_id in ids))

    def describe(self, reference: str) -> dict[str, Any]:
        return json.loads(self.call("describe", "--json", reference))

    def build(self, source: Path, destination: str) -> str:
        return json.loads(self.call("build", str(source), "--destination", destination))["id"]
