"""One ukbfetch call: its own batch file and scratch folder (ukbfetch writes into its current directory), flags
glued to their values as ukbfetch requires (``-a<key file> -b<batch file> -s<first line> -m<count>``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ukbb_pipeline.download.bulk import MAX_FILES_PER_CALL, BulkRequest, write_bulk_file
from ukbb_pipeline.download.keyfile import KeyFile
from ukbb_pipeline.download.tools import ChildProcesses, ToolRun

# -s counts batch-file lines from 1 as public scripts use it (-s1 -m1000, -s28001 -m1000). Each call has a batch file of
# its own lines only, so it always starts at the first.
FIRST_LINE = 1
BATCH_FILE = "request.bulk"


def ukbfetch_argv(executable: str, *, key_file: Path, batch_file: Path, start_line: int, max_files: int) -> list[str]:
    """ukbfetch's argument list; only the key file's path is in it."""
    if not 1 <= max_files <= MAX_FILES_PER_CALL:
        raise ValueError(f"ukbfetch fetches 1 to {MAX_FILES_PER_CALL} files per call, asked for {max_files}")
    return [executable, f"-a{key_file}", f"-b{batch_file}", f"-s{start_line}", f"-m{max_files}"]


@dataclass(frozen=True)
class UkbfetchBackend:
    """Fetches a batch with one ukbfetch call; the zips it writes stay in ``scratch`` for the caller to verify."""

    executable: str
    key: KeyFile
    timeout_per_file_s: float
    name: str = "ukbfetch"
    max_per_call: int = MAX_FILES_PER_CALL

    def fetch(self, requests: Sequence[BulkRequest], scratch: Path, children: ChildProcesses) -> ToolRun:
        batch_file = scratch / BATCH_FILE
        count = write_bulk_file(batch_file, requests)
        argv = ukbfetch_argv(
            self.executable, key_file=self.key.path, batch_file=batch_file, start_line=FIRST_LINE, max_files=count
        )
        return children.run(argv, cwd=scratch, timeout_s=self.timeout_per_file_s * count, scrub=self.key.scrub)
