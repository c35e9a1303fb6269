"""Same arrays and attributes as another version of the code: unzip_mri outputs saved once, compared later (by hand).

    python tests/benchmarks/compare_outputs.py save    [--folder outputs/bench/compare]   # with the old code
    python tests/benchmarks/compare_outputs.py compare [--folder outputs/bench/compare]   # with the new code

The cases: the four full-size benchmark subjects with default settings (F + W, uint16); one of them with all four
channels as float32; and small subjects with every fault of the generator's catalogue and every transfer syntax it
writes (Explicit/Implicit VR LE, Deflated, RLE Lossless), some with all channels. Each output goes through
``process_mri_zip`` and the default HDF5 writer; ``compare`` reads every dataset and attribute back with plain h5py
and reports any difference (file bytes may differ: only what a reader sees is compared). A subject that fails is
compared by its error message.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless  # noqa: E402

from ukbb_pipeline.api import stitch_mri_zip  # noqa: E402
from ukbb_pipeline.errors import InputError  # noqa: E402
from ukbb_pipeline.formats.hdf5 import Hdf5Writer  # noqa: E402
from ukbb_pipeline.runtime.folders import StageFolders  # noqa: E402

ALL = ("F", "W", "in", "opp")


def cases(folder: Path) -> list[tuple[str, Path, dict]]:
    """(label, zip, process_mri_zip settings), generating the small subjects once."""
    from bench_unzip_mri import make_subjects

    from ukbb_pipeline.synthetic import MriQuirks, Phantom, write_mri_zip
    from ukbb_pipeline.synthetic.quirks import _FAILING, _MRI_CATALOGUE

    full = make_subjects(REPO / "outputs" / "bench" / "mri-full", 4)
    found = [(f"full-{path.name[:7]}", path, {}) for path in full]
    found.append(("full-all-float32", full[0], {"channels": ALL, "dtype": "float32"}))
    small = folder / "zips"
    small.mkdir(parents=True, exist_ok=True)
    quirk_sets = [*_MRI_CATALOGUE, _FAILING[0]]
    quirk_sets += [MriQuirks(transfer_syntax=s) for s in (ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                                                          RLELossless)]
    for index, quirks in enumerate(quirk_sets):
        eid = 3000001 + index
        path = small / f"{eid}_20201_2_0.zip"
        if not path.exists():
            write_mri_zip(path, eid=eid, phantom=Phantom.random(index), size="small", quirks=quirks, seed=index)
        found.append((f"small-{index}", path, {}))
        found.append((f"small-{index}-all", path, {"channels": ALL, "fix_swaps": True}))
    return found


def run(label: str, path: Path, settings: dict, out: Path) -> None:
    try:
        output = stitch_mri_zip(path, **settings)
    except InputError as error:
        (out / f"{label}.error").write_text(str(error))
        return
    with tempfile.TemporaryDirectory() as tmp:
        written = Hdf5Writer().write(StageFolders(Path(tmp), "unzip_mri"), label, output, fingerprint="compare")
        (out / f"{label}.h5").write_bytes(written.read_bytes())


def same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return type(a) is type(b) and a == b


def compare(label: str, old: Path, new: Path) -> list[str]:
    if (old / f"{label}.error").exists() or (new / f"{label}.error").exists():
        texts = [p.read_text() if p.exists() else None for p in (old / f"{label}.error", new / f"{label}.error")]
        return [] if texts[0] == texts[1] else [f"{label}: error {texts[0]!r} became {texts[1]!r}"]
    problems = []
    with h5py.File(old / f"{label}.h5") as a, h5py.File(new / f"{label}.h5") as b:
        if sorted(a.keys()) != sorted(b.keys()):
            problems.append(f"{label}: datasets {sorted(a.keys())} became {sorted(b.keys())}")
        for name in a.keys() & b.keys():
            if not same(a[name][()], b[name][()]):
                problems.append(f"{label}: dataset {name} differs")
            if b[name].ndim == 3 and b[name].chunks != (b[name].shape[0], 1, b[name].shape[2]):
                problems.append(f"{label}: dataset {name} chunks {b[name].chunks}, not one coronal row")
            if b[name].compression not in (None, "gzip"):
                problems.append(f"{label}: dataset {name} uses {b[name].compression}")
        if sorted(a.attrs.keys()) != sorted(b.attrs.keys()):
            problems.append(f"{label}: attributes {sorted(a.attrs.keys())} became {sorted(b.attrs.keys())}")
        for key in a.attrs.keys() & b.attrs.keys():
            if not same(a.attrs[key], b.attrs[key]):
                problems.append(f"{label}: attribute {key} {a.attrs[key]!r} became {b.attrs[key]!r}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["save", "compare"])
    parser.add_argument("--folder", type=Path, default=REPO / "outputs" / "bench" / "compare")
    arguments = parser.parse_args()
    found = cases(arguments.folder)
    target = arguments.folder / ("old" if arguments.mode == "save" else "new")
    target.mkdir(parents=True, exist_ok=True)
    for label, path, settings in found:
        run(label, path, settings, target)
    if arguments.mode == "save":
        print(f"saved {len(found)} outputs in {target}")
        return 0
    problems = [p for label, _, _ in found for p in compare(label, arguments.folder / "old", target)]
    print("\n".join(problems) or f"all {len(found)} outputs identical (arrays and attributes)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
