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

# OmegaConf validates these annotations at runtime, so they use typing's spelling (Optional), not PEP 604.


# Dixon channels, named by the SeriesDescription suffix UK Biobank uses. OmegaConf matches enum members by name, and
# "in" is a Python keyword, hence the functional form: Channel["in"].
Channel = Enum("Channel", {"F": "F", "W": "W", "in": "in", "opp": "opp"}, type=str)


class VolumeDtype(str, Enum):
    uint16 = "uint16"
    float32 = "float32"


class Scaling(str, Enum):
    physical = "physical"  # both modalities resampled to the target spacing
    paper_loader = "paper_loader"  # the public loader's factors: target/spacing for MRI, none for DXA


class DownloadBackend(str, Enum):
    ukbfetch = "ukbfetch"
    dx = "dx"


@dataclass
class PathsConfig:
    """Where the data lives: every stage folder defaults to a name under ``root``."""

    root: str = "outputs/demo"
    raw_dxa: str = "${paths.root}/raw/dxas"
    raw_mri: str = "${paths.root}/raw/mris"
    dxa: str = "${paths.root}/dxas-processed"
    mri: str = "${paths.root}/mris-processed"
    slices: str = "${paths.root}/mri-mid-corr-slices"
    collected: str = "${paths.root}/collection"


@dataclass
class ShardConfig:
    """This run processes the inputs whose stable hash modulo ``count`` equals ``index``."""

    index: int = 0
    count: int = 1


@dataclass
class ZipLimits:
    """Bounds checked before memory is spent on a zip (declared and actual inflated sizes)."""

    max_member_mb: float = 64.0
    max_total_mb: float = 4096.0
    max_members: int = 10000


@dataclass
class StageConfig:
    """What every stage has: a name, an input folder and an output folder."""

    name: str = MISSING
    input_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class UnzipDxaConfig(StageConfig):
    name: str = "unzip_dxa"
    input_dir: str = "${paths.raw_dxa}"
    output_dir: str = "${paths.dxa}"
    limits: ZipLimits = field(default_factory=ZipLimits)


@dataclass
class UnzipMriConfig(StageConfig):
    name: str = "unzip_mri"
    input_dir: str = "${paths.raw_mri}"
    output_dir: str = "${paths.mri}"
    channels: list[Channel] = field(default_factory=lambda: [Channel["F"], Channel["W"]])
    z_spacing: Optional[float] = None  # mm; None = the in-plane pixel spacing
    fix_swaps: bool = False
    allow_missing_stations: bool = False
    dtype: VolumeDtype = VolumeDtype.uint16
    trim_slices: int = 2  # noisy slab-edge slices dropped at each end of a station (where a neighbour covers them)
    max_trim_slices: int = 6  # up to this many further edge slices dropped where their signal falls; 0: never
    edge_drop: float = 0.15  # an edge slice is noisy when its level is this fraction below the station's inside
    feather_mm: float = 24.0  # width of the smooth blend centred in each overlap (the whole overlap if narrower)
    harmonise: bool = True  # scale stations to match their neighbours' intensity in the overlaps
    limits: ZipLimits = field(default_factory=ZipLimits)


@dataclass
class ExtractSlicesConfig(StageConfig):
    name: str = "extract_slices"
    input_dir: str = "${paths.mri}"
    output_dir: str = "${paths.slices}"
    n_neighbours: int = 5
    spacing: int = 2  # a step in rows, not mm
    profile_stride: Optional[int] = None  # rows between coarse profile samples; None = about 14 mm; 1 = every row
    sheet_size: int = 100  # subjects per QC contact sheet
    seam_mismatch_limit: Optional[float] = 0.2  # contact sheets flag unzip_mri's max_seam_mismatch above this


@dataclass
class CollectConfig(StageConfig):
    """MRI slabs and DXA images of the same visit, fitted to the paper's geometry, one HDF5 file per shard."""

    name: str = "collect"
    input_dir: str = "${paths.slices}"  # the MRI slabs (extract_slices' output)
    dxa_dir: str = "${paths.dxa}"  # unzip_dxa's output
    output_dir: str = "${paths.collected}"
    target_spacing: float = 2.0  # mm, both modalities
    scaling: Scaling = Scaling.physical
    mri_shape: list[int] = field(default_factory=lambda: [700, 224])  # rows (z head->feet), columns (x)
    dxa_shape: list[int] = field(default_factory=lambda: [1000, 300])
    mri_channels: list[str] = field(default_factory=lambda: ["fat_scan", "water_scan"])
    dxa_channels: list[str] = field(default_factory=lambda: ["bone", "tissue"])
    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train, val, test
    split_seed: int = 0
    train_eids: Optional[str] = None  # EID lists (e.g. the paper's published ones) replace the hashed split
    val_eids: Optional[str] = None
    test_eids: Optional[str] = None
    keep_flagged: bool = False  # keep pairs whose MRI has an unfixed fat/water swap or a seam mismatch above the limit
    seam_mismatch_limit: Optional[float] = 0.2  # a pair's max_seam_mismatch above this is a failed seam check


@dataclass
class ReportConfig(StageConfig):
    """One self-contained HTML page about the stages' manifests and QC pictures under ``paths.root``."""

    name: str = "report"
    input_dir: str = "${paths.root}"
    output_dir: str = "${paths.root}/pipeline-report"
    stage_dirs: dict[str, str] = field(
        default_factory=lambda: {
            "download": "${paths.root}/raw",
            "unzip_dxa": "${paths.dxa}",
            "unzip_mri": "${paths.mri}",
            "extract_slices": "${paths.slices}",
            "collect": "${paths.collected}",
        }
    )
    max_pictures: int = 24  # QC pictures embedded per stage (the rest are listed)
    max_rows: int = 1000  # rows per table


@dataclass
class DownloadConfig(StageConfig):
    """Bulk zips for an EID list, fetched ``parallel`` at a time, verified, and resumed on a re-run."""

    name: str = "download"
    input_dir: str = "${paths.root}"  # unused: the inputs are requests (eids_file x fields x instances)
    output_dir: str = "${paths.root}/raw"  # zips go to raw/dxas/ (20158), raw/mris/ (20201), raw/<field>/ (others)
    eids_file: Optional[str] = None  # an EID list or a ukbconv .bulk file; None = the top-level eids_file
    key_file: str = ".ukbkey"  # ukbfetch's key file; only its path is ever passed, logged or saved
    backend: DownloadBackend = DownloadBackend.ukbfetch
    parallel: int = 10  # simultaneous downloads; UK Biobank allows at most 10 per application
    fields: list[int] = field(default_factory=lambda: [20158, 20201])
    instances: list[int] = field(default_factory=lambda: [2])
    ukbfetch: str = "ukbfetch"  # a name looked up on PATH, or a path
    dx: str = "dx"  # a name looked up on PATH, or a path
    retries: int = 3  # further attempts for a file that failed (not served, damaged, tool error)
    retry_backoff_s: float = 30.0  # wait before the first retry; doubles with each further one
    timeout_per_file_s: float = 900.0  # a call is stopped after this many seconds per file it fetches
    dx_project: Optional[str] = None  # e.g. project-XXXX; None = the project selected with `dx select`
    dx_folders: dict[str, str] = field(  # Research Analysis Platform folder per field (20158's is a guess)
        default_factory=lambda: {"20201": "/Bulk/Whole Body MRI/Dixon", "20158": "/Bulk/Whole Body DXA/DXA"}
    )


@dataclass
class WithdrawConfig(StageConfig):
    """Delete every trace of the EIDs in ``exclude_eids_file`` under ``paths.root`` and the Hydra log folders."""

    name: str = "withdraw"
    input_dir: str = "${paths.root}"
    output_dir: str = "${paths.root}"
    log_dirs: list[str] = field(default_factory=lambda: ["outputs/runs", "outputs/multirun"])


@dataclass
class DemoConfig(StageConfig):
    """Generate a small synthetic cohort once, run every processing stage on it, collect the pairs, write a report."""

    name: str = "demo"
    input_dir: str = "${paths.root}/raw"
    output_dir: str = "${paths.root}"
    subjects: int = 6
    size: str = "small"
    seed: int = 0
    quirks: bool = True  # cycle through UK Biobank's known quirks (a swap, a repeat, ...), all handled: none fails
    unzip_dxa: UnzipDxaConfig = field(default_factory=UnzipDxaConfig)
    unzip_mri: UnzipMriConfig = field(default_factory=UnzipMriConfig)
    extract_slices: ExtractSlicesConfig = field(default_factory=ExtractSlicesConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


@dataclass
class WriterConfig:
    name: str = MISSING


@dataclass
class Hdf5WriterConfig(WriterConfig):
    """HDF5 with filters every h5py has built in (no plugin needed to read)."""

    name: str = "hdf5"
    compression: Optional[str] = "gzip"  # gzip | lzf | None
    compression_level: int = 1  # gzip only, 1-9
    shuffle: bool = True
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


@dataclass
class PipelineConfig:
    """The whole configuration of one run."""

    stage: Any = MISSING
    writer: Any = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    n_jobs: Optional[int] = None  # None = the CPUs this process may use, capped by SLURM_CPUS_PER_TASK
    eids_file: Optional[str] = None
    exclude_eids_file: Optional[str] = None
    overwrite: bool = False
    allow_failures: bool = False
    qc: bool = True


STAGE_SCHEMAS: dict[str, type[StageConfig]] = {
    "unzip_dxa": UnzipDxaConfig,
    "unzip_mri": UnzipMriConfig,
    "extract_slices": ExtractSlicesConfig,
    "download": DownloadConfig,
    "demo": DemoConfig,
    "withdraw": WithdrawConfig,
    "collect": CollectConfig,
    "report": ReportConfig,
}
WRITER_SCHEMAS: dict[str, type[WriterConfig]] = {
    "hdf5": Hdf5WriterConfig,
    "pickle": PickleWriterConfig,
    "nifti": NiftiWriterConfig,
}


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore, where ``conf/`` refers to them as ``<name>_schema``."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="pipeline_schema", node=PipelineConfig)
    for name, schema in STAGE_SCHEMAS.items():
        store.store(group="stage", name=f"{name}_schema", node=schema)
    for name, schema in WRITER_SCHEMAS.items():
        store.store(group="writer", name=f"{name}_schema", node=schema)
