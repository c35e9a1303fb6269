"""Where a field's bulk files lie in a project: as the user gave it, or found from the files whose ``field_id``
property is the field (``dx find data --property field_id=20158``); never a guessed folder."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from ukbb_pipeline.rap.dx import Dx

log = logging.getLogger(__name__)


def field_folder(dx: Dx, project: str, field: int | str) -> str:
    """The folder above the ``<first two digits of eid>/`` folders holding the field's files; a clear error when
    they lie in several such folders or none (the user then names the folder)."""
    found = {obj["folder"] for obj in dx.find_files(project, properties={"field_id": str(field)})}
    parents = {folder.rsplit("/", 1)[0] if folder.rsplit("/", 1)[-1].isdigit() else folder for folder in found}
    if len(parents) != 1:
        where = (f"its files lie in {len(parents)} folders ({', '.join(sorted(parents)[:3])})" if parents
                 else f"no file in {project} has the property field_id={field}")
        raise ValueError(f"field {field}: {where}; name its folder")
    folder = parents.pop()
    log.info("field %s: %d folders of files under %s (found by their field_id property)", field, len(found), folder)
    return folder


def field_folders(dx: Dx, project: str, fields: Iterable[int | str], given: Mapping[str, str]) -> dict[str, str]:
    """Each field's folder: ``given`` (by field number as text), else found by its ``field_id``."""
    return {str(field): given[str(field)] if str(field) in given else field_folder(dx, project, field)
            for field in fields}
