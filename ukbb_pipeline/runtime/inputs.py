"""Finding a stage's inputs and reading EID lists.

The unit of work is one bulk file ``<eid>_<field>_<instance>_<array>.<ext>``; its stem names every output, so the
visit (instance) is never lost. Inputs sit either in one flat folder or in the Research Analysis Platform's nested
layout ``<first two digits of eid>/<eid>_<field>_<instance>_<array>.zip``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from pathlib import Path

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.ukbb import EID_PATTERN

log = logging.getLogger(__name__)

_STEM = re.compile(rf"^(?P<eid>{EID_PATTERN})_(?P<field>\d+)_(?P<instance>\d+)_(?P<array>\d+)$")


@dataclass(frozen=True, order=True)
class InputFile:
    """One input file. ``eid`` etc. are None when its name does not follow the UK Biobank pattern."""

    path: Path
    stem: str
    eid: int | None = None
    field: int | None = None
    instance: int | None = None
    array: int | None = None


def parse_input(path: Path) -> InputFile:
    """Describe ``path`` from its name; names off the UK Biobank pattern keep ``eid=None``."""
    stem = path.name.split(".", 1)[0]
    match = _STEM.match(stem)
    if match is None:
        return InputFile(path=path, stem=stem)
    return InputFile(path=path, stem=stem, **{key: int(value) for key, value in match.groupdict().items()})


def missing_folder(folder: Path, *, made_by: str = "", key: str = "stage.input_dir") -> FileNotFoundError:
    """The error for an input folder that does not exist, naming the stage that makes it and the key that moves it."""
    if not made_by:
        return FileNotFoundError(f"input folder {folder} does not exist (set {key}=<the folder>)")
    return FileNotFoundError(f"input folder {folder} does not exist: stage={made_by} makes it (run that stage first "
                             f"with the same paths.root, or set {key}=<the folder>)")


def log_passed_over(folder: Path, entries: Sequence[str], *, looked_for: str) -> None:
    """One warning counting and naming what discovery passed over (an ``.ZIP``, a sub-folder), so nothing is silent."""
    if entries:
        shown = ", ".join(repr(name) for name in entries[:5]) + (f" and {len(entries) - 5} more"
                                                                  if len(entries) > 5 else "")
        log.warning("passed over %d entr%s in %s (looked for %s): %s", len(entries),
                    "y" if len(entries) == 1 else "ies", folder, looked_for, shown)


def discover_inputs(input_dir: Path, *, suffix: str, eids: Set[int] | None = None,
                    made_by: str = "") -> list[InputFile]:
    """List the ``*<suffix>`` inputs in ``input_dir`` (flat or RAP-nested), sorted by name.

    With ``eids``, only the two-digit RAP folders those EIDs live in are listed: listing a whole mounted
    ``/mnt/project/Bulk`` folder is slow. Other entries (an ``.ZIP``, a sub-folder; not hidden or ``pipeline-*``
    ones) are counted and named in a warning. ``made_by`` names the stage that makes the folder, for the error.
    """
    if not input_dir.is_dir():
        raise missing_folder(input_dir, made_by=made_by)
    found: list[Path] = []
    passed_over: list[str] = []

    def scan(folder: Path, prefix: str = "", *, nested: bool) -> None:
        with os.scandir(folder) as entries:  # DirEntry caches the type: no stat per file at 100,000 inputs
            for entry in entries:
                if entry.name.startswith((".", "pipeline-")):
                    continue
                if entry.name.endswith(suffix) and entry.is_file():
                    found.append(Path(entry.path))
                elif not nested and entry.is_dir() and re.fullmatch(r"\d\d", entry.name):
                    if eids is None:
                        scan(Path(entry.path), f"{entry.name}/", nested=True)
                else:
                    passed_over.append(f"{prefix}{entry.name}{'/' if entry.is_dir() else ''}")

    scan(input_dir, nested=False)
    if eids is not None:  # only the two-digit folders these EIDs live in
        for prefix in sorted({str(eid)[:2] for eid in eids}):
            if (input_dir / prefix).is_dir():
                scan(input_dir / prefix, f"{prefix}/", nested=True)
    log_passed_over(input_dir, sorted(passed_over), looked_for=f"*{suffix} inputs, flat or in two-digit <nn>/ folders")
    return sorted(parse_input(path) for path in found)


def search_description(input_dir: Path, *suffixes: str) -> str:
    """What :func:`discover_inputs` looks for, for messages: ``*.zip in /data/raw/dxas or its <nn>/ folders``."""
    patterns = " or ".join(f"*{suffix}" for suffix in suffixes)
    return f"{patterns} in {input_dir} or its two-digit <nn>/ folders"


_BULK_FIELD = re.compile(r"\d+_\d+_\d+")  # the second column of a ukbconv .bulk file: <field>_<instance>_<array>
_HEADERS = {"eid", "f.eid", "participant id", "participant_id", "eid_withdrawn"}


def read_eid_list(path: Path) -> set[int]:
    """Read EIDs from a text file: one or more a line, or a ukbconv ``.bulk`` file (``<eid> <field>_<i>_<a>``).

    Every EID on a line is read, separated by commas, semicolons, spaces or tabs (``1000002,1000003``); quotes and a
    byte-order mark (a list saved by Excel) are allowed, so are blank lines, ``#`` comments and an ``eid`` header. Any
    other token is an error naming the line numbers: silently dropping part of a withdrawal list would keep a
    withdrawn participant's data.
    """
    if not path.is_file():
        raise FileNotFoundError(f"EID list {path} does not exist")
    eids: set[int] = set()
    bad: list[str] = []
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    for number, raw in enumerate(text.splitlines(), start=1):
        tokens = [token.strip().strip("\"'").strip() for token in re.split(r"[\s,;]+", raw.split("#", 1)[0])]
        tokens = [token for token in tokens if token]
        if not tokens or (number == 1 and " ".join(tokens).lower() in _HEADERS):
            continue
        line_eids = [int(token) for token in tokens if token.isdigit() and 6 <= len(token) <= 8]
        others = [token for token in tokens if not (token.isdigit() and 6 <= len(token) <= 8)]
        if not line_eids or any(not _BULK_FIELD.fullmatch(token) for token in others):
            bad.append(f"{number} ({raw.strip()[:40]!r})")
            continue
        eids.update(line_eids)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise InputError(f"EID list {path}: lines that are not EIDs: {shown}")
    return eids


def filter_by_eid(
    inputs: Iterable[InputFile], *, only: Set[int] | None, exclude: Set[int] | None
) -> list[InputFile]:
    """Keep inputs whose EID is in ``only`` (when given) and not in ``exclude``.

    Inputs whose name carries no EID survive an exclusion list (they fail later with a clear reason and produce
    no output) but not an ``only`` list.
    """
    kept = []
    for item in inputs:
        if exclude and item.eid in exclude:
            continue
        if only is not None and item.eid not in only:
            continue
        kept.append(item)
    return kept


def require_ukbb_name(item: InputFile, *, field: int) -> None:
    """Raise :class:`InputError` unless ``item`` is named ``<eid>_<field>_<instance>_<array>``."""
    if item.eid is None:
        raise InputError(f"name {item.path.name!r} is not <eid>_<field>_<instance>_<array>")
    if item.field != field:
        raise InputError(f"field {item.field} in the name, expected {field}")
