"""ukbfetch's key file (line 1 the application id, line 2 a 64- or legacy 24-character password).

Only the path is ever passed on, logged or saved. The content is read once, to check its shape and to scrub it
out of anything a tool prints, and it never appears in a message, a ``repr`` or a manifest.
"""

from __future__ import annotations

import logging
import stat
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PASSWORD_LENGTHS = (64, 24)
_MIN_SCRUB_LENGTH = 8  # shorter lines (the application id) are not secret and would mangle ordinary numbers


class KeyFileError(ValueError):
    """A missing or malformed key file; the message names the path, never the content."""


@dataclass(frozen=True)
class KeyFile:
    path: Path  # absolute: the tool runs in its own scratch folder
    application: str = ""  # line 1, the application id: not secret; UK Biobank's limits are per application
    _secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def scrub(self, text: str) -> str:
        """``text`` with every secret line of the key file replaced by ``<key>``."""
        for secret in self._secrets:
            text = text.replace(secret, "<key>")
        return text


def check_key_file(path: Path) -> KeyFile:
    """Check the key file's existence and shape; warn when users other than its owner may read it."""
    path = path.expanduser().absolute()
    if not path.is_file():
        raise KeyFileError(
            f"ukbfetch key file {path} does not exist (set stage.key_file=<path to your application's .ukbkey>)"
        )
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError as error:
        raise KeyFileError(f"ukbfetch key file {path} cannot be read ({error.strerror})") from None
    lines = [line for line in lines if line]
    if len(lines) < 2 or not lines[0].isdigit() or len(lines[1]) not in PASSWORD_LENGTHS:
        raise KeyFileError(
            f"ukbfetch key file {path} is not an application id line followed by a 64- or 24-character key line"
        )
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "ukbfetch key file %s is readable by other users (mode %s); restrict it with: chmod 600 %s",
            path, stat.filemode(mode), path,
        )
    secrets = tuple(sorted({line for line in lines if len(line) >= _MIN_SCRUB_LENGTH}, key=len, reverse=True))
    return KeyFile(path=path, application=lines[0], _secrets=secrets)
