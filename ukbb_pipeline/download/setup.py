"""Setting up a download: the checked settings, the requests (EID list x fields x instances) and the tool."""

from __future__ import annotations

import logging
from pathlib import Path

from ukbb_pipeline.config import DownloadBackend, DownloadConfig
from ukbb_pipeline.download.bulk import BulkRequest, RequestSource, keep_eids, read_request_file, requests_for
from ukbb_pipeline.download.dx import DxBackend
from ukbb_pipeline.download.fetch import Backend
from ukbb_pipeline.download.keyfile import check_key_file
from ukbb_pipeline.download.tools import find_executable
from ukbb_pipeline.download.ukbfetch import UkbfetchBackend

log = logging.getLogger(__name__)

MAX_PARALLEL = 10  # UK Biobank: at most 10 simultaneous downloads per application (since 03/2019)


def check_settings(config: DownloadConfig, *, shard_count: int) -> None:
    """Refuse settings that would break UK Biobank's limits or cannot work, naming the setting."""
    ukbfetch = config.backend == DownloadBackend.ukbfetch  # UK Biobank's limits; dx on the platform has none
    if shard_count > 1 and ukbfetch:
        raise ValueError(
            f"download refuses shard.count={shard_count}: UK Biobank's limit of {MAX_PARALLEL} simultaneous "
            "downloads is per application, so parallel shards would exceed it; run one download with stage.parallel"
        )
    if config.parallel < 1 or (ukbfetch and config.parallel > MAX_PARALLEL):
        raise ValueError(
            f"stage.parallel={config.parallel} is refused: UK Biobank allows 1 to {MAX_PARALLEL} simultaneous "
            "downloads per application" if ukbfetch else f"stage.parallel={config.parallel} is refused: must be >= 1"
        )
    if config.retries < 0 or config.retry_backoff_s < 0 or config.timeout_per_file_s <= 0:
        raise ValueError("stage.retries and stage.retry_backoff_s must be >= 0, stage.timeout_per_file_s > 0")
    if not config.fields or not config.instances:
        raise ValueError("stage.fields and stage.instances must each list at least one value")


def make_requests(config: DownloadConfig, *, only: frozenset[int] | None,
                  exclude: frozenset[int] | None) -> list[BulkRequest]:
    """The files to fetch: stage.eids_file (or the top-level eids_file) x fields x instances, minus exclusions."""
    if config.eids_file is not None:
        source = read_request_file(Path(config.eids_file))
    elif only is not None:
        source = RequestSource(eids=tuple(sorted(only)))
    else:
        raise ValueError("download needs stage.eids_file=<an EID list or a ukbconv .bulk file> (or eids_file=...)")
    requested = requests_for(source, fields=config.fields, instances=config.instances)
    kept = keep_eids(requested, only=only, exclude=exclude)
    if len(kept) < len(requested):
        log.info("download: %d of %d requested files left out by eids_file / exclude_eids_file",
                 len(requested) - len(kept), len(requested))
    return kept


def make_backend(config: DownloadConfig) -> Backend:
    """The configured tool, checked before any work: the executable is there, and so is ukbfetch's key file."""
    if config.backend == DownloadBackend.dx:
        folders = {int(field): folder for field, folder in config.dx_folders.items()}
        missing = [field for field in config.fields if field not in folders]
        if missing:
            raise ValueError(f"no stage.dx_folders entry for field(s) {missing}")
        return DxBackend(
            executable=find_executable(config.dx, setting="stage.dx"),
            folders=folders,
            project=config.dx_project,
            timeout_per_file_s=config.timeout_per_file_s,
        )
    return UkbfetchBackend(
        executable=find_executable(config.ukbfetch, setting="stage.ukbfetch"),
        key=check_key_file(Path(config.key_file)),
        timeout_per_file_s=config.timeout_per_file_s,
    )
