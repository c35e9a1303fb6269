"""What unzip_dxa's QC pictures cost (``python tests/benchmarks/bench_dxa_pictures.py [--subjects N]``).

Makes full-size synthetic DXA zips (791 x 272-like Total Body pairs) in a temporary folder and prints, per subject
(best of ``--rounds``): the floor (``read_dxa_zip``, the stage's reading), ``process_dxa_zip`` without and with the
per-subject picture, the picture's cost as a ratio to the floor, and a full contact sheet's cost per subject.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench_qc_pictures import best  # the benchmarks' timer (this folder is on sys.path when run)

from ukbb_pipeline.config import ZipLimits
from ukbb_pipeline.dxa.read import read_dxa_zip
from ukbb_pipeline.formats import Hdf5Writer
from ukbb_pipeline.qc import dxa_pictures, pictures
from ukbb_pipeline.runtime.folders import StageFolders
from ukbb_pipeline.runtime.inputs import parse_input
from ukbb_pipeline.runtime.state import DONE
from ukbb_pipeline.stages.unzip_dxa import process_dxa_zip
from ukbb_pipeline.synthetic import DxaQuirks, Phantom, write_dxa_zip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    limits = ZipLimits()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        items = []
        for number in range(args.subjects):
            path = root / f"{1000001 + number}_20158_2_0.zip"
            write_dxa_zip(path, eid=1000001 + number, phantom=Phantom.random(number), quirks=DxaQuirks(), seed=number)
            items.append(parse_input(path))
        qc = root / "qc"
        floor = without = with_picture = 0.0
        tiles = []
        for item in items:
            floor += best(lambda item=item: read_dxa_zip(item.path), args.rounds)
            without += best(lambda item=item: process_dxa_zip(item, limits=limits), args.rounds)
            with_picture += best(lambda item=item: process_dxa_zip(item, limits=limits, qc_dir=qc, scratch_dir=qc),
                                 args.rounds)
        exam = read_dxa_zip(items[0].path)
        picture = dxa_pictures.sheets.subject_picture_path(qc, items[0].stem)
        for item in items:  # as the stage's sheets draw them: from the written outputs
            output = process_dxa_zip(item, limits=limits)
            written = Hdf5Writer().write(StageFolders(root / "out", "unzip_dxa"), item.stem, output, fingerprint="")
            tiles.append(dxa_pictures.dxa_tile({"eid": str(item.eid), "instance": str(item.instance),
                                                "stem": item.stem, "state": DONE, "output": str(written)}))
        tiles = (tiles * (100 // len(tiles) + 1))[:100]  # a full sheet (stage.sheet_size 100)
        sheet = best(lambda: pictures.contact_sheet(qc / "sheet.png", tiles, title="bench", scratch_dir=qc,
                                                    tile_size=(100, 260)), args.rounds) / len(tiles)
        n = len(items)
        picture_cost = (with_picture - without) / n
        print(f"full-size DXA: {exam.tissue.shape[0]} x {exam.tissue.shape[1]} px; {n} subjects, best of {args.rounds}")
        print(f"floor (read_dxa_zip)            {floor / n * 1e3:7.1f} ms/subject")
        print(f"process_dxa_zip, no picture     {without / n * 1e3:7.1f} ms/subject")
        print(f"process_dxa_zip, with picture   {with_picture / n * 1e3:7.1f} ms/subject")
        ratio = picture_cost / (floor / n)
        print(f"the picture                     {picture_cost * 1e3:7.1f} ms/subject = {ratio:.2f} of the floor; "
              f"{picture.stat().st_size / 1e3:.0f} KB")
        print(f"a contact sheet of 100          {sheet * 1e3:7.1f} ms/subject = {sheet / (floor / n):.2f} of the floor")


if __name__ == "__main__":
    main()
