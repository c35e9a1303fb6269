"""Benchmark: the sequential zip reader against the positional one it replaced, on a local disk (run by hand).

    python tests/benchmarks/bench_zipread.py [--subjects 3] [--folder outputs/bench/mri-full] [--rounds 3]

For each full-size synthetic Dixon zip (the generator's ``size="full"``: 1,328 slices), ``read_dixon_zip`` (F and W,
the stage's read: every member peeked, the wanted ones inflated and parsed) runs with each reader:

- positional: the reader as of commit ``BEFORE`` (the central directory through ``zipfile``, then ``os.pread`` at
  each member's offset), loaded from git;
- sequential: today's ``ZipMembers`` (the whole file in 64 MiB reads, parsed from memory).

Printed per reader: wall seconds with the file's pages dropped from the page cache before each read (cold, the FUSE
case's nearest local analogue) and with them cached (warm), read system calls per zip (``syscr`` of /proc/self/io),
and for the positional reader how many of its reads jumped backwards. The ratio is sequential over positional; the
floor is the positional reader measured in the same run. Rounds repeat; the fastest round per reader is kept.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "benchmarks"))

from bench_unzip_mri import make_subjects  # noqa: E402

from ukbb_pipeline.dicomio import zipread  # noqa: E402
from ukbb_pipeline.mri import read as mri_read  # noqa: E402

BEFORE = "8c3a606"  # main before the sequential reader


def positional_reader() -> type:
    """``ZipMembers`` as it was at ``BEFORE``, loaded from git into a module of its own."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{BEFORE}:ukbb_pipeline/dicomio/zipread.py"],
                            check=True, capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("zipread_positional", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    exec(compile(source, "zipread_positional.py", "exec"), module.__dict__)
    return module.ZipMembers


def read_calls() -> int:
    with open("/proc/self/io") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("syscr:"))


def drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def one_read(path: Path, reader: type, *, cold: bool) -> tuple[float, int, int]:
    """(seconds, read calls, backward jumps) of one ``read_dixon_zip`` through ``reader``."""
    if cold:
        drop_cache(path)
    offsets: list[tuple[int, int]] = []
    real_pread = os.pread

    def recording_pread(fd: int, count: int, offset: int) -> bytes:
        data = real_pread(fd, count, offset)
        offsets.append((offset, len(data)))
        return data

    mri_read.ZipMembers = reader  # type: ignore[misc]
    os.pread = recording_pread
    try:
        calls, started = read_calls(), time.perf_counter()
        mri_read.read_dixon_zip(path, channels=["F", "W"])
        seconds, calls = time.perf_counter() - started, read_calls() - calls
    finally:
        os.pread = real_pread
        mri_read.ZipMembers = zipread.ZipMembers  # type: ignore[misc]
    backward, end = 0, 0
    for offset, size in offsets:
        backward += offset < end
        end = offset + size
    return seconds, calls, backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=REPO / "outputs" / "bench" / "mri-full")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    paths = make_subjects(args.folder, args.subjects)
    readers = {"positional": positional_reader(), "sequential": zipread.ZipMembers}
    for path in paths:
        print(f"{path.name}: {path.stat().st_size / 2**20:.0f} MB", flush=True)
        best: dict[tuple[str, bool], tuple[float, int, int]] = {}
        for _ in range(args.rounds):
            for cold in (True, False):
                for name, reader in readers.items():
                    result = one_read(path, reader, cold=cold)
                    if (name, cold) not in best or result[0] < best[name, cold][0]:
                        best[name, cold] = result
        for cold in (True, False):
            floor = best["positional", cold][0]
            for name in readers:
                seconds, calls, backward = best[name, cold]
                print(f"  {'cold' if cold else 'warm'} {name:10s} {seconds:6.2f} s  ratio {seconds / floor:5.2f}  "
                      f"{calls:5d} read calls  {backward:5d} backward jumps", flush=True)


if __name__ == "__main__":
    main()
