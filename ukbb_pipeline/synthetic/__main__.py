"""Command line: ``python -m ukbb_pipeline.synthetic --out DIR --subjects N --size small|full --seed S``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from ukbb_pipeline.synthetic.cohort import make_cohort
from ukbb_pipeline.synthetic.quirks import DxaQuirks, MriQuirks, mixed_quirks
from ukbb_pipeline.synthetic.stations import SIZES


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ukbb_pipeline.synthetic",
        description="Write a synthetic UK Biobank cohort: OUT/mris/<eid>_20201_2_0.zip, OUT/dxas/<eid>_20158_2_0.zip.",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write mris/ and dxas/ into")
    parser.add_argument("--subjects", type=int, default=3, help="number of subjects (default 3)")
    parser.add_argument("--size", choices=SIZES, default="small", help="'full' is the real geometry (default small)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same zips")
    parser.add_argument("--first-eid", type=int, default=1000001, help="eid of the first subject (default 1000001)")
    parser.add_argument(
        "--quirks",
        choices=("none", "mixed", "mixed-with-failures"),
        default="none",
        help="'mixed' gives the subjects one known fault each (swapped, repeated, dropped, ...); default none",
    )
    return parser.parse_args(argv)


def _faults(quirks: MriQuirks | DxaQuirks) -> str:
    """The quirks that differ from the defaults, as ``; name=value`` text."""
    default = type(quirks)()
    changed = [
        f"{f.name}={getattr(quirks, f.name)!r}"
        for f in fields(quirks)
        if getattr(quirks, f.name) != getattr(default, f.name)
    ]
    return "; " + ", ".join(changed) if changed else ""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.subjects < 0:
        raise SystemExit("--subjects must be >= 0")
    start = time.perf_counter()
    mri_quirks: dict[int, MriQuirks] = {}
    dxa_quirks: dict[int, DxaQuirks] = {}
    if args.quirks != "none":
        mri_quirks, dxa_quirks = mixed_quirks(args.subjects, include_failures=args.quirks == "mixed-with-failures")
    subjects = make_cohort(
        args.out,
        n_subjects=args.subjects,
        size=args.size,
        seed=args.seed,
        first_eid=args.first_eid,
        mri_quirks=mri_quirks,
        dxa_quirks=dxa_quirks,
    )
    for subject in subjects:
        print(f"{subject.mri.path}  ({subject.mri.n_dicoms} DICOMs{_faults(subject.mri.quirks)})")
        print(f"{subject.dxa.path}  ({len(subject.dxa.members)} members{_faults(subject.dxa.quirks)})")
    print(f"wrote {len(subjects)} subjects ({args.size}) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
