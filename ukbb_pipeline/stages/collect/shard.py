"""Building a collect shard: the settings, one pair's fit (read in any format, fitted, encoded) and the shard's sink.

The science is in :mod:`ukbb_pipeline.pairs.fit`, the file layout in :mod:`ukbb_pipeline.formats.collection`; this
module joins them for the ``collect`` stage (:mod:`ukbb_pipeline.stages.collect`), with the runner's sink.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ukbb_pipeline.config import CollectConfig
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.formats import collection
from ukbb_pipeline.formats.chunks import ChunkCodec
from ukbb_pipeline.formats.outputs import read_dxa, read_slab_row
from ukbb_pipeline.pairs import fit
from ukbb_pipeline.pairs.flags import flags_from_attrs
from ukbb_pipeline.runtime.fingerprint import settings_fingerprint
from ukbb_pipeline.runtime.inputs import read_eid_list
from ukbb_pipeline.runtime.manifest import FAILED, OK, SKIPPED
from ukbb_pipeline.runtime.runner import Result, Sink, Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectParams:
    """Everything about a pair's fitting, as plain values."""

    target_spacing: float
    scaling: str
    mri_shape: tuple[int, int]
    dxa_shape: tuple[int, int]
    mri_channels: tuple[str, ...]
    dxa_channels: tuple[str, ...]
    keep_flagged: bool = False
    seam_mismatch_limit: float | None = None


def make_params(config: CollectConfig, *, seam_mismatch_limit: float | None) -> CollectParams:
    """The fitting parameters of a checked config (ranges are checked in :func:`ukbb_pipeline.config.validate`)."""
    return CollectParams(
        target_spacing=float(config.target_spacing),
        scaling=getattr(config.scaling, "value", str(config.scaling)),
        mri_shape=(int(config.mri_shape[0]), int(config.mri_shape[1])),
        dxa_shape=(int(config.dxa_shape[0]), int(config.dxa_shape[1])),
        mri_channels=tuple(config.mri_channels),
        dxa_channels=tuple(config.dxa_channels),
        keep_flagged=bool(config.keep_flagged),
        seam_mismatch_limit=seam_mismatch_limit,
    )


def split_assigner(config: CollectConfig) -> tuple[Callable[[int], str], dict[str, Any]]:
    """A function eid -> split from the config: the user's lists when any is given, else the stable hash."""
    lists = {
        name: read_eid_list(Path(path))
        for name, path in (("train", config.train_eids), ("val", config.val_eids), ("test", config.test_eids))
        if path
    }
    if lists:
        fit.check_disjoint(lists)
        digest = settings_fingerprint({name: sorted(eids) for name, eids in lists.items()})
        return (lambda eid: fit.split_from_lists(eid, lists),
                {"method": "lists", "lists": {name: len(eids) for name, eids in lists.items()}, "digest": digest})
    fractions = tuple(config.split_fractions)
    fit.check_fractions(fractions)
    seed = config.split_seed
    return (lambda eid: fit.hash_split(eid, fractions=fractions, seed=seed),
            {"method": "hash", "fractions": list(fractions), "seed": seed})


def fit_pair(pair: fit.Pair, split: str, *, params: CollectParams,
             codec: ChunkCodec) -> tuple[dict[str, Any] | None, dict[str, Any], list[str]]:
    """Read and fit one pair (in a worker): its collection record (None when its flags leave it out), its manifest
    figures, and the problems its flags show."""
    try:
        slab = read_slab_row(pair.mri.path, channels=params.mri_channels)
    except InputError as error:
        raise InputError(f"MRI slab: {error}") from None
    flags = flags_from_attrs(slab.attrs)
    problems = flags.problems(seam_mismatch_limit=params.seam_mismatch_limit)
    qc: dict[str, Any] = {"dxa_input": str(pair.dxa.path), "split": split,
                          "flags": flags.describe(seam_mismatch_limit=params.seam_mismatch_limit)}
    if problems and not params.keep_flagged:
        return None, qc, problems
    try:
        dxa = read_dxa(pair.dxa.path, channels=params.dxa_channels)
    except InputError as error:
        raise InputError(f"DXA {pair.dxa.path.name}: {error}") from None
    item = fit.make_pair(slab.image, dxa.image, mri_spacing=slab.spacing, mri_origin=slab.origin,
                         dxa_spacing=dxa.spacing, target=params.target_spacing, scaling=params.scaling,
                         mri_shape=params.mri_shape, dxa_shape=params.dxa_shape)
    images: dict[str, Any] = {"mri": item.mri.image, "dxa": item.dxa.image}
    if codec.in_worker:
        images = {name: codec.encode(image) for name, image in images.items()}
    record = {
        **images,
        "mri_source_spacing": slab.source_spacing, "dxa_source_spacing": dxa.spacing, "mri_slab_row": slab.row,
        "mri_range": item.mri.value_range, "dxa_range": item.dxa.value_range,
        "eids": pair.eid, "instances": pair.instance, "splits": split.encode(),
        "mri_source": collection.text(pair.mri.stem, collection.SOURCE_NAME_BYTES),
        "dxa_source": collection.text(pair.dxa.stem, collection.SOURCE_NAME_BYTES),
        "mri_pixel_spacing": item.mri.pixel_spacing, "dxa_pixel_spacing": item.dxa.pixel_spacing,
        "mri_origin": item.mri_origin, "dxa_origin": item.dxa_origin,
        "swapped_stations": " ".join(map(str, flags.swapped_stations)).encode(),
        "swap_fixed": int(flags.swap_fixed), "max_seam_mismatch": flags.max_seam_mismatch,
        "flags": collection.text(flags.describe(seam_mismatch_limit=params.seam_mismatch_limit),
                                 collection.FLAG_BYTES),
    }
    qc.update(mri_cut_rows=item.mri.cut[0], mri_cut_columns=item.mri.cut[1], dxa_cut_rows=item.dxa.cut[0],
              dxa_cut_columns=item.dxa.cut[1])
    return record, qc, problems


def collection_attrs(params: CollectParams, split: dict[str, Any]) -> dict[str, Any]:
    """The root attributes that describe how a collection was made."""
    return {"mri_channels": list(params.mri_channels), "dxa_channels": list(params.dxa_channels),
            "target_spacing": params.target_spacing, "scaling": params.scaling,
            "interpolation": "bicubic as torch.nn.functional.interpolate(align_corners=False), a=-0.75",
            "normalisation": "none applied; normalised = (x - range[..., 0]) / (range[..., 1] - range[..., 0] + 1e-5)",
            "split_method": split["method"], "split_settings": split, "keep_flagged": params.keep_flagged}


def log_unpaired(pairing: fit.Pairing) -> None:
    for kind, missing, items in (("MRI slab", "DXA", pairing.mri_only), ("DXA", "MRI slab", pairing.dxa_only)):
        if items:
            log.warning("collect: %d %s output(s) have no %s output for the same visit: %s", len(items), kind,
                        missing, ", ".join(item.stem for item in items[:5]) + (" ..." if len(items) > 5 else ""))


def warn_other_shard_counts(folder: Path, count: int) -> None:
    others = collection.other_shard_counts(folder, count)
    if others:
        log.warning("collect: %s holds shard files of another shard count (%s); a reader given the folder refuses "
                    "mixed counts: remove the stale ones", folder, ", ".join(others[:4]))


def left_out_reason(problems: list[str]) -> str:
    return f"left out: {'; '.join(problems)} (stage.keep_flagged=true keeps it)"


class CollectSink(Sink):
    """Gathers the fitted pairs of a shard into its file, in (eid, instance) order; rows once the file is in place."""

    def __init__(self, final: Path, tasks: list[Task], *, params: CollectParams, codec: ChunkCodec,
                 scratch_dir: Path, attrs: dict[str, Any], locking: bool | None):
        self.target = self.final = final
        self.tasks = tasks
        self.index = {task.unit.key: number for number, task in enumerate(tasks)}
        self.params, self.codec, self.scratch_dir, self.attrs, self.locking = params, codec, scratch_dir, attrs, locking
        self.results: list[Result] = []
        self.writer: collection.CollectionWriter | None = None

    def __enter__(self) -> CollectSink:
        p = self.params
        self.writer = collection.CollectionWriter(
            self.final, scratch_dir=self.scratch_dir, n=len(self.tasks), mri_channels=p.mri_channels,
            dxa_channels=p.dxa_channels, mri_shape=p.mri_shape, dxa_shape=p.dxa_shape, codec=self.codec,
            locking=self.locking)
        return self

    def __exit__(self, *exc: object) -> None:
        if exc and exc[0] is not None and self.writer is not None:
            self.writer.abandon()

    def put(self, result: Result) -> list[Result]:
        assert self.writer is not None
        if result.status == OK:
            self.writer.write(self.index[result.unit.key], result.payload)
            result.payload = None
        self.results.append(result)
        return []

    def close(self) -> list[Result]:
        assert self.writer is not None
        failed = sum(result.status == FAILED for result in self.results)
        left_out = sum(result.status == SKIPPED for result in self.results)
        self.writer.close({**self.attrs, "n_failed": failed, "n_left_out": left_out})
        return sorted(self.results, key=lambda r: (r.unit.eid, r.unit.instance))

    def abandoned(self, error: OSError) -> list[Result]:
        return [Result(task.unit, FAILED, reason=f"shard file not written: {error}", fingerprint=task.fingerprint,
                       qc={"dxa_input": str(task.unit.item[0].dxa.path), "split": task.unit.item[1]})
                for task in self.tasks]
