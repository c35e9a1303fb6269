"""Reading a bulk zip in memory, once, within bounds.

Members are inflated with ``ZipFile.read`` into bytes (never extracted to disk, never handed to pydicom as a
``ZipExtFile``, whose small reads are slow before Python 3.12). Declared sizes are checked before any memory is
spent, and the inflated size can never exceed the declared one (zipfile stops there and checks the CRC), so a zip
bomb or a lying header is refused with a reason. Member names are only ever used as labels, never as paths.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ukbb_pipeline.errors import InputError

MB = 1024 * 1024


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes


def _label(name: str) -> str:
    """A member name fit for a one-line message."""
    return repr(name[-80:]) if name.isprintable() else repr(name.encode("utf-8", "replace")[-80:])


def iter_members(
    path: Path,
    *,
    suffix: str = ".dcm",
    max_member_mb: float = 64.0,
    max_total_mb: float = 4096.0,
    max_members: int = 10000,
) -> Iterator[Member]:
    """Yield the members of ``path`` whose name ends with ``suffix`` (case-insensitive), inflated.

    Raises :class:`InputError` for a file that is not a zip, a damaged zip, or sizes over the bounds.
    """
    archive = _open(path)
    with archive:
        infos = [info for info in archive.infolist() if info.filename.lower().endswith(suffix)]  # folders end in "/"
        if len(infos) > max_members:
            raise InputError(f"{len(infos)} {suffix} members, more than the limit of {max_members}")
        total = sum(info.file_size for info in infos)
        if total > max_total_mb * MB:
            raise InputError(f"members declare {total / MB:.0f} MB inflated, over the limit of {max_total_mb:.0f} MB")
        for info in infos:
            if info.file_size > max_member_mb * MB:
                raise InputError(
                    f"member {_label(info.filename)} declares {info.file_size / MB:.0f} MB, "
                    f"over the limit of {max_member_mb:.0f} MB"
                )
            try:
                data = archive.read(info)
            except MemoryError:
                raise
            except Exception as error:  # BadZipFile, zlib.error, EOFError, ... on damaged bytes
                raise InputError(f"member {_label(info.filename)} is damaged ({_one_line(error)})") from None
            yield Member(name=info.filename, data=data)



def _open(path: Path) -> zipfile.ZipFile:
    """Open a zip, reading its central directory; every way that fails on damaged bytes is an :class:`InputError`."""
    try:
        return zipfile.ZipFile(path)
    except OSError as error:
        raise InputError(f"cannot open: {error.strerror or error}") from None
    except MemoryError:
        raise
    except Exception as error:  # BadZipFile mostly; a damaged directory also raises ValueError, IndexError, ...
        raise InputError(f"not a zip file or a damaged one ({_one_line(error)})") from None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
