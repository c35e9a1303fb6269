"""Is a downloaded file a whole zip? It opens, it has members, and every member inflates with a matching CRC.

A truncated transfer loses the central directory at the end of the file and fails to open; a corrupted byte fails a
CRC. ``ZipFile.testzip`` reads each member in bounded chunks, so a large zip costs time, not memory.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path


def zip_problem(path: Path) -> str | None:
    """None when ``path`` is a complete zip whose members all pass their CRC; otherwise a one-line reason."""
    try:
        with zipfile.ZipFile(path) as archive:
            if not archive.infolist():
                return "the zip has no members"
            bad_member = archive.testzip()
    except zipfile.BadZipFile as error:
        return f"not a complete zip ({error}); truncated or damaged"
    except (zlib.error, EOFError) as error:
        return f"a member does not inflate ({error}); truncated or damaged"
    except NotImplementedError as error:
        return f"cannot be checked ({error})"
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if bad_member is not None:
        return f"member {bad_member[-80:]!r} fails its CRC check; damaged"
    return None
