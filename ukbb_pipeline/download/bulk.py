"""Download requests: one per bulk file ``<eid>_<field>_<instance>_<array>``, read from an EID list or a ``.bulk``
file, and split into tool calls of at most 1000 files that keep every parallel process busy."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.ukbb import DXA_FIELD, EID, MRI_FIELD

MAX_FILES_PER_CALL = 1000  # ukbfetch: "Cannot download more than 1000 files in one run"
RAW_SUBFOLDERS = {DXA_FIELD: "dxas", MRI_FIELD: "mris"}  # other fields go to a folder named after the field

_EID = EID
_DATAFILE = re.compile(r"^(?P<field>\d+)_(?P<instance>\d+)_(?P<array>\d+)$")
_HEADERS = {"eid", "f.eid", "participant id"}

T = TypeVar("T")


@dataclass(frozen=True, order=True)
class BulkRequest:
    """One bulk file to fetch, as ukbfetch names it."""

    eid: int
    field: int
    instance: int
    array: int = 0

    @property
    def datafile(self) -> str:
        return f"{self.field}_{self.instance}_{self.array}"

    @property
    def stem(self) -> str:
        return f"{self.eid}_{self.datafile}"

    @property
    def file_name(self) -> str:
        return f"{self.stem}.zip"

    @property
    def bulk_line(self) -> str:
        return f"{self.eid} {self.datafile}"


@dataclass(frozen=True)
class RequestSource:
    """What a request file holds: EIDs (an EID list) or ready requests (a ukbconv ``.bulk`` file)."""

    eids: tuple[int, ...] = ()
    requests: tuple[BulkRequest, ...] = ()

    @property
    def is_bulk(self) -> bool:
        return bool(self.requests)


def read_request_file(path: Path) -> RequestSource:
    """Read an EID list (every EID on a line, other columns ignored) or a ``.bulk`` file (``<eid> <field>_<i>_<a>``).

    A byte-order mark, blank lines, ``#`` comments and an ``eid`` header are allowed. Any other bad line is an
    :class:`InputError` naming its line number: a request list that is silently half read downloads the wrong cohort.
    """
    if not path.is_file():
        raise FileNotFoundError(f"EID list {path} does not exist")
    eids: dict[int, int] = {}  # eid -> line number (an ordered set)
    requests: dict[BulkRequest, int] = {}
    bad: list[str] = []
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    for number, raw in enumerate(lines, start=1):
        tokens = [token.strip("\"'") for token in re.split(r"[\s,;]+", raw.split("#", 1)[0].strip()) if token]
        if not tokens or (number == 1 and " ".join(tokens).lower() in _HEADERS):
            continue
        if not _EID.match(tokens[0]):
            bad.append(_bad_line(number, raw, "not an EID"))
            continue
        datafile = tokens[1] if len(tokens) > 1 and "_" in tokens[1] else None
        if datafile is None:  # every EID on the line (1000002,1000003,1000004)
            for token in tokens:
                if _EID.match(token):
                    eids.setdefault(int(token), number)
            continue
        match = _DATAFILE.match(datafile)
        if match is None:
            bad.append(_bad_line(number, raw, "datafile is not <field>_<instance>_<array>"))
            continue
        request = BulkRequest(int(tokens[0]), *(int(value) for value in match.groups()))
        requests.setdefault(request, number)
    if requests and eids:  # a .bulk file with lines that name no datafile
        bad.extend(_bad_line(number, lines[number - 1], "no <field>_<instance>_<array>") for number in eids.values())
    if bad:
        bad.sort(key=lambda text: int(text.split(" ", 2)[1]))
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise InputError(f"EID list {path}: bad lines: {shown}")
    return RequestSource(eids=tuple(eids), requests=tuple(requests))


def _bad_line(number: int, raw: str, why: str) -> str:
    return f"line {number} ({raw.strip()[:40]!r}: {why})"


def requests_for(
    source: RequestSource, *, fields: Sequence[int], instances: Sequence[int], array: int = 0
) -> list[BulkRequest]:
    """The files to fetch: each EID x field x instance, or the ``.bulk`` file's lines of those fields and instances."""
    if source.is_bulk:
        return [r for r in source.requests if r.field in fields and r.instance in instances]
    return [
        BulkRequest(eid, field, instance, array) for eid in source.eids for field in fields for instance in instances
    ]


def keep_eids(
    requests: Iterable[BulkRequest], *, only: frozenset[int] | None, exclude: frozenset[int] | None
) -> list[BulkRequest]:
    """Drop requests outside ``only`` (when given) and inside ``exclude`` (e.g. a withdrawal list)."""
    return [r for r in requests if (only is None or r.eid in only) and not (exclude and r.eid in exclude)]


def raw_path(output_dir: Path, request: BulkRequest) -> Path:
    """Where a downloaded zip lives: ``<output_dir>/dxas/``, ``mris/``, or a folder named after another field."""
    return output_dir / RAW_SUBFOLDERS.get(request.field, str(request.field)) / request.file_name


def split_into_calls(items: Sequence[T], *, parallel: int, max_per_call: int = MAX_FILES_PER_CALL) -> list[list[T]]:
    """Split ``items`` into consecutive calls of at most ``max_per_call``, at least ``parallel`` of them when there
    are enough items, with sizes differing by at most one (48 files, parallel 10: ten calls of 5 or 4 files)."""
    if parallel < 1 or max_per_call < 1:
        raise ValueError(f"parallel and max_per_call must be >= 1, got {parallel} and {max_per_call}")
    n_calls = min(len(items), max(parallel, math.ceil(len(items) / max_per_call)))
    if n_calls == 0:
        return []
    size, extra = divmod(len(items), n_calls)
    calls, start = [], 0
    for index in range(n_calls):
        end = start + size + (index < extra)
        calls.append(list(items[start:end]))
        start = end
    return calls


def write_bulk_file(path: Path, requests: Iterable[BulkRequest]) -> int:
    """Write a ukbfetch batch file, one ``<eid> <field>_<instance>_<array>`` per line; return the line count."""
    lines = [request.bulk_line for request in requests]
    path.write_text("".join(f"{line}\n" for line in lines), encoding="ascii")
    return len(lines)
