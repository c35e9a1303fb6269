"""What contact sheets cost in peak memory (``python tests/benchmarks/bench_sheet_memory.py [--inputs N]``).

A run of cheap inputs is where the sheets show: ``N`` damaged DXA zips (each fails at once, so its tile carries a
long reason) through ``unzip_dxa`` with one worker, once with ``qc=false`` (the floor: the stage's ordinary memory)
and once with the contact sheets, each in a fresh process. Prints both peaks (``ru_maxrss``), their ratio, and the
seconds. Issue 20 measured 123 MB without sheets and 530 MB with them (300 inputs, matplotlib sheets); numpy sheets
with Pillow's labels: 158 MB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

RUN = """
import resource, sys, time
from hydra import compose, initialize_config_dir
from ukbb_pipeline.config import register_configs
from ukbb_pipeline.stages import run_stage_from_config
register_configs()
root, qc = sys.argv[1], sys.argv[2]
with initialize_config_dir(config_dir=sys.argv[3], version_base="1.3"):
    cfg = compose(config_name="config", overrides=["stage=unzip_dxa", f"paths.root={root}", "n_jobs=1",
                  f"stage.output_dir={root}/out-{qc}", "allow_failures=true", f"qc={qc}",
                  "stage.subject_pictures=false"])
started = time.monotonic()
run_stage_from_config(cfg)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.monotonic() - started)
"""


def peak(root: Path, qc: bool) -> tuple[float, float]:
    shown = subprocess.run([sys.executable, "-c", RUN, str(root), str(qc).lower(), str(REPO / "conf")],
                           capture_output=True, text=True, check=True, cwd=REPO).stdout.split()
    return float(shown[-2]), float(shown[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        raw = root / "raw" / "dxas"
        raw.mkdir(parents=True)
        for number in range(args.inputs):
            (raw / f"{1000000 + number}_20158_2_0.zip").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
        floor_mb, floor_s = peak(root, qc=False)
        sheets_mb, sheets_s = peak(root, qc=True)
    print(f"{args.inputs} failing inputs, one worker: peak {floor_mb:.0f} MB without sheets, {sheets_mb:.0f} MB with "
          f"({sheets_mb / floor_mb:.2f}x the floor); {floor_s:.1f} s and {sheets_s:.1f} s")


if __name__ == "__main__":
    main()
