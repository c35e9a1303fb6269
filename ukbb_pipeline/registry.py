"""The two tables a maintainer extends: the stages and the writers. Every place that lists them reads them here.

A stage is one row of :data:`STAGES`: its name (``stage=<name>``), its schema (:mod:`ukbb_pipeline.config`), its module
(whose ``run`` is the entry point) and, for a stage that processes inputs, the version of its outputs. The row's place
is the stage's order (in ``--help``, the status and the report). Adding a stage: its module in ``stages/``, its schema
in ``config.py``, its ``conf/stage/<name>.yaml`` and one row here (``docs/develop/add-a-stage.md``).

A writer is one row of :data:`WRITERS`: its name (``writer=<name>``), its schema and its format module, which writes
(``make_writer``), recognises its outputs on disk (``find``) and reads them (``open_volume``, ``read_images``,
``read_attrs``). The row's place is the preference when one input has outputs in several formats
(``docs/develop/add-a-writer.md``). Like nibabel's list of image classes, the list is the loader's only knowledge of
the formats.

A leaf: it imports nothing of the package (schemas and modules are named, and imported on first use), so every
layer may read it, and ``--help`` and the config checks never import the science.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass(frozen=True)
class StageEntry:
    """One stage. ``version`` (stages that process inputs) is the version of its outputs: it is part of every
    output's settings fingerprint and recorded in every manifest row, so raising it makes a re-run redo the outputs
    and ``status`` count the older ones as out of date. Raise it when a change alters the outputs (CHANGELOG.md)."""

    name: str
    schema_name: str  # its schema class in ukbb_pipeline.config
    module: str  # ukbb_pipeline.stages.<name>; its run(config, *, options, writer, qc) runs the stage
    tracked: bool = False  # it keeps a manifest per input: the status and the report show it
    version: int | None = None  # the version of its outputs (None: outputs it does not make, e.g. downloaded zips)
    reads_zips: bool = False  # its inputs are bulk zips in its input folder (status lists those not yet run)
    upstream: str | None = None  # the stage whose outputs are its inputs (status lists those not yet run)
    seconds_per_input: float | None = None  # one core, one input, read and write included (platform estimates)

    @property
    def schema(self) -> Any:
        """The schema class (``ukbb_pipeline.config.<schema_name>``)."""
        return getattr(importlib.import_module("ukbb_pipeline.config"), self.schema_name)

    def run(self) -> Callable[..., Any]:
        """The entry point (the module is imported on first use: ``--help`` imports none)."""
        return importlib.import_module(self.module).run

    def paths_keys(self) -> tuple[str | None, tuple[str, ...]]:
        """The ``paths`` keys its schema's folders default to: (its output's, those it reads), e.g. collect ->
        (``collected``, (``slices``, ``dxa``)); None and () where a folder is not one of ``paths``."""
        schema = self.schema()
        keys = {}
        for item in dataclasses.fields(schema):
            match = re.fullmatch(r"\$\{paths\.(\w+)\}", str(getattr(schema, item.name)))
            if item.name.endswith("_dir") and match:
                keys[item.name] = match.group(1)
        return keys.pop("output_dir", None), tuple(keys.values())

    def default(self, key: str) -> str:
        """A folder the schema names by default (``output_dir``, ``input_dir``), as an interpolation of ``paths``."""
        return str(getattr(self.schema(), key))


# Output versions: unzip_dxa 2: the participant's one consistent Total Body pair, checked against content.
# unzip_mri 2: regional swaps, repeats by coverage, derived series, touching slabs; 3: one gain per station for every
# channel (F/(F+W) as acquired), seam_ratio_* and seam_fat_fraction_step. extract_slices 2: slabs carry unzip_mri's
# flags for collect; 3: centre_rows, stage.method=spine. collect 2: per-pair flags, flagged pairs left out; 3: flags
# in ukbb_pipeline.flags' words. Seconds per input: measured (README's throughput table), collect's assumed.
STAGES: tuple[StageEntry, ...] = (
    StageEntry("demo", "DemoConfig", "ukbb_pipeline.stages.demo"),
    StageEntry("download", "DownloadConfig", "ukbb_pipeline.stages.download", tracked=True),
    StageEntry("unzip_dxa", "UnzipDxaConfig", "ukbb_pipeline.stages.unzip_dxa", tracked=True, version=2,
               reads_zips=True, seconds_per_input=0.04),
    StageEntry("unzip_mri", "UnzipMriConfig", "ukbb_pipeline.stages.unzip_mri", tracked=True, version=3,
               reads_zips=True, seconds_per_input=1.84),
    StageEntry("extract_slices", "ExtractSlicesConfig", "ukbb_pipeline.stages.extract_slices", tracked=True,
               version=3, upstream="unzip_mri", seconds_per_input=0.15),
    StageEntry("collect", "CollectConfig", "ukbb_pipeline.stages.collect", tracked=True, version=3,
               seconds_per_input=0.1),
    StageEntry("report", "ReportConfig", "ukbb_pipeline.stages.report", seconds_per_input=0.01),
    StageEntry("withdraw", "WithdrawConfig", "ukbb_pipeline.stages.withdraw"),
    StageEntry("status", "StatusConfig", "ukbb_pipeline.stages.status", seconds_per_input=0.001),
)
STAGE_NAMES: tuple[str, ...] = tuple(entry.name for entry in STAGES)


def stage(name: str) -> StageEntry:
    """The row of stage ``name`` (a KeyError names an unknown one)."""
    for entry in STAGES:
        if entry.name == name:
            return entry
    raise KeyError(f"no stage {name!r} (stages: {', '.join(STAGE_NAMES)})")


def stage_rank(name: str) -> tuple[int, str]:
    """Sort key: the table's order, unknown names last (alphabetically)."""
    return (STAGE_NAMES.index(name) if name in STAGE_NAMES else len(STAGE_NAMES), name)


def output_version(name: str) -> int:
    """The version of stage ``name``'s outputs (what its settings fingerprint and manifest rows carry)."""
    version = stage(name).version
    if version is None:
        raise KeyError(f"stage {name!r} has no output version")
    return version


def tracked_folders() -> dict[str, str]:
    """Stage -> its output folder (a ``paths`` interpolation), for the stages the status and the report show."""
    return {entry.name: entry.default("output_dir") for entry in STAGES if entry.tracked}


def zip_folders() -> dict[str, str]:
    """Stage -> the folder of its input zips (a ``paths`` interpolation), for the stages that read bulk zips."""
    return {entry.name: entry.default("input_dir") for entry in STAGES if entry.reads_zips}


@dataclass(frozen=True)
class WriterEntry:
    """One output format. ``module`` (``ukbb_pipeline.formats.<name>``) provides ``make_writer(config)``,
    ``find(path)`` (the output a folder entry is or holds, else None), ``open_volume``, ``read_images`` and
    ``read_attrs``; the Writer it makes knows its ``suffix``."""

    name: str
    schema_name: str  # its schema class in ukbb_pipeline.config
    module: str

    @property
    def schema(self) -> Any:
        return getattr(importlib.import_module("ukbb_pipeline.config"), self.schema_name)

    def format(self) -> ModuleType:
        return importlib.import_module(self.module)


WRITERS: tuple[WriterEntry, ...] = (  # in order of preference when an input has outputs in several formats
    WriterEntry("hdf5", "Hdf5WriterConfig", "ukbb_pipeline.formats.hdf5"),  # rows read alone
    WriterEntry("pickle", "PickleWriterConfig", "ukbb_pipeline.formats.pickle"),
    WriterEntry("nifti", "NiftiWriterConfig", "ukbb_pipeline.formats.nifti"),
)


def writer(name: str) -> WriterEntry:
    """The row of writer ``name`` (a KeyError names an unknown one)."""
    for entry in WRITERS:
        if entry.name == name:
            return entry
    raise KeyError(f"no writer {name!r} (writers: {', '.join(entry.name for entry in WRITERS)})")
