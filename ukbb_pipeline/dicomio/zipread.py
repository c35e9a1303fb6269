"""Reading a bulk zip in memory, once, front to back, within bounds.

The whole file is read sequentially into memory in a few large reads (:func:`read_whole`), never by member offsets:
FUSE mounts such as the Research Analysis Platform's dxfuse prefetch only files read front to back, and only 10 at
a time, so at most :data:`MAX_STREAMS` zips are read at once per machine (a lock file per slot). Everything after
that is parsed from the buffer. The central directory is read by :mod:`zipfile`; each member's raw deflate stream
is then taken from the buffer and inflated by ISA-L (the ``isal`` package, 2-5x faster than zlib; zlib when it is
absent) into bytes: never extracted to disk, never handed to pydicom as a ``ZipExtFile``. The file's size and the
members' declared sizes are checked before any memory is spent, a member can never inflate past its declared size,
and its CRC-32 is checked, so a zip bomb, a lying header or damaged bytes are refused with a reason naming the
member. Members stored otherwise than plain deflate or stored (bzip2, lzma,
encrypted) go through ``ZipFile.read``. Member names are only ever used as labels, never as paths.

:meth:`ZipMembers.peek` inflates only the first bytes of a member (its DICOM header, say), so a reader can decide
from them whether the rest is needed; a peeked member's CRC is not checked, since its bytes are not used.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import socket
import struct
import sys
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType

from ukbb_pipeline.errors import InputError

inflater: ModuleType
try:  # ISA-L: the same deflate, inflated 2-5x faster; zlib's interface
    from isal import isal_zlib as inflater
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    inflater = zlib

MB = 1024 * 1024
READ_CHUNK = 64 * MB  # one read call per 64 MiB: a full-size Dixon zip (~60-120 MB) in two or three calls
MAX_STREAMS = 10  # dxfuse prefetches at most 10 files at once per machine (prefetch.go, maxNumEntriesInTable)
STREAM_NAMESPACE = "UKBB_PIPELINE_STREAM_NAMESPACE"  # a name that sets apart one group of slots (tests)
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra field length
_LOCAL_SIGNATURE = b"PK\x03\x04"


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes


def _label(name: str) -> str:
    """A member name fit for a one-line message."""
    return repr(name[-80:]) if name.isprintable() else repr(name.encode("utf-8", "replace")[-80:])


class ZipMembers:
    """The members of a zip whose name ends with ``suffix`` (case-insensitive), sizes checked against the bounds.

    Use as a context manager; ``entries`` lists the members (``zipfile.ZipInfo``) in the zip's order; :meth:`read`
    inflates one whole (size and CRC checked), :meth:`peek` its first bytes. Raises :class:`InputError` for a file
    that is not a zip, a damaged zip, or sizes over the bounds.
    """

    def __init__(
        self,
        path: Path,
        *,
        suffix: str = ".dcm",
        max_member_mb: float = 64.0,
        max_total_mb: float = 4096.0,
        max_members: int = 10000,
    ):
        self._buffer = read_whole(path, max_bytes=_file_bound(max_total_mb, max_members))
        self._archive = _open(self._buffer)
        try:
            infos = [info for info in self._archive.infolist() if info.filename.lower().endswith(suffix)]  # not "/"
            if len(infos) > max_members:
                raise InputError(f"{len(infos)} {suffix} members, more than the limit of {max_members}")
            total = sum(info.file_size for info in infos)
            if total > max_total_mb * MB:
                raise InputError(
                    f"members declare {total / MB:.0f} MB inflated, over the limit of {max_total_mb:.0f} MB"
                )
            for info in infos:
                if info.file_size > max_member_mb * MB:
                    raise InputError(
                        f"member {_label(info.filename)} declares {info.file_size / MB:.0f} MB, "
                        f"over the limit of {max_member_mb:.0f} MB"
                    )
            self.entries = infos
        except BaseException:
            self._archive.close()
            raise

    def __enter__(self) -> ZipMembers:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None):
        self._archive.close()

    def read(self, info: zipfile.ZipInfo) -> bytes:
        """The whole member, inflated; its size and CRC-32 checked."""
        try:
            if not _plain(info):
                return self._archive.read(info)
            raw = self._raw(info, info.compress_size)
            data = raw if info.compress_type == zipfile.ZIP_STORED else _inflate(raw, info.file_size)
            if len(data) != info.file_size:
                raise zipfile.BadZipFile(f"{len(data)} bytes inflated, {info.file_size} declared")
            if inflater.crc32(data) != info.CRC:
                raise zipfile.BadZipFile("bad CRC-32")
            return data
        except MemoryError:
            raise
        except Exception as error:  # BadZipFile, zlib/isal errors, EOFError, OSError ... on damaged bytes
            raise InputError(f"member {_label(info.filename)} is damaged ({_one_line(error)})") from None

    def peek(self, info: zipfile.ZipInfo, size: int) -> bytes:
        """The member's first ``size`` inflated bytes (all of it when shorter), CRC not checked; damage may show as
        an :class:`InputError` naming the member, or only when the member is read whole."""
        try:
            if not _plain(info):
                return self.read(info)[:size]
            if info.compress_type == zipfile.ZIP_STORED:
                return self._raw(info, min(size, info.compress_size))
            wanted = max(1, min(size, info.file_size))  # a max_length of 0 would mean no limit
            fed = min(info.compress_size, 2 * size + 1024)  # deflate expands incompressible bytes by <1%
            while True:
                inflate = inflater.decompressobj(-15)
                data = inflate.decompress(self._raw(info, fed), wanted)
                if len(data) >= wanted or fed >= info.compress_size or inflate.eof:
                    return data[:size]
                fed = min(info.compress_size, fed * 4)
        except MemoryError:
            raise
        except InputError:
            raise
        except Exception as error:
            raise InputError(f"member {_label(info.filename)} is damaged ({_one_line(error)})") from None

    def _raw(self, info: zipfile.ZipInfo, count: int) -> bytes:
        """``count`` bytes of the member's stored (compressed) data, after checking its local header."""
        offset, size = info.header_offset, len(self._buffer)
        if offset < 0 or offset + _LOCAL_HEADER.size + count > size:
            raise zipfile.BadZipFile("member data lies past the end of the file")
        signature, name_length, extra_length = _LOCAL_HEADER.unpack_from(self._buffer, offset)
        if signature != _LOCAL_SIGNATURE:
            raise zipfile.BadZipFile("bad local header signature")
        start = offset + _LOCAL_HEADER.size + name_length + extra_length
        name = self._buffer[offset + _LOCAL_HEADER.size : offset + _LOCAL_HEADER.size + name_length]
        if name.decode("utf-8" if info.flag_bits & 0x800 else "cp437") != info.orig_filename:  # as zipfile checks
            raise zipfile.BadZipFile("local header names another member")
        if start + count > size:
            raise zipfile.BadZipFile("truncated member data")
        return self._buffer[start : start + count]


def _plain(info: zipfile.ZipInfo) -> bool:
    """Stored or deflated, neither encrypted nor patched: read here; anything else is left to ``ZipFile.read``."""
    return info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) and not info.flag_bits & 0x61


def _inflate(raw: bytes, declared: int) -> bytes:
    """A raw deflate stream inflated, never past ``declared`` bytes; complete, or an error."""
    inflate = inflater.decompressobj(-15)
    data = inflate.decompress(raw, declared + 1)  # one byte more shows a stream that goes on (0 means no limit)
    if len(data) > declared:
        raise zipfile.BadZipFile(f"inflates past its declared {declared} bytes")
    if not inflate.eof:
        raise zipfile.BadZipFile("truncated deflate stream")
    return data


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
    with ZipMembers(
        path, suffix=suffix, max_member_mb=max_member_mb, max_total_mb=max_total_mb, max_members=max_members
    ) as members:
        for info in members.entries:
            yield Member(name=info.filename, data=members.read(info))


def _open(buffer: bytes) -> zipfile.ZipFile:
    """Open a zip held in memory, reading its central directory; every way that fails on damaged bytes is an
    :class:`InputError`."""
    try:
        return zipfile.ZipFile(io.BytesIO(buffer))
    except MemoryError:
        raise
    except Exception as error:  # BadZipFile mostly; a damaged directory also raises ValueError, IndexError, ...
        raise InputError(f"not a zip file or a damaged one ({_one_line(error)})") from None


def _file_bound(max_total_mb: float, max_members: int) -> int:
    """The largest zip file that can hold members within the bounds (stored members, a generous 4 KiB of headers
    each, and room for members not read): a larger file is refused before it is read into memory."""
    return int(max_total_mb * MB * 1.05) + max_members * 4096 + 64 * MB


def read_whole(path: Path, *, max_bytes: int) -> bytes:
    """The whole file, read front to back in calls of at most :data:`READ_CHUNK` bytes into one buffer, holding one
    of the machine's :data:`MAX_STREAMS` stream slots while reading."""
    try:
        with stream_slot(), open(path, "rb", buffering=0) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_bytes:
                raise InputError(f"the zip is {size / MB:.0f} MB, over the {max_bytes / MB:.0f} MB its bounds allow")
            buffer = bytearray(size)
            view, done = memoryview(buffer), 0
            while done < size:
                got = os.readv(handle.fileno(), [view[done : min(size, done + READ_CHUNK)]])
                if got == 0:
                    raise InputError(f"the file ended after {done} of {size} bytes (it shrank while read)")
                done += got
            return bytes(buffer)  # one copy (~10 ms per 100 MB): bytes, as pydicom and the walk expect
    except OSError as error:
        raise InputError(f"cannot open: {error.strerror or error}") from None


@contextlib.contextmanager
def stream_slot(poll_s: float = 0.02) -> Iterator[int]:
    """Hold one of :data:`MAX_STREAMS` machine-wide slots while a file is streamed; waits while all are taken.

    A slot is a Unix socket bound to an abstract name (Linux): every process of the machine sees it, it leaves no
    file anywhere (nothing is written outside the output folders), and it is released when its process ends, even
    killed. Where abstract names do not exist (not Linux) there is no dxfuse mount to spare, and no limit."""
    if not sys.platform.startswith("linux"):
        yield -1
        return
    prefix = f"\0ukbb-pipeline-stream-{os.getuid()}-{os.environ.get(STREAM_NAMESPACE, '')}-"
    first = os.getpid() % MAX_STREAMS  # spread the processes over the slots
    while True:
        for step in range(MAX_STREAMS):
            slot = (first + step) % MAX_STREAMS
            holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                holder.bind(f"{prefix}{slot}")
            except OSError as error:
                holder.close()
                if error.errno != errno.EADDRINUSE:
                    raise
                continue
            try:
                yield slot
                return
            finally:
                holder.close()  # closing the socket frees the name
        time.sleep(poll_s)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
