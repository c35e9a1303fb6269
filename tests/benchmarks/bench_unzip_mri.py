"""Benchmark of the unzip_mri stage on full-size synthetic subjects (run by hand; the test command does not).

    python tests/benchmarks/bench_unzip_mri.py [--subjects 4] [--style slice] [--rounds 3] [--folder ...]
    BENCH_CODE=/path/to/other/checkout python tests/benchmarks/bench_unzip_mri.py --style station   # other code

The zips are realistic: the generator's Siemens CSA blobs (~11.5 kB per slice, ~80 kB per series), the SIEMENS MR
HEADER groups and localiser references real syngo MR files carry, station gains and noisy slab edges, and the header
style ``--style`` (docs/reference/real-headers.md): ``slice`` (default: every slice and echo its own AcquisitionTime,
both echoes in one series told apart by EchoNumbers, ImageType without Dixon values, scanner number text, as real
Siemens headers), ``station`` (one AcquisitionTime per station, one series per channel: the generator's old tidy
style, which code from before issue 18 can read too) or ``random`` (each subject its own random style).

For each subject, in one process, with the stage's default settings (F and W, uint16, all checks on) and the default
HDF5 writer (gzip level 1 + shuffle, one coronal slice per chunk), it prints:

- floor: inflate every member (``ZipFile.read``) and parse it (``pydicom.dcmread`` from memory), once, one process;
- stage: ``process_mri_zip`` plus the HDF5 write, wall and CPU seconds (process start-up and a warm-up run excluded),
  per step: read (peek + inflate + parse + pixels + stacking), group, stitch (without convert), convert (the float32
  (z, y, x) to uint16 (x, y, z) conversion), write (HDF5, fsync included), QC (unzip_mri makes no pictures: 0);
- their ratio, overall and per step (a step's seconds over the floor's); the peak memory of a fresh worker process
  running one subject (and of its imports alone); the writer alone with gzip-1, lzf and none (seconds, file size).

Rounds repeat the whole loop; per subject the round with the least stage CPU is kept, and the spread of the
per-round mean ratio is printed (the machine may be shared: CPU seconds are less disturbed by other jobs than wall
seconds, and both are shown, with the load average). Subjects are generated once into ``--folder`` (by this
checkout's generator) and reused; ``BENCH_CODE`` runs another checkout's stage on them (e.g. the code before a change).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CODE = Path(os.environ.get("BENCH_CODE", REPO))  # whose ukbb_pipeline is measured
sys.path.insert(0, str(CODE))

import numpy as np  # noqa: E402
import pydicom  # noqa: E402

from ukbb_pipeline.formats.hdf5 import Hdf5Writer  # noqa: E402
from ukbb_pipeline.mri import assemble  # noqa: E402
from ukbb_pipeline.runtime.folders import StageFolders  # noqa: E402
from ukbb_pipeline.runtime.inputs import parse_input  # noqa: E402
from ukbb_pipeline.stages import unzip_mri  # noqa: E402


def make_subjects(folder: Path, n: int, style: str) -> list[Path]:
    """Full-size synthetic Dixon zips (realistic headers of ``style``, station gains, noisy slab edges), written
    once by this checkout's generator."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(n):
        eid = 2000001 + index
        path = folder / f"{eid}_20201_2_0.zip"
        if not path.exists():
            if CODE != REPO:
                raise SystemExit(f"{path} is missing: make the zips with this checkout first (without BENCH_CODE)")
            from ukbb_pipeline.synthetic import MriQuirks, Phantom, write_mri_zip
            from ukbb_pipeline.synthetic.header_style import HeaderStyle

            rng = np.random.default_rng(index)
            headers = {"station": HeaderStyle(), "random": HeaderStyle.random(rng),
                       "slice": HeaderStyle(times="slice", echoes_in_one_series=True, image_type_tokens=False,
                                            scanner_numbers=True)}[style]
            quirks = MriQuirks(station_gains=tuple(float(g) for g in rng.uniform(0.8, 1.25, 6)), slab_edge_loss=True,
                               headers=headers)
            print(f"writing {path} ({headers}) ...", flush=True)
            write_mri_zip(path, eid=eid, phantom=Phantom.random(index), size="full", quirks=quirks, seed=index)
        paths.append(path)
    return paths


def floor(path: Path) -> tuple[float, float, float]:
    """(wall s, cpu s, inflate-only cpu s): inflate every .dcm member and parse it, once."""
    wall, cpu = time.perf_counter(), time.process_time()
    inflate = 0.0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.lower().endswith(".dcm"):
                started = time.process_time()
                data = archive.read(info)
                inflate += time.process_time() - started
                pydicom.dcmread(io.BytesIO(data))
    return time.perf_counter() - wall, time.process_time() - cpu, inflate


class PhaseClock:
    """Wraps the stage's steps (same code path) to time them, wall and CPU."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self._originals: dict[str, object] = {}

    def install(self) -> None:
        for module, attribute, phase in ((unzip_mri, "read_dixon_zip", "read"), (unzip_mri, "group_stations", "group"),
                                         (unzip_mri, "stitch_stations", "stitch"),
                                         (assemble, "to_output_array", "convert")):
            original = getattr(module, attribute)
            self._originals[attribute] = original
            setattr(module, attribute, self._timed(original, phase))

    def _timed(self, function, phase):
        def wrapper(*args, **kwargs):
            started, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - started
                self.cpu[phase] += time.process_time() - cpu

        return wrapper


def run_stage(path: Path, writer: Hdf5Writer, folders: StageFolders, clock: PhaseClock) -> tuple[float, float]:
    clock.seconds.clear()
    clock.cpu.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    output = unzip_mri.process_mri_zip(parse_input(path))
    started, started_cpu = time.perf_counter(), time.process_time()
    writer.write(folders, path.name.split(".")[0], output, fingerprint="bench")
    clock.seconds["write"] += time.perf_counter() - started
    clock.cpu["write"] += time.process_time() - started_cpu
    clock.seconds["stitch"] -= clock.seconds["convert"]  # convert runs inside stitch: shown apart
    clock.cpu["stitch"] -= clock.cpu["convert"]
    return time.perf_counter() - wall, time.process_time() - cpu


def peak_memory_mb(path: Path) -> tuple[float, float]:
    """Peak RSS (MB, VmHWM) of a fresh process running one subject through the stage and the writer, and of the
    imports alone. (ru_maxrss of a child carries the parent's size at fork on Linux, so it is not used.)"""
    code = (
        "import resource, sys, tempfile; from pathlib import Path\n"
        "from ukbb_pipeline.runtime.folders import StageFolders\n"
        "from ukbb_pipeline.runtime.inputs import parse_input\n"
        "from ukbb_pipeline.stages.unzip_mri import process_mri_zip\n"
        "from ukbb_pipeline.formats.hdf5 import Hdf5Writer\n"
        "if sys.argv[1] != '-':\n"
        "    out = process_mri_zip(parse_input(Path(sys.argv[1])))\n"
        "    with tempfile.TemporaryDirectory() as tmp:\n"
        "        Hdf5Writer().write(StageFolders(Path(tmp), 'unzip_mri'), 'x', out, fingerprint='bench')\n"
        "print(next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM')) / 1024)\n"
    )
    figures = []
    for argument in (str(path), "-"):
        result = subprocess.run([sys.executable, "-c", code, argument], capture_output=True, text=True, cwd=REPO,
                                check=True, env={"PYTHONPATH": str(CODE), "PATH": "/usr/bin:/bin"})
        figures.append(float(result.stdout.strip().splitlines()[-1]))
    return figures[0], figures[1]


def writer_comparison(path: Path) -> list[tuple[str, float, float]]:
    output = unzip_mri.process_mri_zip(parse_input(path))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, writer in (("gzip-1 + shuffle", Hdf5Writer(compression="gzip", compression_level=1)),
                              ("lzf + shuffle", Hdf5Writer(compression="lzf")),
                              ("none", Hdf5Writer(compression=None))):
            folders = StageFolders(Path(tmp) / label.split()[0], "unzip_mri")
            best = float("inf")
            for _ in range(2):
                started = time.perf_counter()
                written = writer.write(folders, "x", output, fingerprint="bench")
                best = min(best, time.perf_counter() - started)
            rows.append((label, best, written.stat().st_size / 1e6))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--style", default="slice", choices=["slice", "station", "random"],
                        help="the zips' header style (see the module text)")
    parser.add_argument("--folder", type=Path, default=None,
                        help="where the zips are (made once); default outputs/bench/mri-full-<style>")
    parser.add_argument("--compression", default="gzip", choices=["gzip", "lzf", "none"],
                        help="the HDF5 writer's compression (default: the writer's default, gzip level 1)")
    arguments = parser.parse_args()
    folder = arguments.folder or REPO / "outputs" / "bench" / f"mri-full-{arguments.style}"
    paths = make_subjects(folder, arguments.subjects, arguments.style)
    print(f"code measured: {Path(unzip_mri.__file__).parents[2]}; zips: {folder} (style {arguments.style}); "
          f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)

    clock = PhaseClock()
    clock.install()
    writer = Hdf5Writer(compression=None if arguments.compression == "none" else arguments.compression)
    best: dict[Path, dict[str, float]] = {}
    round_ratios: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folders = StageFolders(Path(tmp), "unzip_mri")
        run_stage(paths[0], writer, folders, clock)  # warm-up: imports, first-call costs
        for _ in range(arguments.rounds):
            this_round = []
            for path in paths:
                floor_wall, floor_cpu, inflate = floor(path)
                stage_wall, stage_cpu = run_stage(path, writer, folders, clock)
                figures = {"stage": stage_wall, "stage_cpu": stage_cpu, "floor": floor_wall, "floor_cpu": floor_cpu,
                           "inflate_cpu": inflate, **clock.seconds, **{f"{k}_cpu": v for k, v in clock.cpu.items()}}
                this_round.append(figures)
                if path not in best or figures["stage_cpu"] < best[path]["stage_cpu"]:
                    best[path] = figures
            round_ratios.append((sum(f["stage"] for f in this_round) / sum(f["floor"] for f in this_round),
                                 sum(f["stage_cpu"] for f in this_round) / sum(f["floor_cpu"] for f in this_round)))
    in_process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"\nunzip_mri on {len(paths)} full-size synthetic subjects, 1 worker, default settings, HDF5 "
          f"{arguments.compression} (per subject the round of least stage CPU, of {arguments.rounds})\n")
    steps = ("read", "group", "stitch", "convert", "write", "qc")
    print(f"{'subject':<22}{'floor s':>8}{'cpu':>6}{'stage s':>8}{'cpu':>6}{'ratio':>7}{'cpu':>6}   "
          + "".join(f"{step:>8}" for step in steps) + "   (CPU s)")
    for path, f in best.items():
        print(f"{path.name:<22}{f['floor']:>8.2f}{f['floor_cpu']:>6.2f}{f['stage']:>8.2f}{f['stage_cpu']:>6.2f}"
              f"{f['stage'] / f['floor']:>7.2f}{f['stage_cpu'] / f['floor_cpu']:>6.2f}   "
              + "".join(f"{f.get(f'{step}_cpu', 0.0):>8.2f}" for step in steps))

    def mean(key: str) -> float:
        return statistics.mean(f.get(key, 0.0) for f in best.values())

    stage, flo, stage_cpu, floor_cpu = mean("stage"), mean("floor"), mean("stage_cpu"), mean("floor_cpu")
    print(f"{'mean':<22}{flo:>8.2f}{floor_cpu:>6.2f}{stage:>8.2f}{stage_cpu:>6.2f}{stage / flo:>7.2f}"
          f"{stage_cpu / floor_cpu:>6.2f}   " + "".join(f"{mean(f'{step}_cpu'):>8.2f}" for step in steps))
    print(f"{'per step / floor (cpu)':<62}" + "".join(f"{mean(f'{step}_cpu') / floor_cpu:>8.2f}" for step in steps))
    print(f"\nfloor per subject: {flo:.2f} s wall, {floor_cpu:.2f} s CPU "
          f"(of which ZipFile.read {mean('inflate_cpu'):.2f})")
    print(f"unzip_mri per subject: {stage:.2f} s wall, {stage_cpu:.2f} s CPU")
    print(f"ratio stage/floor: {stage / flo:.2f} (wall), {stage_cpu / floor_cpu:.2f} (CPU); target <= 1.0")
    walls, cpus = [r[0] for r in round_ratios], [r[1] for r in round_ratios]
    print(f"per-round mean ratio: wall {min(walls):.2f}-{max(walls):.2f}, CPU {min(cpus):.2f}-{max(cpus):.2f} "
          f"over {len(round_ratios)} rounds; load average now {os.getloadavg()[0]:.1f}")

    worker_peak, imports_peak = peak_memory_mb(paths[0])
    print(f"peak memory of a fresh worker on one subject: {worker_peak:.0f} MB "
          f"(imports alone {imports_peak:.0f} MB); this process after all runs: {in_process_peak:.0f} MB")

    print("\nwriter alone on one subject's output (F + W uint16):")
    for label, seconds, size in writer_comparison(paths[0]):
        print(f"  {label:<18}{seconds:>6.2f} s {size:>7.1f} MB")
    summary = {"style": arguments.style, "code": str(CODE),
               "stage_s": stage, "floor_s": flo, "ratio": stage / flo, "stage_cpu_s": stage_cpu,
               "floor_cpu_s": floor_cpu, "ratio_cpu": stage_cpu / floor_cpu, "peak_worker_mb": worker_peak,
               "peak_imports_mb": imports_peak, **{f"{step}_cpu_s": mean(f"{step}_cpu") for step in steps}}
    print("\n" + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
