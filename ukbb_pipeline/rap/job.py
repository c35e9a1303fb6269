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

from ukbb_pipeline.rap.dx import Dx
from ukbb_pipeline.rap.sync import CANONICAL_MOUNT, Uploader, mirror, project_mount
from ukbb_pipeline.ukbb import DXA_FIELD, MRI_FIELD

log = logging.getLogger("ukbb_pipeline.rap.job")

RAW_PATHS = {DXA_FIELD: "paths.raw_dxa", MRI_FIELD: "paths.raw_mri"}
UPLOAD_EVERY_S = float(os.environ.get("UKBB_RAP_UPLOAD_EVERY_S", "30"))


def stage_overrides(*, local: Path, mount: Path, inputs: dict[int, str]) -> list[str]:
    """Where the stage reads and writes inside the job."""
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
    versions = mirror(dx.find_files(project, folder=args.folder), folder=args.folder, mount=mount, local=local)
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
