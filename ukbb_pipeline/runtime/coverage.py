"""How the EID lists meet the inputs found: which EIDs of ``eids_file`` have no input, how many inputs
``exclude_eids_file`` drops; said once in the log of every run (:func:`coverage_messages`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable


def eid_coverage(found_eids: Iterable[int | None], *, only: Iterable[int] | None,
                 exclude: Iterable[int] | None) -> tuple[list[int], int]:
    """(EIDs of ``only`` with no input, sorted; how many inputs ``exclude`` drops), for the log and the status."""
    found = [eid for eid in found_eids if eid is not None]
    excluded = set(exclude or ())
    missing = sorted(set(only) - set(found) - excluded) if only is not None else []
    return missing, sum(1 for eid in found if eid in excluded)


def coverage_messages(stage: str, found_eids: Iterable[int | None], *, only: Iterable[int] | None,
                      exclude: Iterable[int] | None, where: str = "", examples: int = 5) -> list[tuple[int, str]]:
    """(logging level, line) about the EID lists: inputs excluded; EIDs of ``eids_file`` with no input (a few)."""
    missing, n_excluded = eid_coverage(found_eids, only=only, exclude=exclude)
    messages = []
    if n_excluded:
        messages.append((logging.INFO, f"{stage}: {n_excluded} input(s) of EIDs in exclude_eids_file left out"))
    if missing:
        shown = ", ".join(str(eid) for eid in missing[:examples]) + (" ..." if len(missing) > examples else "")
        place = f" ({where})" if where else ""
        messages.append((logging.WARNING, f"{stage}: {len(missing)} EID(s) of eids_file have no input{place}: {shown}"))
    return messages
