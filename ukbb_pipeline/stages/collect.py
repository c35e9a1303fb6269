"""Stage ``collect``: MRI slabs and DXA images of the same visit, paired, in one training-ready HDF5 file per shard.

Reads what ``extract_slices`` and ``unzip_dxa`` wrote (HDF5 or pickle, whichever is there), pairs them on
(eid, instance), fits each pair to the paper's geometry (:mod:`ukbb_pipeline.pairs.fit`) and writes
``<output_dir>/collection-shard<i>of<n>.h5`` atomically, with one manifest row per pair. A shard's pairs are those
whose MRI slab's stem hashes to the shard, as in every stage. :class:`ukbb_pipeline.pairs.dataset.PairedDataset`
reads all shards as one.

A shard file is rebuilt whole when its pairs, their input files or the settings changed (or a pair failed before);
otherwise the run skips it.

Layout of a shard file (N pairs, in (eid, instance) order; plain h5py reads it):

- ``mri`` (N, 2, 700, 224) float32, channels ``fat_scan``, ``water_scan``: rows z head->feet, columns x right->left;
  ``dxa`` (N, 2, 1000, 300) float32, channels ``bone``, ``tissue``: rows head->feet, columns towards the patient's
  left. Raw resampled intensities, padding filled with each channel's minimum; chunked one item per chunk.
- ``mri_range``, ``dxa_range`` (N, 2, 2): per channel (min, max) of the resampled image before cropping; the paper's
  normalisation is ``(x - min) / (max - min + 1e-5)`` (:func:`ukbb_pipeline.pairs.fit.normalise`).
- ``eids``, ``instances``, ``splits`` (train | val | test | unassigned), ``mri_source``, ``dxa_source`` (input stems).
- ``mri_pixel_spacing``, ``dxa_pixel_spacing`` (N, 2): (row, column) mm after resampling; ``mri_source_spacing``
  (N, 3) the slab's (sx, sy, sz), ``dxa_source_spacing`` (N, 2); ``mri_slab_row`` the slab row taken.
- ``mri_origin`` (N, 3): LPS mm of MRI pixel [0, 0] (pixel (r, c) lies at x0 + c*column mm, y0, z0 - r*row mm);
  ``dxa_origin`` (N, 2): (row, column) mm of DXA pixel [0, 0] from the centre of the stored image's pixel [0, 0].
- Root attributes: the settings (``target_spacing``, ``scaling``, channels, split method and settings), the shard,
  ``n_failed``, ``settings_fingerprint`` and ``content_fingerprint``.

All shards are read as one by :class:`ukbb_pipeline.pairs.dataset.PairedDataset` rather than through an HDF5 virtual
dataset: a virtual dataset's mapping is fixed when it is made and reads silently as fill values when a shard is later
rebuilt with another number of pairs, and no job of a SLURM array knows when every other shard is final.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from ukbb_pipeline import __version__
from ukbb_pipeline.config import CollectConfig
from ukbb_pipeline.errors import InputError, OutputError
from ukbb_pipeline.formats import Hdf5Writer, Writer
from ukbb_pipeline.formats.chunks import ChunkCodec, Encoded
from ukbb_pipeline.formats.outputs import find_outputs, read_dxa, read_slab_row
from ukbb_pipeline.pairs import fit as collect
from ukbb_pipeline.runtime.atomic import atomic_file, remove_stale_scratch
from ukbb_pipeline.runtime.fingerprint import settings_fingerprint
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import InputFile, filter_by_eid, read_eid_list
from ukbb_pipeline.runtime.manifest import FAILED, OK, SKIPPED, ManifestRow, ManifestWriter
from ukbb_pipeline.runtime.parallel import imap_unordered
from ukbb_pipeline.runtime.runner import RunOptions, StageSummary, format_summary
from ukbb_pipeline.runtime.sharding import in_shard

log = logging.getLogger(__name__)

# Bump when a code change alters the collection, so that re-runs rebuild it.
VERSION = 1
FORMAT = "ukbb-pipeline paired collection"
FORMAT_VERSION = 1
SOURCE_NAME_BYTES = 64


@dataclass(frozen=True)
class CollectParams:
    """Everything about a pair's fitting, as plain values."""

    target_spacing: float
    scaling: str
    mri_shape: tuple[int, int]
    dxa_shape: tuple[int, int]
    mri_channels: tuple[str, ...]
    dxa_channels: tuple[str, ...]


def shard_file_name(index: int, count: int) -> str:
    return f"collection-shard{index}of{count}.h5"


def fit_pair(pair: collect.Pair, *, params: CollectParams) -> tuple[collect.PairedItem, dict[str, Any]]:
    """Read one pair's MRI slab row and DXA images and fit them; the item and its manifest figures."""
    try:
        slab = read_slab_row(pair.mri.path, channels=params.mri_channels)
    except InputError as error:
        raise InputError(f"MRI slab: {error}") from None
    try:
        dxa = read_dxa(pair.dxa.path, channels=params.dxa_channels)
    except InputError as error:
        raise InputError(f"DXA {pair.dxa.path.name}: {error}") from None
    item = collect.make_pair(
        slab.image,
        dxa.image,
        mri_spacing=slab.spacing,
        mri_origin=slab.origin,
        dxa_spacing=dxa.spacing,
        target=params.target_spacing,
        scaling=params.scaling,
        mri_shape=params.mri_shape,
        dxa_shape=params.dxa_shape,
    )
    qc = {
        "dxa_input": str(pair.dxa.path),
        "mri_cut_rows": item.mri.cut[0],
        "mri_cut_columns": item.mri.cut[1],
        "dxa_cut_rows": item.dxa.cut[0],
        "dxa_cut_columns": item.dxa.cut[1],
    }
    meta = {"mri_source_spacing": slab.source_spacing, "dxa_source_spacing": dxa.spacing, "mri_slab_row": slab.row}
    return item, {"meta": meta, "qc": qc}


def record(pair: collect.Pair, item: collect.PairedItem, extra: dict[str, Any], *, split: str,
           codec: ChunkCodec) -> dict[str, Any]:
    """Everything a shard file holds about one pair: dataset name -> this pair's row."""
    images = {"mri": item.mri.image, "dxa": item.dxa.image}
    if codec.in_worker:
        images = {name: codec.encode(image) for name, image in images.items()}
    return {
        **images,
        **extra["meta"],
        "mri_range": item.mri.value_range,
        "dxa_range": item.dxa.value_range,
        "eids": pair.eid,
        "instances": pair.instance,
        "splits": split.encode(),
        "mri_source": pair.mri.stem.encode()[:SOURCE_NAME_BYTES],
        "dxa_source": pair.dxa.stem.encode()[:SOURCE_NAME_BYTES],
        "mri_pixel_spacing": item.mri.pixel_spacing,
        "dxa_pixel_spacing": item.dxa.pixel_spacing,
        "mri_origin": item.mri_origin,
        "dxa_origin": item.dxa_origin,
    }


def _fit_one(
    index: int, pair: collect.Pair, split: str, params: CollectParams, codec: ChunkCodec
) -> tuple[int, Any, str, float]:
    """Fit one pair in a worker and return its record and manifest figures; errors become a one-line reason."""
    started = time.monotonic()
    try:
        item, extra = fit_pair(pair, params=params)
        return index, (record(pair, item, extra, split=split, codec=codec), extra["qc"]), "", time.monotonic() - started
    except InputError as error:
        reason = str(error)
    except MemoryError:
        reason = "out of memory"
    except OSError as error:
        reason = f"I/O error: {error}"
    except Exception as error:  # a bug must not stop the other pairs; say where it happened
        frame = traceback.extract_tb(error.__traceback__)[-1]
        reason = f"unexpected {type(error).__name__} at {Path(frame.filename).name}:{frame.lineno}: {error}"
    return index, None, reason, time.monotonic() - started


def split_assigner(config: CollectConfig):
    """A function eid -> split from the config: the user's lists when any is given, else the stable hash."""
    lists = {
        name: read_eid_list(Path(path))
        for name, path in (("train", config.train_eids), ("val", config.val_eids), ("test", config.test_eids))
        if path
    }
    if lists:
        collect.check_disjoint(lists)
        return lambda eid: collect.split_from_lists(eid, lists), {"method": "lists", "lists": lists}
    fractions = tuple(config.split_fractions)
    collect.check_fractions(fractions)
    seed = config.split_seed
    return (lambda eid: collect.hash_split(eid, fractions=fractions, seed=seed),
            {"method": "hash", "fractions": fractions, "seed": seed})


def make_params(config: CollectConfig) -> CollectParams:
    if config.target_spacing <= 0:
        raise ValueError(f"stage.target_spacing must be > 0 mm, got {config.target_spacing}")
    for name in ("mri_shape", "dxa_shape"):
        shape = getattr(config, name)
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"stage.{name} must be two positive sizes (rows, columns), got {list(shape)}")
    for name in ("mri_channels", "dxa_channels"):
        if not getattr(config, name):
            raise ValueError(f"stage.{name} must name at least one dataset")
    return CollectParams(
        target_spacing=float(config.target_spacing),
        scaling=config.scaling.value if hasattr(config.scaling, "value") else str(config.scaling),
        mri_shape=(int(config.mri_shape[0]), int(config.mri_shape[1])),
        dxa_shape=(int(config.dxa_shape[0]), int(config.dxa_shape[1])),
        mri_channels=tuple(config.mri_channels),
        dxa_channels=tuple(config.dxa_channels),
    )


def run(config: CollectConfig, *, options: RunOptions, writer: Writer, qc: bool = True) -> list[StageSummary]:
    started = time.monotonic()
    params = make_params(config)
    assign_split, split_settings = split_assigner(config)
    hdf5 = writer if isinstance(writer, Hdf5Writer) else Hdf5Writer()
    if not isinstance(writer, Hdf5Writer):
        log.info("collect: the collection is always HDF5 (writer=%s only applies to the other stages)", writer.name)

    mri = filter_by_eid(find_outputs(Path(config.input_dir)), only=options.only_eids, exclude=options.exclude_eids)
    dxa = filter_by_eid(find_outputs(Path(config.dxa_dir)), only=options.only_eids, exclude=options.exclude_eids)
    pairing = collect.pair_by_visit(mri, dxa)
    _log_unpaired(pairing)
    pairs = [p for p in pairing.pairs if in_shard(p.mri.stem, index=options.shard_index, count=options.shard_count)]
    splits = [assign_split(pair.eid) for pair in pairs]
    if not pairs:
        log.warning("collect: no MRI slab and DXA output of the same visit in this shard (%s, %s)",
                    config.input_dir, config.dxa_dir)

    folders = StageFolders(output=Path(config.output_dir), stage="collect")
    try:
        folders.scratch.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"collect: cannot write to {folders.output}: {error.strerror}") from None
    remove_stale_scratch(folders.scratch)
    _warn_other_shard_counts(folders.output, options.shard_count)
    final = folders.output / shard_file_name(options.shard_index, options.shard_count)
    fingerprint = settings_fingerprint(
        {"stage": "collect", "version": VERSION, **params.__dict__, "split": _jsonable_split(split_settings)}
    )
    signatures = [[*_signature(p.mri), *_signature(p.dxa), s] for p, s in zip(pairs, splits, strict=True)]
    content = settings_fingerprint({"settings": fingerprint, "pairs": signatures})
    manifest = ManifestWriter(
        folders.meta, stage="collect", shard_index=options.shard_index, shard_count=options.shard_count
    )
    try:
        if not options.overwrite and _unchanged(final, hdf5, content):
            for pair, split in zip(pairs, splits, strict=True):
                manifest.add(_row(pair, SKIPPED, output=final, reason="done earlier with the same inputs and settings",
                                  fp=fingerprint, qc={"dxa_input": str(pair.dxa.path), "split": split}))
        else:
            try:
                rows = _build(final, pairs, splits, params=params, split_settings=split_settings,
                              fingerprint=fingerprint, content=content, options=options, folders=folders, hdf5=hdf5)
            except OSError as error:  # the shard file could not be written: no pair is collected
                for pair, split in zip(pairs, splits, strict=True):
                    manifest.add(_row(pair, FAILED, reason=f"shard file not written: {error}", fp=fingerprint,
                                      qc={"dxa_input": str(pair.dxa.path), "split": split}))
                raise OutputError(f"collect: cannot write {final}: {error}") from None
            for row in rows:  # added once the shard file is in place, so that an ok row means a collected pair
                manifest.add(row)
    finally:
        manifest.flush()

    rows = manifest.rows
    summary = StageSummary(
        name="collect",
        rows=rows,
        manifest=manifest.path,
        output_dir=folders.output,
        seconds=time.monotonic() - started,
        counts={status: sum(row.status == status for row in rows) for status in (OK, FAILED, SKIPPED)},
    )
    log.info("%s\n  collection: %s", format_summary(summary), final)
    return [summary]


def _build(
    final: Path,
    pairs: list[collect.Pair],
    splits: list[str],
    *,
    params: CollectParams,
    split_settings: dict[str, Any],
    fingerprint: str,
    content: str,
    options: RunOptions,
    folders: StageFolders,
    hdf5: Hdf5Writer,
) -> list[ManifestRow]:
    """Fit every pair (in parallel) and write the shard file in (eid, instance) order, atomically; one row per pair."""
    log.info("collect: %d pairs in shard %d of %d", len(pairs), options.shard_index, options.shard_count)
    codec = ChunkCodec(compression=hdf5.compression, level=hdf5.compression_level, shuffle=hdf5.shuffle)
    arguments = [(index, pair, splits[index], params, codec) for index, pair in enumerate(pairs)]
    written: list[int] = []
    rows: list[ManifestRow] = []
    with (
        atomic_file(final, scratch_dir=folders.scratch) as tmp,
        hdf5.open(tmp, "w") as handle,
        tqdm(total=len(pairs), desc="collect", unit="pair", disable=None) as progress,
    ):
        datasets = _create_datasets(handle, len(pairs), params=params, hdf5=hdf5)
        for index, result, reason, seconds in imap_unordered(
            _fit_one, arguments, n_jobs=min(options.n_jobs, max(1, len(pairs)))
        ):
            progress.update()
            pair = pairs[index]
            if result is None:
                log.error("collect: %s failed: %s", pair.mri.stem, reason)
                rows.append(_row(pair, FAILED, reason=reason, fp=fingerprint, seconds=seconds,
                                 qc={"dxa_input": str(pair.dxa.path), "split": splits[index]}))
                continue
            values, qc = result
            _write_record(datasets, index, values)
            written.append(index)
            rows.append(_row(pair, OK, output=final, fp=fingerprint, seconds=seconds,
                             qc={**qc, "split": splits[index]}))
        _compact(datasets, sorted(written))
        n_failed = len(pairs) - len(written)
        attrs = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "mri_channels": list(params.mri_channels),
            "dxa_channels": list(params.dxa_channels),
            "target_spacing": params.target_spacing,
            "scaling": params.scaling,
            "interpolation": "bicubic as torch.nn.functional.interpolate(align_corners=False), a=-0.75",
            "normalisation": "none applied; normalised = (x - range[..., 0]) / (range[..., 1] - range[..., 0] + 1e-5)",
            "split_method": split_settings["method"],
            "split_settings": _jsonable_split(split_settings),
            "shard_index": options.shard_index,
            "shard_count": options.shard_count,
            "n_failed": n_failed,
            "settings_fingerprint": fingerprint,
            "pipeline_version": __version__,
            "content_fingerprint": content,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        for key, value in attrs.items():
            handle.attrs[key] = value if not isinstance(value, (dict, list)) else _attr(value)
    return sorted(rows, key=lambda row: (row.eid, row.instance))


def _create_datasets(handle: h5py.File, n: int, *, params: CollectParams, hdf5: Hdf5Writer) -> dict[str, h5py.Dataset]:
    """Preallocate every per-pair dataset with ``n`` rows (resizable on axis 0)."""
    compression: dict[str, Any] = {}
    if hdf5.compression:
        compression = {"compression": hdf5.compression, "shuffle": hdf5.shuffle}
        if hdf5.compression == "gzip":
            compression["compression_opts"] = hdf5.compression_level
    images = {
        "mri": (len(params.mri_channels), *params.mri_shape),
        "dxa": (len(params.dxa_channels), *params.dxa_shape),
    }
    datasets = {}
    for name, shape in images.items():
        datasets[name] = handle.create_dataset(
            name, shape=(n, *shape), maxshape=(None, *shape), chunks=(1, *shape), dtype=np.float32, **compression
        )
        datasets[f"{name}_range"] = handle.create_dataset(
            f"{name}_range", shape=(n, shape[0], 2), maxshape=(None, shape[0], 2), dtype=np.float32
        )
    small = {
        "eids": ((), np.int64),
        "instances": ((), np.int32),
        "splits": ((), "S16"),
        "mri_source": ((), f"S{SOURCE_NAME_BYTES}"),
        "dxa_source": ((), f"S{SOURCE_NAME_BYTES}"),
        "mri_source_spacing": ((3,), np.float32),
        "dxa_source_spacing": ((2,), np.float32),
        "mri_pixel_spacing": ((2,), np.float32),
        "dxa_pixel_spacing": ((2,), np.float32),
        "mri_origin": ((3,), np.float32),
        "dxa_origin": ((2,), np.float32),
        "mri_slab_row": ((), np.int32),
    }
    for name, (shape, dtype) in small.items():
        datasets[name] = handle.create_dataset(name, shape=(n, *shape), maxshape=(None, *shape), dtype=dtype,
                                               chunks=(max(1, min(n, 1024)), *shape))
    datasets["mri"].attrs["channels"] = list(params.mri_channels)
    datasets["dxa"].attrs["channels"] = list(params.dxa_channels)
    datasets["mri_origin"].attrs["meaning"] = (
        "LPS mm of MRI pixel [0, 0]; rows run head->feet (z falls), columns right->left (x rises)"
    )
    datasets["dxa_origin"].attrs["meaning"] = (
        "(row, column) mm of DXA pixel [0, 0] from the centre of the stored image's pixel [0, 0]"
    )
    return datasets


def _write_record(datasets: dict[str, h5py.Dataset], index: int, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if isinstance(value, Encoded):
            datasets[name].id.write_direct_chunk((index, *(0,) * (datasets[name].ndim - 1)), value.data)
        else:
            datasets[name][index] = value


def _compact(datasets: dict[str, h5py.Dataset], written: list[int]) -> None:
    """Close the gaps left by failed pairs, keeping (eid, instance) order, and trim every dataset."""
    for position, index in enumerate(written):
        if position != index:
            for dataset in datasets.values():
                if dataset.chunks is not None and dataset.chunks[0] == 1:  # one item per chunk: move the bytes
                    zeros = (0,) * (dataset.ndim - 1)
                    mask, data = dataset.id.read_direct_chunk((index, *zeros))
                    dataset.id.write_direct_chunk((position, *zeros), data, filter_mask=mask)
                else:
                    dataset[position] = dataset[index]
    for dataset in datasets.values():
        dataset.resize(len(written), axis=0)


def _unchanged(final: Path, hdf5: Hdf5Writer, content: str) -> bool:
    """Whether the shard file exists, opens, holds these pairs with these settings, and had no failures."""
    if not final.is_file():
        return False
    try:
        with hdf5.open(final) as handle:
            return handle.attrs.get("content_fingerprint") == content and int(handle.attrs.get("n_failed", 1)) == 0
    except (OSError, KeyError, ValueError):
        return False


def _signature(item: InputFile) -> list[Any]:
    """What identifies an input file's content cheaply: name, size and modification time."""
    stat = item.path.stat()
    return [item.path.name, stat.st_size, stat.st_mtime_ns]


def _row(pair: collect.Pair, status: str, *, output: Path | None = None, reason: str = "", fp: str = "",
         seconds: float = 0.0, qc: dict[str, Any] | None = None) -> ManifestRow:
    return ManifestRow(
        input=str(pair.mri.path),
        status=status,
        eid=pair.eid,
        instance=pair.instance,
        output="" if output is None else str(output),
        reason=reason,
        seconds=seconds,
        settings_fingerprint=fp,
        qc=qc or {},
    )


def _log_unpaired(pairing: collect.Pairing) -> None:
    for kind, missing, items in (("MRI slab", "DXA", pairing.mri_only), ("DXA", "MRI slab", pairing.dxa_only)):
        if items:
            shown = ", ".join(item.stem for item in items[:5]) + (" ..." if len(items) > 5 else "")
            log.warning("collect: %d %s output(s) have no %s output for the same visit: %s",
                        len(items), kind, missing, shown)


def _warn_other_shard_counts(folder: Path, count: int) -> None:
    others = sorted(
        path.name for path in folder.glob("collection-shard*of*.h5") if not path.name.endswith(f"of{count}.h5")
    )
    if others:
        log.warning("collect: %s holds shard files of another shard count (%s); a reader given the folder refuses "
                    "mixed counts: remove the stale ones", folder, ", ".join(others[:4]))


def _jsonable_split(settings: dict[str, Any]) -> dict[str, Any]:
    if settings["method"] == "lists":
        return {"method": "lists", "lists": {name: len(eids) for name, eids in settings["lists"].items()},
                "digest": settings_fingerprint({name: sorted(eids) for name, eids in settings["lists"].items()})}
    return {"method": "hash", "fractions": list(settings["fractions"]), "seed": settings["seed"]}


def _attr(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return json.dumps(value)
