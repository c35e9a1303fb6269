"""One ukbfetch download at a time per root and application: a second run (a resubmission, a second terminal)
waits for the first, so that together they never exceed UK Biobank's 10 simultaneous downloads per application and
never fetch a file twice (once it holds the lock, the second run finds the first's files in place and skips them).

The lock is an exclusive ``flock`` on ``<download metadata folder>/download-<application>.lock``; it dies with its
process (a killed run frees it). On NFS, Linux maps ``flock`` to a POSIX lock the server shares between nodes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def lock_path(folder: Path, application: str) -> Path:
    name = "".join(ch for ch in application if ch.isalnum()) or "unknown-application"
    return folder / f"download-{name}.lock"


@contextlib.contextmanager
def download_lock(folder: Path, application: str) -> Iterator[float]:
    """Hold the root's download lock for ``application``, waiting (with one log line) while another run holds it;
    yields the seconds waited."""
    folder.mkdir(parents=True, exist_ok=True)
    path = lock_path(folder, application)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another run"
            log.warning("download: %s is downloading for application %s into this root; waiting for it to finish "
                        "(UK Biobank allows 10 simultaneous downloads per application)", holder, application)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield time.monotonic() - started
    finally:
        os.close(fd)  # releases the lock
