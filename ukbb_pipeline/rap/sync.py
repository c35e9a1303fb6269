"""The job's local copy of the destination folder, and the uploads that keep the project in step with it.

Before the stage runs, every file already in the destination is laid out locally as a symbolic link into the
project mount (:func:`mirror`), so the stage judges what is done exactly as a local re-run does (the output exists,
opens, and was made from the same input with the same settings). Text files are copied instead (a run may append
to them), manifests with their paths rewritten from the canonical ``/mnt/project/<folder>`` to this job's folders.
While the stage runs, and once more at the end whatever its outcome, :class:`Uploader` uploads every regular file
the stage wrote (symbolic links are what was there already), in the same layout; a new version of a file replaces
the old one, which is then removed. A re-run therefore uploads nothing twice, and a job restarted after a spot
interruption finishes only what is missing.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from ukbb_pipeline.rap.dx import Dx, DxError

log = logging.getLogger(__name__)

CANONICAL_MOUNT = "/mnt/project"  # where every platform job sees the project
MOUNT_VARIABLE = "UKBB_RAP_PROJECT_MOUNT"  # set only by the tests' fake platform; real jobs see /mnt/project
NOT_UPLOADED = (  # caches rebuilt from the manifests by whoever reads them; the job's own folders (its log is the
    "state.csv", "log-folders.txt", "output-folders.txt")  # platform's, dx watch), appended by every job at once
SCRATCH = "tmp"  # the stages' scratch folders
COPIED = (".txt", ".csv", ".json", ".yaml", ".log")  # mirrored as copies


def project_mount() -> Path:
    return Path(os.environ.get(MOUNT_VARIABLE, CANONICAL_MOUNT))


def in_project_mount(path: Path) -> bool:
    """Whether ``path`` is a file of the project seen through its read-only mount: in a platform job, a mirrored
    file is a link to one; removing the link is how the job removes the file from the project (:class:`Uploader`),
    and the file itself is never touched."""
    return path.is_relative_to(project_mount())


def relative(obj: dict[str, Any], folder: str) -> str | None:
    """An object's path below ``folder`` (``mris-processed/x.h5``), or None when it is not below it."""
    full = f"{obj['folder'].rstrip('/')}/{obj['name']}"
    prefix = folder.rstrip("/") + "/"
    return full[len(prefix):] if full.startswith(prefix) else None


def wanted(path: str) -> bool:
    parts = path.split("/")
    return parts[-1] not in NOT_UPLOADED and SCRATCH not in parts[:-1] and not parts[-1].startswith(".")


def is_manifest(path: str) -> bool:
    return "manifest" in path.rsplit("/", 1)[-1] and path.endswith(".csv")


def rewrite(text: str, pairs: list[tuple[str, str]]) -> str:
    for old, new in pairs:
        text = text.replace(old, new)
    return text


def mirror(listing: list[dict[str, Any]], *, folder: str, mount: Path, local: Path) -> dict[str, list[dict]]:
    """Lay the destination's files out under ``local``; return path -> the file objects there, oldest first."""
    versions: dict[str, list[dict]] = defaultdict(list)
    for obj in sorted(listing, key=lambda o: o.get("modified", 0)):
        path = relative(obj, folder)
        if path is not None and wanted(path):
            versions[path].append(obj)
    pairs = [(f"{CANONICAL_MOUNT}{folder.rstrip('/')}", str(local)), (CANONICAL_MOUNT, str(mount))]
    for path, objs in versions.items():
        source = mount / folder.strip("/") / path
        if len(objs) > 1 or not source.is_file():
            continue  # a new version in the making, or uploaded after this job's mount was taken
        target = local / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if is_manifest(path):
            target.write_text(rewrite(source.read_text(encoding="utf-8"), pairs), encoding="utf-8")
        elif path.endswith(COPIED):  # text a run may append to: a link would write into the read-only mount
            shutil.copyfile(source, target)
        else:
            target.symlink_to(source)
    return dict(versions)


def copies(local: Path) -> dict[str, tuple[int, int]]:
    """The regular files a mirror laid out (copies, not links), as the uploader records what it has uploaded."""
    found = {}
    for root, _, names in os.walk(local):
        for name in names:
            full = Path(root) / name
            if not full.is_symlink():
                stat = full.stat()
                found[full.relative_to(local).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return found


class Uploader:
    """Uploads what the stage writes under ``local`` into ``project:folder``, each version once."""

    def __init__(self, dx: Dx, *, project: str, folder: str, local: Path, mount: Path,
                 versions: dict[str, list[dict]]):
        self.dx, self.project, self.folder, self.local, self.mount = dx, project, folder, local, mount
        self.versions = versions
        self.done: dict[str, tuple[int, int]] = copies(local)  # path -> (size, mtime_ns) uploaded or mirrored
        self.uploaded: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def sweep(self, *, final: bool) -> None:
        """Upload the new files; manifests (rewritten while the stage runs) only in the final sweep."""
        with self._lock:
            for path in sorted(self._new_files(final=final)):
                try:
                    self._upload(path)
                except (DxError, OSError) as error:
                    self.errors.append(f"{path}: {error}")
                    log.error("upload of %s failed: %s", path, error)

    def _new_files(self, *, final: bool) -> list[str]:
        found = []
        for root, _, names in os.walk(self.local):
            for name in names:
                full = Path(root) / name
                path = full.relative_to(self.local).as_posix()
                if full.is_symlink() or not wanted(path) or (is_manifest(path) and not final):
                    continue
                stat = full.stat()
                if self.done.get(path) != (stat.st_size, stat.st_mtime_ns):
                    found.append(path)
        return found

    def _upload(self, path: str) -> None:
        full = self.local / path
        stat = full.stat()
        older = [obj["id"] for obj in self.versions.get(path, [])]
        if is_manifest(path):
            pairs = [(str(self.local), f"{CANONICAL_MOUNT}{self.folder.rstrip('/')}"),
                     (str(self.mount), CANONICAL_MOUNT)]
            with tempfile.TemporaryDirectory() as scratch:
                copy = Path(scratch) / full.name
                copy.write_text(rewrite(full.read_text(encoding="utf-8"), pairs), encoding="utf-8")
                new_id = self._put(copy, path)
        else:
            same = self.mount / self.folder.strip("/") / path
            if len(older) == 1 and same.is_file() and same.stat().st_size == stat.st_size and \
                    stat.st_size < 16 * 2**20 and same.read_bytes() == full.read_bytes():
                self.done[path] = (stat.st_size, stat.st_mtime_ns)  # redrawn identical: nothing to upload
                return
            new_id = self._put(full, path)
        self.done[path] = (stat.st_size, stat.st_mtime_ns)
        self.versions[path] = [{"id": new_id}]
        try:
            self.dx.remove(self.project, older)  # the new version is in place: the old ones go
        except DxError as error:  # already removed (by an earlier try of this job): nothing left to do
            log.warning("could not remove the replaced version of %s: %s", path, error)

    def _put(self, source: Path, path: str) -> str:
        folder, _, name = f"{self.folder.rstrip('/')}/{path}".rpartition("/")
        new_id = self.dx.upload(source, project=self.project, folder=folder or "/", name=name)
        self.uploaded.append(path)
        return new_id

    def removed(self) -> None:
        """Files the stage removed (a superseded contact sheet) are removed from the project too."""
        for path, objs in list(self.versions.items()):
            if not os.path.lexists(self.local / path) and wanted(path):
                self.dx.remove(self.project, [obj["id"] for obj in objs])
                del self.versions[path]

    def run_in_background(self, interval_s: float) -> threading.Thread:
        def loop() -> None:
            while not self._stop.wait(interval_s):
                self.sweep(final=False)

        thread = threading.Thread(target=loop, name="uploader", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def clear(local: Path) -> None:
    shutil.rmtree(local, ignore_errors=True)
