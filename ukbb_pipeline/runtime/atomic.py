"""Atomic writes: an output either exists whole or not at all.

Outputs are written to a temporary name in a scratch folder on the same file system and renamed into place, so a run
killed at any moment leaves no half-written file where readers (or the paper's loader) would find it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

_HOST = socket.gethostname().split(".")[0]


def scratch_name(final: Path) -> str:
    """A unique scratch name for ``final`` that :func:`remove_stale_scratch` can attribute to this process."""
    return f"{final.name}.{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


@contextlib.contextmanager
def atomic_file(final: Path, *, scratch_dir: Path) -> Iterator[Path]:
    """Yield a temporary path; on success move it to ``final`` atomically, on error remove it."""
    scratch_dir.mkdir(parents=True, exist_ok=True)
    tmp = scratch_dir / scratch_name(final)
    try:
        yield tmp
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(final: Path, *, scratch_dir: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``final`` (a folder) as a whole, on error it is removed."""
    scratch_dir.mkdir(parents=True, exist_ok=True)
    tmp = scratch_dir / scratch_name(final)
    tmp.mkdir()
    try:
        yield tmp
        final.parent.mkdir(parents=True, exist_ok=True)
        _replace_dir(tmp, final, scratch_dir=scratch_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_OCCUPIED = (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR)


def _replace_dir(tmp: Path, final: Path, *, scratch_dir: Path) -> None:
    """Move folder ``tmp`` to ``final``, replacing what is there; safe when another run writes the same output.

    A rename replaces only an empty folder, so an existing ``final`` is first renamed into the scratch folder. Another
    run writing the same output at once may move it first, or put its own there between our two renames: then its
    output (made from the same input) stays and ours is dropped.
    """
    try:
        os.replace(tmp, final)
        return
    except OSError as error:
        if error.errno not in _OCCUPIED:
            raise
    old = scratch_dir / scratch_name(final)
    try:
        with contextlib.suppress(FileNotFoundError):  # another run moved it aside first
            os.replace(final, old)
        try:
            os.replace(tmp, final)
        except OSError as error:
            if error.errno not in _OCCUPIED:
                raise
    finally:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def remove_stale_scratch(scratch_dir: Path) -> int:
    """Remove scratch files left by dead processes of this host; return how many were removed."""
    if not scratch_dir.is_dir():
        return 0
    removed = 0
    for entry in scratch_dir.iterdir():
        parts = entry.name.rsplit(".", 4)
        if len(parts) != 5 or parts[-1] != "tmp" or parts[1] != _HOST or not parts[2].isdigit():
            continue
        if _pid_alive(int(parts[2])):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
