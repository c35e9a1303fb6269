"""Benchmark: the download stage's parallel speed-up against one process, with fakes that sleep per file.

The fakes stand in for network time (``--sleep`` seconds per file), so the figures show how well the scheduler keeps
``parallel`` tool processes busy, not UK Biobank's bandwidth. Run by hand:

    python tests/benchmarks/bench_download.py [--files 60] [--sleep 0.2] [--parallel 1 5 10] [--backend ukbfetch dx]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "helpers"), str(TESTS.parent)]

from fakes import DX_FOLDERS, FakeTools, write_key_file  # noqa: E402

from ukbb_pipeline.config import DownloadBackend, DownloadConfig  # noqa: E402
from ukbb_pipeline.runtime.runner import RunOptions  # noqa: E402
from ukbb_pipeline.stages import download  # noqa: E402


def bench(root: Path, *, backend: str, parallel: int, n_files: int, sleep: float) -> tuple[float, int, int]:
    """Seconds for one download of ``n_files``, the peak of simultaneous calls, and the number of calls."""
    fakes = FakeTools(root / "fakes").install()
    eids = [1000000 + i for i in range(n_files)]
    fakes.publish([f"{eid}_20201_2_0" for eid in eids])
    fakes.behave(sleep_per_file=sleep)
    os.environ["PATH"] = fakes.path_with_fakes_first()
    (root / "eids.txt").write_text("".join(f"{eid}\n" for eid in eids))
    config = DownloadConfig(
        output_dir=str(root / "raw"), eids_file=str(root / "eids.txt"), key_file=str(write_key_file(root / ".ukbkey")),
        backend=DownloadBackend(backend), parallel=parallel, fields=[20201], instances=[2],
        dx_folders={str(field): folder for field, folder in DX_FOLDERS.items()},
    )
    started = time.perf_counter()
    [summary] = download.run(config, options=RunOptions())
    seconds = time.perf_counter() - started
    assert summary.counts["ok"] == n_files, summary.counts
    return seconds, fakes.peak_concurrency(), len(fakes.calls())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds per file in the fakes")
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--backend", nargs="+", default=["ukbfetch", "dx"], choices=["ukbfetch", "dx"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"{args.files} files, {args.sleep} s per file in the fake (serial floor {args.files * args.sleep:.1f} s); "
          f"{os.cpu_count()} CPUs")
    print(f"{'backend':>9} {'parallel':>8} {'calls':>5} {'peak':>4} {'seconds':>8} {'speed-up':>8}")
    for backend in args.backend:
        baseline = None
        for parallel in args.parallel:
            with tempfile.TemporaryDirectory(prefix="bench-download-") as folder:
                seconds, peak, calls = bench(
                    Path(folder), backend=backend, parallel=parallel, n_files=args.files, sleep=args.sleep
                )
            baseline = baseline or (seconds if parallel == 1 else None)
            speed_up = f"{baseline / seconds:7.1f}x" if baseline else "       -"
            print(f"{backend:>9} {parallel:>8} {calls:>5} {peak:>4} {seconds:8.2f} {speed_up}")


if __name__ == "__main__":
    main()
