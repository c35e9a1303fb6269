"""Structured-config schemas: the typed shape of every config group.

Hydra merges the YAML files in ``conf/`` onto these dataclasses, so a misspelt key or a value of the wrong type fails
at start-up naming the key. The dataclass defaults are the documented defaults; the YAML files select a schema.
Only :func:`register_configs` touches Hydra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from omegaconf import MISSING

from ukbb_pipeline import registry
from ukbb_pipeline.flags import SEAM_MISMATCH_LIMIT
from ukbb_pipeline.mri.parameters import StitchParameters
from ukbb_pipeline.ukbb import DIXON_CHANNELS

# OmegaConf validates these annotations at runtime, so they use typing's spelling (Optional), not PEP 604.


# Dixon channels, named by the SeriesDescription suffix UK Biobank uses. OmegaConf matches enum members by name, and
# "in" is a Python keyword, hence the functional form: Channel["in"].
Channel = Enum("Channel", {name: name for name in DIXON_CHANNELS}, type=str)  # type: ignore[misc]


_STITCH = StitchParameters()  # the stitching defaults (unzip_mri's options below)


class VolumeDtype(str, Enum):
    uint16 = "uint16"
    float32 = "float32"


_STITCH_DTYPE = VolumeDtype(_STITCH.dtype)


class Scaling(str, Enum):
    physical = "physical"  # both modalities resampled to the target spacing
    paper_loader = "paper_loader"  # the public loader's factors: target/spacing for MRI, none for DXA


class NiftiLayout(str, Enum):
    ras = "ras"  # the closest canonical storage, axis codes (R, A, S), as dcm2niix and nibabel.as_closest_canonical
    pipeline = "pipeline"  # the pipeline's array axes (L, P, I), as in HDF5 and pickle outputs


class SlabMethod(str, Enum):
    median = "median"  # the original scripts' row: the weighted median of the body's fat along y (a flat slab)
    spine = "spine"  # through the spine: a classical tracker's curve (slices/spine.py)


class SlabShape(str, Enum):
    curved = "curved"  # with method=spine: the slab follows the spine's anterior-posterior curve along z
    flat = "flat"  # with method=spine: a flat slab at the curve's median row


class DownloadBackend(str, Enum):
    ukbfetch = "ukbfetch"
    dx = "dx"


@dataclass
class PathsConfig:
    """Where the data lives: every stage folder defaults to a name under ``root``."""

    root: Optional[str] = None  # the folder every stage folder is under; every stage but the demo needs one
    raw_dxa: str = "${paths.root}/raw/dxas"  # DXA bulk zips (field 20158)
    raw_mri: str = "${paths.root}/raw/mris"  # Dixon MRI bulk zips (field 20201)
    dxa: str = "${paths.root}/dxas-processed"  # unzip_dxa's output
    mri: str = "${paths.root}/mris-processed"  # unzip_mri's output
    slices: str = "${paths.root}/mri-mid-corr-slices"  # extract_slices' output
    collected: str = "${paths.root}/collection"  # collect's output


@dataclass
class ShardConfig:
    """This run processes the inputs whose stable hash modulo ``count`` equals ``index``."""

    index: int = 0  # this shard, 0 <= index < count
    count: int = 1  # how many shards the inputs are split into


@dataclass
class ZipLimits:
    """Bounds checked before memory is spent on a zip (declared and actual inflated sizes)."""

    max_member_mb: float = 64.0  # largest inflated member
    max_total_mb: float = 4096.0  # all members together, inflated
    max_members: int = 10000  # members in one zip


@dataclass
class StageConfig:
    """What every stage has: a name, an input folder and an output folder."""

    name: str = MISSING  # the stage (set by stage=<name>)
    input_dir: str = MISSING  # where the stage reads (a folder under paths.root by default)
    output_dir: str = MISSING  # where the stage writes


@dataclass
class UnzipDxaConfig(StageConfig):
    """raw/dxas/*.zip -> dxas-processed/: the Total Body tissue and bone images with their pixel spacing."""

    name: str = "unzip_dxa"
    input_dir: str = "${paths.raw_dxa}"
    output_dir: str = "${paths.dxa}"
    limits: ZipLimits = field(default_factory=ZipLimits)  # zip size bounds checked before inflating
    sheet_size: int = 100  # subjects per QC contact sheet (in pipeline-unzip-dxa/qc/sheets/)
    subject_pictures: bool = True  # a QC picture per subject (tissue beside bone); false keeps only the sheets


@dataclass
class UnzipMriConfig(StageConfig):
    """raw/mris/*.zip -> mris-processed/: six Dixon stations stitched into one volume per channel."""

    name: str = "unzip_mri"
    input_dir: str = "${paths.raw_mri}"
    output_dir: str = "${paths.mri}"
    channels: list[Channel] = field(  # Dixon channels written: F W in opp
        default_factory=lambda: [Channel["F"], Channel["W"]]
    )
    # The stitching options: their defaults are those of ukbb_pipeline.mri.parameters.StitchParameters.
    z_spacing: Optional[float] = _STITCH.z_spacing  # mm; None = the in-plane pixel spacing
    fix_swaps: bool = _STITCH.fix_swaps  # swap fat and water back in stations detected as swapped (else only flagged)
    allow_missing_stations: bool = False  # stitch with an empty gap instead of failing the zip
    dtype: VolumeDtype = _STITCH_DTYPE  # uint16 (as stored) or float32
    trim_slices: int = _STITCH.trim_slices  # noisy edge slices dropped at each overlapped station end
    max_trim_slices: int = _STITCH.max_trim_slices  # further edge slices dropped where their signal falls; 0: never
    edge_drop: float = _STITCH.edge_drop  # an edge slice is noisy this fraction below the station's level
    feather_mm: float = _STITCH.feather_mm  # width of the blend centred in each overlap (at most the overlap)
    harmonise: bool = _STITCH.harmonise  # scale stations to match their neighbours' intensity in the overlaps
    limits: ZipLimits = field(default_factory=ZipLimits)  # zip size bounds checked before inflating


@dataclass
class ExtractSlicesConfig(StageConfig):
    """mris-processed/ -> mri-mid-corr-slices/: the mid-coronal slab of each volume, with QC contact sheets."""

    name: str = "extract_slices"
    input_dir: str = "${paths.mri}"
    output_dir: str = "${paths.slices}"
    method: SlabMethod = SlabMethod.median  # where the slab's centre lies (docs/methods/slab.md)
    slab: SlabShape = SlabShape.curved  # with method=spine: curved along the spine, or flat at its median row
    n_neighbours: int = 5  # coronal rows kept each side of the mid-coronal row
    spacing: int = 2  # step between kept rows, in rows (not mm)
    profile_stride: Optional[int] = None  # rows between coarse profile samples; None = about 14 mm; 1 = every row
    sheet_size: int = 100  # subjects per QC contact sheet
    subject_pictures: bool = True  # a QC picture per subject (~60 KB each); false keeps only the contact sheets


@dataclass
class CollectConfig(StageConfig):
    """MRI slabs and DXA images of the same visit, fitted to the paper's geometry, one HDF5 file per shard."""

    name: str = "collect"
    input_dir: str = "${paths.slices}"  # the MRI slabs (extract_slices' output)
    dxa_dir: str = "${paths.dxa}"  # unzip_dxa's output
    output_dir: str = "${paths.collected}"
    target_spacing: float = 2.0  # mm, both modalities
    scaling: Scaling = Scaling.physical  # physical, or paper_loader (the public loader's resampling factors)
    mri_shape: list[int] = field(default_factory=lambda: [700, 224])  # rows (z head->feet), columns (x)
    dxa_shape: list[int] = field(default_factory=lambda: [1000, 300])  # rows, columns of the fitted DXA images
    mri_channels: list[str] = field(default_factory=lambda: ["fat_scan", "water_scan"])  # MRI datasets paired
    dxa_channels: list[str] = field(default_factory=lambda: ["bone", "tissue"])  # DXA datasets paired
    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train, val, test
    split_seed: int = 0  # seed of the hashed train/val/test split
    train_eids: Optional[str] = None  # EID lists (e.g. the paper's published ones) replace the hashed split
    val_eids: Optional[str] = None  # EID list of the validation split
    test_eids: Optional[str] = None  # EID list of the test split
    keep_flagged: bool = False  # keep pairs whose MRI has an unfixed fat/water swap or a seam mismatch above the limit


@dataclass
class ReportConfig(StageConfig):
    """One self-contained HTML page about the stages' manifests and QC pictures under ``paths.root``."""

    name: str = "report"
    input_dir: str = "${paths.root}"
    output_dir: str = "${paths.root}/pipeline-report"
    stage_dirs: dict[str, str] = field(  # the stage folders whose manifests the report reads
        default_factory=lambda: registry.tracked_folders()
    )
    raw_inputs: dict[str, str] = field(  # the input zips of the stages that read them (for "missing")
        default_factory=lambda: registry.zip_folders()
    )
    max_pictures: int = 24  # QC pictures embedded per stage (the rest are listed)
    max_rows: int = 1000  # rows per table


@dataclass
class StatusConfig(StageConfig):
    """Per stage under ``paths.root``: done, failed (by reason), flagged (by flag), missing, excluded, out of date."""

    name: str = "status"
    input_dir: str = "${paths.root}"
    output_dir: str = "${paths.root}/pipeline-status"  # status-<time>.csv goes here
    raw_inputs: dict[str, str] = field(  # the input zips of the stages that read them (for "missing")
        default_factory=lambda: registry.zip_folders()
    )
    examples: int = 5  # visits listed per line
    jobs: Optional[str] = None  # a hydra/launcher=rap sweep folder: also show its platform jobs' states


@dataclass
class DownloadConfig(StageConfig):
    """Bulk zips for an EID list, fetched ``parallel`` at a time, verified, and resumed on a re-run."""

    name: str = "download"
    input_dir: str = ""  # unused: the inputs are requests (eids_file x fields x instances)
    output_dir: str = "${paths.root}/raw"  # zips go to raw/dxas/ (20158), raw/mris/ (20201), raw/<field>/ (others)
    eids_file: Optional[str] = None  # an EID list or a ukbconv .bulk file; None = the top-level eids_file
    key_file: str = ".ukbkey"  # ukbfetch's key file; only its path is ever passed, logged or saved
    backend: DownloadBackend = DownloadBackend.ukbfetch  # ukbfetch, or dx on the Research Analysis Platform
    parallel: int = 10  # simultaneous downloads; with ukbfetch at most 10 (UK Biobank's limit per application)
    fields: list[int] = field(default_factory=lambda: [20158, 20201])  # UK Biobank fields to fetch
    instances: list[int] = field(default_factory=lambda: [2])  # visits: 2 = first imaging visit, 3 = repeat
    ukbfetch: str = "ukbfetch"  # a name looked up on PATH, or a path
    dx: str = "dx"  # a name looked up on PATH, or a path
    retries: int = 3  # further attempts for a file that failed (not served, damaged, tool error)
    retry_backoff_s: float = 30.0  # wait before the first retry; doubles with each further one
    timeout_per_file_s: float = 900.0  # a call is stopped after this many seconds per file it fetches
    dx_project: Optional[str] = None  # e.g. project-XXXX; None = the project selected with `dx select`
    dx_folders: dict[str, str] = field(  # platform folder per field; a field without one is found by field_id
        default_factory=lambda: {"20201": "/Bulk/Whole Body MRI/Dixon"}
    )


@dataclass
class WithdrawConfig(StageConfig):
    """Delete every trace of the EIDs in ``exclude_eids_file`` under ``paths.root`` and the Hydra log folders."""

    name: str = "withdraw"
    input_dir: str = "${paths.root}"
    output_dir: str = "${paths.root}"
    log_dirs: list[str] = field(  # Hydra log folders cleaned too
        default_factory=lambda: ["outputs/runs", "outputs/multirun"]
    )


@dataclass
class DemoConfig(StageConfig):
    """Generate a small synthetic cohort once, run every processing stage on it, collect the pairs, write a report."""

    name: str = "demo"
    input_dir: str = "${paths.root}/raw"
    output_dir: str = "${paths.root}"
    subjects: int = 6  # synthetic subjects generated
    size: str = "small"  # small (fast) or full (UK Biobank's real sizes)
    seed: int = 0  # seed of the synthetic cohort
    quirks: bool = True  # cycle through UK Biobank's known quirks (a swap, a repeat, ...), all handled: none fails
    unzip_dxa: UnzipDxaConfig = field(default_factory=UnzipDxaConfig)  # the sub-stages' options: stage.unzip_dxa.*
    unzip_mri: UnzipMriConfig = field(default_factory=UnzipMriConfig)  # stage.unzip_mri.*
    extract_slices: ExtractSlicesConfig = field(default_factory=ExtractSlicesConfig)  # stage.extract_slices.*
    collect: CollectConfig = field(default_factory=CollectConfig)  # stage.collect.*
    report: ReportConfig = field(default_factory=ReportConfig)  # stage.report.*


@dataclass
class WriterConfig:
    name: str = MISSING


@dataclass
class Hdf5WriterConfig(WriterConfig):
    """HDF5 with filters every h5py has built in (no plugin needed to read)."""

    name: str = "hdf5"
    compression: Optional[str] = "gzip"  # gzip | lzf | None
    compression_level: int = 1  # gzip only, 1-9
    shuffle: bool = True  # byte-shuffle before compressing (smaller files)
    file_locking: Optional[bool] = None  # None = HDF5's default; false on NFS/Lustre where locking breaks


@dataclass
class PickleWriterConfig(WriterConfig):
    """The original scripts' pickles: the images as float32 plus ``pixel_spacing``, nothing else."""

    name: str = "pickle"


@dataclass
class NiftiWriterConfig(WriterConfig):
    """NIfTI-1 ``.nii.gz`` per image, with the affine from ``origin`` and ``spacing`` (needs ``nibabel``)."""

    name: str = "nifti"
    compression_level: int = 1  # gzip, 1-9
    layout: NiftiLayout = NiftiLayout.ras  # ras: voxels stored R-A-S (as dcm2niix); pipeline: the (L, P, I) axes


@dataclass
class PipelineConfig:
    """The whole configuration of one run."""

    stage: Any = MISSING  # stage=<name>
    writer: Any = MISSING  # writer=hdf5|pickle|nifti
    paths: PathsConfig = field(default_factory=PathsConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    n_jobs: Optional[int] = None  # None = the CPUs this process may use, capped by SLURM_CPUS_PER_TASK
    eids_file: Optional[str] = None  # process only these EIDs (one per line, or a ukbconv .bulk file)
    exclude_eids_file: Optional[str] = None  # never process these (e.g. a UK Biobank withdrawal list)
    overwrite: bool = False  # redo outputs that exist with the same settings
    allow_failures: bool = False  # exit 0 even when some inputs failed
    qc: bool = True  # QC pictures where a stage makes them
    seam_mismatch_limit: Optional[float] = SEAM_MISMATCH_LIMIT  # a seam mismatch above this is a flag (null: never)


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore, where ``conf/stage/<name>.yaml`` extends ``/schema/stage/<name>``.

    The schemas live in their own ``schema/`` groups, so they are never choices of ``stage=`` or ``writer=``.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="pipeline_schema", node=PipelineConfig)
    for stage in registry.STAGES:
        store.store(group="schema/stage", name=stage.name, node=stage.schema)
    for writer in registry.WRITERS:
        store.store(group="schema/writer", name=writer.name, node=writer.schema)


# ---- start-up checks: every refused value is refused here, naming its key, before any work ----

MAX_DOWNLOADS = 10  # UK Biobank: at most 10 simultaneous downloads per application


def _refuse(key: str, value: object, rule: str) -> None:
    from ukbb_pipeline.errors import ConfigError

    raise ConfigError(f"{key}={value} is refused: {rule}")


def _at_least(key: str, value: float | None, low: float, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value < low:
        _refuse(key, value, f"must be >= {low}" + (" or null" if allow_none else ""))


def _validate_stage(stage: StageConfig, prefix: str, *, shard_count: int, exclude_eids_file: Optional[str]) -> None:
    if isinstance(stage, (UnzipDxaConfig, UnzipMriConfig)):
        for name in ("max_member_mb", "max_total_mb", "max_members"):
            if getattr(stage.limits, name) <= 0:
                _refuse(f"{prefix}.limits.{name}", getattr(stage.limits, name), "must be > 0")
    if isinstance(stage, UnzipMriConfig):
        channels = [channel.value for channel in stage.channels]
        if not channels or len(set(channels)) != len(channels):
            _refuse(f"{prefix}.channels", channels, "must list distinct channels among F, W, in, opp")
        if stage.z_spacing is not None and stage.z_spacing <= 0:
            _refuse(f"{prefix}.z_spacing", stage.z_spacing, "must be > 0 mm or null")
        _at_least(f"{prefix}.trim_slices", stage.trim_slices, 0)
        _at_least(f"{prefix}.max_trim_slices", stage.max_trim_slices, 0)
        if not 0 < stage.edge_drop < 1:
            _refuse(f"{prefix}.edge_drop", stage.edge_drop, "must be between 0 and 1")
        _at_least(f"{prefix}.feather_mm", stage.feather_mm, 0)
    elif isinstance(stage, ExtractSlicesConfig):
        _at_least(f"{prefix}.n_neighbours", stage.n_neighbours, 0)
        _at_least(f"{prefix}.spacing", stage.spacing, 1)
        _at_least(f"{prefix}.profile_stride", stage.profile_stride, 1, allow_none=True)
        _at_least(f"{prefix}.sheet_size", stage.sheet_size, 1)
    elif isinstance(stage, CollectConfig):
        if stage.target_spacing <= 0:
            _refuse(f"{prefix}.target_spacing", stage.target_spacing, "must be > 0 mm")
        for name in ("mri_shape", "dxa_shape"):
            shape = list(getattr(stage, name))
            if len(shape) != 2 or min(shape) < 1:
                _refuse(f"{prefix}.{name}", shape, "must be two positive sizes (rows, columns)")
        for name in ("mri_channels", "dxa_channels"):
            if not getattr(stage, name):
                _refuse(f"{prefix}.{name}", [], "must name at least one dataset")
        fractions = list(stage.split_fractions)
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
            _refuse(f"{prefix}.split_fractions", fractions, "must be three non-negative numbers summing to 1")
    elif isinstance(stage, ReportConfig):
        _at_least(f"{prefix}.max_pictures", stage.max_pictures, 0)
        _at_least(f"{prefix}.max_rows", stage.max_rows, 1)
    elif isinstance(stage, StatusConfig):
        _at_least(f"{prefix}.examples", stage.examples, 0)
    elif isinstance(stage, DownloadConfig):
        ukbfetch = stage.backend == DownloadBackend.ukbfetch  # UK Biobank's limits are ukbfetch's, not dx's
        if shard_count > 1 and ukbfetch:
            from ukbb_pipeline.errors import ConfigError

            raise ConfigError(f"download refuses shard.count={shard_count}: UK Biobank's limit of {MAX_DOWNLOADS} "
                              "simultaneous downloads is per application; run one download with stage.parallel")
        if ukbfetch and not 1 <= stage.parallel <= MAX_DOWNLOADS:
            _refuse(f"{prefix}.parallel", stage.parallel, f"UK Biobank allows 1 to {MAX_DOWNLOADS} per application")
        _at_least(f"{prefix}.parallel", stage.parallel, 1)
        _at_least(f"{prefix}.retries", stage.retries, 0)
        _at_least(f"{prefix}.retry_backoff_s", stage.retry_backoff_s, 0)
        if stage.timeout_per_file_s <= 0:
            _refuse(f"{prefix}.timeout_per_file_s", stage.timeout_per_file_s, "must be > 0")
        if not stage.fields or not stage.instances:
            _refuse(f"{prefix}.fields/instances", [], "each must list at least one value")
    elif isinstance(stage, WithdrawConfig):
        if exclude_eids_file is None:
            _refuse("exclude_eids_file", None, "stage=withdraw needs exclude_eids_file=<the withdrawal list>")
    elif isinstance(stage, DemoConfig):
        _at_least(f"{prefix}.subjects", stage.subjects, 1)
        for name, sub_stage in vars(stage).items():  # the demo's sub-stages: stage.unzip_mri.*, ...
            if isinstance(sub_stage, StageConfig):
                _validate_stage(sub_stage, f"{prefix}.{name}", shard_count=shard_count,
                                exclude_eids_file=exclude_eids_file)


def validate(config: PipelineConfig) -> None:
    """Refuse any value out of its range with :class:`~ukbb_pipeline.errors.ConfigError` naming the key."""
    _at_least("n_jobs", config.n_jobs, 1, allow_none=True)
    _at_least("seam_mismatch_limit", config.seam_mismatch_limit, 0, allow_none=True)
    _at_least("shard.count", config.shard.count, 1)
    if not 0 <= config.shard.index < config.shard.count:
        _refuse("shard.index", config.shard.index, f"must be in [0, shard.count={config.shard.count})")
    writer = config.writer
    if isinstance(writer, (Hdf5WriterConfig, NiftiWriterConfig)) and not 1 <= writer.compression_level <= 9:
        _refuse("writer.compression_level", config.writer.compression_level, "must be 1 to 9")
    if isinstance(writer, Hdf5WriterConfig) and writer.compression not in (None, "gzip", "lzf"):
        _refuse("writer.compression", writer.compression, "must be gzip, lzf or null")
    _validate_stage(config.stage, "stage", shard_count=config.shard.count, exclude_eids_file=config.exclude_eids_file)


# ---- unknown keys: refused whether or not they were appended with `+` ----


def schema_keys(schema: Any, prefix: str = "") -> list[str]:
    """Every key of a schema, nested ones dotted (``extract_slices.n_neighbours`` for the demo's)."""
    import dataclasses

    if schema is None or not dataclasses.is_dataclass(schema):
        return []
    keys = []
    for item in dataclasses.fields(schema):
        keys.append(f"{prefix}{item.name}")
        nested = item.type if isinstance(item.type, type) else None
        default = item.default_factory() if item.default_factory is not dataclasses.MISSING else None
        keys += schema_keys(nested or type(default) if default is not None else nested, f"{prefix}{item.name}.")
    return keys


TOP_LEVEL_KEYS = frozenset({"n_jobs", "eids_file", "exclude_eids_file", "overwrite", "allow_failures", "qc", "shard",
                            "paths", "writer"})


def unknown_key_message(key: str, valid: list[str]) -> str:
    """``unknown key stage.n_neighbors (did you mean stage.n_neighbours?)``: the closest valid key, by difflib."""
    import difflib

    parent, _, name = key.rpartition(".")
    by_name: dict[str, str] = {}
    for candidate in sorted(valid, key=lambda k: k.count(".")):  # the shallowest key of a name first
        by_name.setdefault(candidate.rpartition(".")[2], candidate)
    close = difflib.get_close_matches(name, list(by_name), n=1, cutoff=0.6)
    hint = f" (did you mean {parent + '.' if parent else ''}{by_name[close[0]]}?)" if close else ""
    if parent and name in TOP_LEVEL_KEYS and name not in by_name:  # stage.eids_file on a processing stage
        hint = f" (did you mean {name}=...? it is a top-level key, not a stage option)"
    return f"unknown key {key}{hint}; `--help` lists the options"


def check_known_keys(cfg: Any, prefix: str = "") -> None:
    """Refuse a key its schema does not have (Hydra lets ``+key=value`` add one to a structured config)."""
    import dataclasses

    from omegaconf import DictConfig, OmegaConf

    from ukbb_pipeline.errors import ConfigError

    schema = OmegaConf.get_type(cfg)
    fields = {item.name for item in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    for key in cfg:
        full = f"{prefix}{key}"
        if fields is not None and key not in fields:
            raise ConfigError(unknown_key_message(full, schema_keys(schema)))
        child = cfg._get_node(key)
        if isinstance(child, DictConfig) and not child._is_missing() and not child._is_none():
            check_known_keys(child, prefix=f"{full}.")


# ---- paths: `~` and $VARS expanded in every path option, in one place ----

PATH_FIELDS = frozenset({
    "root", "raw_dxa", "raw_mri", "dxa", "mri", "slices", "collected",  # PathsConfig
    "input_dir", "output_dir", "dxa_dir", "eids_file", "exclude_eids_file", "key_file",
    "train_eids", "val_eids", "test_eids", "ukbfetch", "dx", "stage_dirs", "raw_inputs", "log_dirs", "jobs",
})


def expand_path(value: str) -> str:
    """``~`` and ``$VAR``/``${VAR}`` expanded (a variable that is not set is an error naming it)."""
    import os
    import re

    from ukbb_pipeline.errors import ConfigError

    expanded = os.path.expandvars(os.path.expanduser(value))
    unset = re.search(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", expanded)
    if unset:
        raise ConfigError(f"path {value!r} names the environment variable {unset.group(1)}, which is not set")
    return expanded


def expand_paths(node: Any) -> None:
    """Expand every path option of a config object (a dataclass tree) in place."""
    import dataclasses

    for item in dataclasses.fields(node):
        value = getattr(node, item.name)
        if dataclasses.is_dataclass(value):
            expand_paths(value)
        elif item.name in PATH_FIELDS:
            if isinstance(value, str):
                setattr(node, item.name, expand_path(value))
            elif isinstance(value, dict):
                setattr(node, item.name, {key: expand_path(path) for key, path in value.items()})
            elif isinstance(value, list):
                setattr(node, item.name, [expand_path(path) for path in value])


# ---- the root: only the demo has a default folder, so real data never lands beside the synthetic cohort ----

DEMO_ROOT = "outputs/demo"  # the demo's folder when paths.root is not given
STAGE_FOLDER_KEYS = ("input_dir", "output_dir", "dxa_dir", "stage_dirs", "raw_inputs")  # folders a stage may use


def settle_root(cfg: Any) -> None:
    """Give the demo its own root; refuse any other stage whose folders need ``paths.root`` when none is given."""
    import re
    from typing import cast

    from omegaconf import OmegaConf

    from ukbb_pipeline.errors import ConfigError

    if cfg.paths.root is not None:
        return
    name = cfg.stage.name
    if name == "demo":
        cfg.paths.root = DEMO_ROOT
        return
    paths = cast(dict[str, Any], OmegaConf.to_container(cfg.paths, resolve=False))
    stage = cast(dict[str, Any], OmegaConf.to_container(cfg.stage, resolve=False))

    def uses_root(value: object) -> bool:
        refs = re.findall(r"\$\{paths\.(\w+)\}", str(value))
        return any(ref == "root" or "${paths.root}" in str(paths.get(ref, "")) for ref in refs)

    needed = [f"stage.{key}" for key in STAGE_FOLDER_KEYS if key in stage and uses_root(stage[key])]
    if needed:
        raise ConfigError(f"stage={name} needs paths.root=<your data folder> (or {' and '.join(needed)}): "
                          f"only the demo has a default folder ({DEMO_ROOT})")


def pipeline_config(cfg: Any) -> PipelineConfig:
    """The typed config of a composed one: unknown keys refused, the root settled, paths expanded, ranges checked."""
    from typing import cast

    from omegaconf import OmegaConf

    check_known_keys(cfg)
    settle_root(cfg)
    config = cast(PipelineConfig, OmegaConf.to_object(cfg))
    expand_paths(config)
    validate(config)
    return config
