"""Setting up a download: the requests (EID list x fields x instances) and the tool, from settings already checked
by :func:`ukbb_pipeline.config.validate`."""

from __future__ import annotations

import logging
from pathlib import Path

from ukbb_pipeline.config import MAX_DOWNLOADS, DownloadBackend, DownloadConfig
from ukbb_pipeline.download.bulk import BulkRequest, RequestSource, keep_eids, read_request_file, requests_for
from ukbb_pipeline.download.dx import DxBackend
from ukbb_pipeline.download.fetch import Backend
from ukbb_pipeline.download.keyfile import check_key_file
from ukbb_pipeline.download.tools import find_executable
from ukbb_pipeline.download.ukbfetch import UkbfetchBackend
from ukbb_pipeline.rap.dx import Dx
from ukbb_pipeline.rap.inputs import field_folder

log = logging.getLogger(__name__)

MAX_PARALLEL = MAX_DOWNLOADS  # UK Biobank's limit; the settings are checked in ukbb_pipeline.config.validate


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
        executable = find_executable(config.dx, setting="stage.dx")
        folders = {int(field): folder for field, folder in config.dx_folders.items()}
        missing = [field for field in config.fields if field not in folders]
        if missing:  # found by their field_id property, never guessed
            if config.dx_project is None:
                raise ValueError(f"no stage.dx_folders entry for field(s) {missing}, and no stage.dx_project in "
                                 "which to find them by their field_id property")
            try:
                for field in missing:
                    folders[field] = field_folder(Dx(executable), config.dx_project, field)
            except ValueError as error:
                raise ValueError(f"{error} with stage.dx_folders.{missing[0]}=<folder>") from None
        return DxBackend(
            executable=executable,
            folders=folders,
            project=config.dx_project,
            timeout_per_file_s=config.timeout_per_file_s,
        )
    return UkbfetchBackend(
        executable=find_executable(config.ukbfetch, setting="stage.ukbfetch"),
        key=check_key_file(Path(config.key_file)),
        timeout_per_file_s=config.timeout_per_file_s,
    )
