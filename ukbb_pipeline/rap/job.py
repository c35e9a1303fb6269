"""The job's side of a platform sweep: ``python -m ukbb_pipeline.rap.job --folder /ukbb -- <overrides>``.

Inside a DNAnexus job: lay the destination folder out locally (:func:`~ukbb_pipeline.rap.sync.mirror`), run the stage
with ``paths.root`` there and the bulk zips read in place through the project mount, upload what it writes as it
goes and once more at the end (also when some subjects failed), then exit with the stage's exit status.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from ukbb_pipeline import registry
from ukbb_pipeline.config import PathsConfig
from ukbb_pipeline.rap.dx import Dx
from ukbb_pipeline.rap.sync import CANONICAL_MOUNT, Uploader, mirror, project_mount
from ukbb_pipeline.ukbb import DXA_FIELD, MRI_FIELD

log = logging.getLogger("ukbb_pipeline.rap.job")

RAW_PATHS = {DXA_FIELD: "paths.raw_dxa", MRI_FIELD: "paths.raw_mri"}
UPLOAD_EVERY_S = float(os.environ.get("UKBB_RAP_UPLOAD_EVERY_S", "30"))
MOUNTED = {value.removeprefix("paths.") for value in RAW_PATHS.values()}  # the bulk zips, read through the mount


def _folders(entry: registry.StageEntry) -> tuple[str, ...]:
    output, reads = entry.paths_keys()
    return tuple(key for key in (output, *reads) if key is not None and key not in MOUNTED)


READS = {  # the stage folders (PathsConfig keys) a per-input stage writes and reads, from the table of stages
    entry.name: _folders(entry) for entry in registry.STAGES if entry.version is not None
}
SHARED = ("pipeline-runs",)  # what every stage honours under the root: the withdrawal register


def subfolder(key: str) -> str:
    """A stage folder's name under the root (``mris-processed``), from :class:`PathsConfig`'s defaults."""
    return str(getattr(PathsConfig(), key)).removeprefix("${paths.root}/")


def laid_out(stage: str, *, folder: str) -> list[str]:
    """The project folders to lay out locally: a per-input stage's own output folder, the folders it reads, and the
    withdrawal register (at 100,000 subjects a job lists and links what it needs, not the whole cohort); the stages
    that read across the root (report, status, withdraw) lay out all of it."""
    if stage not in READS:
        return [folder]
    return [*(f"{folder}/{subfolder(key)}" for key in READS[stage]), *(f"{folder}/{name}" for name in SHARED)]


def stage_overrides(*, local: Path, mount: Path, inputs: dict[int, str]) -> list[str]:
    """Where the stage reads and writes inside the job: the root on local disk, the bulk zips through the mount."""
    found = [f"{RAW_PATHS[field]}={mount}/{folder.strip('/')}" for field, folder in inputs.items()
             if field in RAW_PATHS]
    return [f"paths.root={local}", *found]


def in_mount(override: str, mount: Path) -> str:
    """``key=/mnt/project/...`` (a file in the project, e.g. a withdrawal list) read through this job's mount."""
    key, _, value = override.partition("=")
    if value == CANONICAL_MOUNT or value.startswith(CANONICAL_MOUNT + "/"):
        return f"{key}={mount}{value[len(CANONICAL_MOUNT):]}"
    return override


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ukbb_pipeline.rap.job")
    parser.add_argument("--folder", required=True, help="the destination folder in the project (paths.root)")
    parser.add_argument("--input", action="append", default=[], help="FIELD=/project/folder of bulk zips")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    project = os.environ["DX_PROJECT_CONTEXT_ID"]
    mount = project_mount()
    local = Path.home() / "project" / args.folder.strip("/")
    local.mkdir(parents=True, exist_ok=True)
    dx = Dx()
    stage = next((item.split("=", 1)[1] for item in args.overrides if item.startswith("stage=")), "")
    listing = [obj for part in laid_out(stage, folder=args.folder) for obj in dx.find_files(project, folder=part)]
    versions = mirror(listing, folder=args.folder, mount=mount, local=local)
    uploader = Uploader(dx, project=project, folder=args.folder, local=local, mount=mount, versions=versions)
    inputs = {int(field): folder for field, folder in (item.split("=", 1) for item in args.input)}
    overrides = [in_mount(item, mount) for item in args.overrides]
    command = [sys.executable, "-m", "ukbb_pipeline", *overrides,
               *stage_overrides(local=local, mount=mount, inputs=inputs),
               f"hydra.run.dir={Path.home() / 'runs' / 'run'}"]
    log.info("running: %s", " ".join(command))
    uploader.run_in_background(UPLOAD_EVERY_S)
    code, last_line = run_stage(command)
    uploader.stop()
    uploader.sweep(final=True)  # outputs, manifests and QC, also when some subjects failed
    uploader.removed()
    log.info("uploaded %d files into %s:%s; the stage exited with %d", len(uploader.uploaded), project,
             args.folder, code)
    if uploader.errors:
        log.error("%d uploads failed, e.g. %s", len(uploader.errors), uploader.errors[0])
        code, last_line = code or 3, last_line or f"{len(uploader.errors)} uploads failed: {uploader.errors[0]}"
    if code:
        report_error(last_line or f"the stage exited with {code}")
    return code


def run_stage(command: list[str]) -> tuple[int, str]:
    """Run the stage, its output passed through to the job's log; its exit code and last line on stderr."""
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace")
    assert process.stderr is not None
    last = ""
    for line in process.stderr:
        sys.stderr.write(line)
        if line.strip():
            last = line.strip()
    return process.wait(), last


def report_error(message: str) -> None:
    """The job's failure reason, as ``dx-jobutil-report-error`` writes it: ``job_error.json`` in the job's home
    (the platform shows it as the job's failureMessage)."""
    error = {"error": {"type": "AppError", "message": message[-1000:]}}
    (Path.home() / "job_error.json").write_text(json.dumps(error) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
