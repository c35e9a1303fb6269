"""A tiny stage for testing the runner on its own: each input is a text file holding a number.

Run as a script (``python toy_stage.py INPUT_DIR OUTPUT_DIR SCALE DELAY``) it processes a folder with one worker,
which the kill-and-rerun test interrupts with SIGKILL.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

import numpy as np

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.formats import Hdf5Writer, Output, Writer
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile, discover_inputs
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary
from ukbb_pipeline.stages.file_stage import FileStage, StageJob, run_stage


def process_number(item: InputFile, *, scale: float, delay: float = 0.0) -> Output:
    text = item.path.read_text().strip()
    if text.startswith("signal "):  # the worker dies as the OOM killer (9) or a crashing decoder (11) ends it
        os.kill(os.getpid(), int(text.split()[1]))
    if not text.lstrip("-").isdigit():
        raise InputError(f"{text!r} is not a number")
    time.sleep(delay)
    value = int(text) * scale
    return Output(arrays={"value": np.full((3, 2, 4), value, np.float32)}, attrs={"spacing": [1.0, 1.0, 1.0]},
                  spacing_attr="spacing", qc={"value": value})


def toy_job(input_dir: Path, output_dir: Path, *, scale: float = 1.0, delay: float = 0.0,
            writer: Writer | None = None) -> StageJob:
    return StageJob(
        name="toy",
        folders=StageFolders(output=output_dir, stage="toy"),
        inputs=discover_inputs(input_dir, suffix=".txt"),
        process=functools.partial(process_number, scale=scale, delay=delay),
        writer=writer or Hdf5Writer(),
        settings={"scale": scale},
    )


class CountingStage(FileStage):
    """A toy stage that counts how often it is pickled (in the main process) to go to workers."""

    pickled = 0

    def __getstate__(self) -> dict:
        type(self).pickled += 1
        return self.__dict__


def write_inputs(folder: Path, values: dict[int, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for eid, value in values.items():
        (folder / f"{eid}_99999_2_0.txt").write_text(value)


def run_toy(input_dir: Path, output_dir: Path, options: RunOptions | None = None, **kwargs) -> StageSummary:
    return run_stage(toy_job(input_dir, output_dir, **kwargs), options or RunOptions())


if __name__ == "__main__":
    source, target, scale, delay = sys.argv[1:5]
    run_toy(Path(source), Path(target), scale=float(scale), delay=float(delay))
