"""Issue 7: a run over many subjects never stops for one bad file, never leaves a half-written output, never writes
outside its folders, never holds a withdrawn participant's data, and a re-run finishes exactly what is missing.

Bad DXA zips, empty folders and junk EID lists; SIGKILL at random points, concurrent runs, a real full disk and a
read-only folder (in a private mount namespace, where the machine allows one); outputs that no longer open; hostile
pickles; exclusion lists in every stage; and no file written anywhere but the stage folders. Bad Dixon zips are in
test_faults_mri.py; the README's faults table lists every fault and the test that shows it.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import zip_edits as edits
from pydicom.uid import ExplicitVRLittleEndian

from ukbb_pipeline.config import ZipLimits
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.formats.pickle import safe_load
from ukbb_pipeline.runtime.inputs import parse_input
from ukbb_pipeline.runtime.manifest import read_manifests
from ukbb_pipeline.runtime.state import cohort_records
from ukbb_pipeline.stages import run_stage_from_config
from ukbb_pipeline.stages.unzip_dxa import process_dxa_zip
from ukbb_pipeline.stages.unzip_mri import process_mri_zip
from ukbb_pipeline.synthetic import DxaTruth, MriQuirks, Phantom, make_cohort, write_dxa_zip, write_mri_zip

REPO = Path(__file__).resolve().parents[1]
LIMITS = ZipLimits()
TISSUE_INSTANCE, BONE_INSTANCE = 11, 12  # the Total Body pair of a synthetic DXA zip


# --- bad DXA zips ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dxa(tmp_path_factory) -> DxaTruth:
    folder = tmp_path_factory.mktemp("dxa")
    return write_dxa_zip(folder / "1000200_20158_2_0.zip", eid=1000200, phantom=Phantom.random(200), seed=200)


def _dxa_variant(truth: DxaTruth, tmp_path: Path, change) -> Path:
    members = edits.read_members(truth.path)
    return edits.write_members(tmp_path / truth.path.name, change(members, edits.index_slices(members)))


def _member(slices: list[edits.Slice], instance: int) -> str:
    return next(s.name for s in slices if s.instance == instance)


def _dxa_fails(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        process_dxa_zip(parse_input(path), limits=LIMITS)
    assert "\n" not in str(caught.value), "reasons are one line"
    return str(caught.value)


def test_a_dxa_member_that_is_not_dicom_fails_the_zip_naming_it(dxa, tmp_path):
    regional = next(s.name for s in edits.index_slices(edits.read_members(dxa.path)) if s.instance < TISSUE_INSTANCE)
    path = _dxa_variant(dxa, tmp_path, lambda members, _: {**members, regional: b"PK\x03\x04 a zip, not DICOM"})
    assert _dxa_fails(path) == f"member {regional!r} is not a DICOM file"


def test_a_dxa_image_without_pixel_data_fails_the_zip_naming_it(dxa, tmp_path):
    path = _dxa_variant(dxa, tmp_path, lambda m, s: edits.edit(m, [_member(s, BONE_INSTANCE)], edits.drop_pixel_data))
    bone = _member(edits.index_slices(edits.read_members(dxa.path)), BONE_INSTANCE)
    reason = _dxa_fails(path)  # the bone image is needed: passed over, then named in the reason
    assert reason.startswith("1 greyscale 'Total Body' image(s) of the exam's participant, 2 needed (tissue and bone)")
    assert reason.endswith(f"; 'Total Body' member(s) passed over: {bone!r}: no pixel data (Computed Radiography "
                           "Image Storage)")


def test_a_dxa_image_in_a_syntax_no_decoder_reads_is_a_one_line_reason(dxa, tmp_path):
    path = _dxa_variant(dxa, tmp_path,
                        lambda m, s: edits.edit(m, [_member(s, TISSUE_INSTANCE)], edits.as_jpeg_ls_without_decoder))
    tissue = _member(edits.index_slices(edits.read_members(dxa.path)), TISSUE_INSTANCE)
    assert _dxa_fails(path).startswith(f"member {tissue!r}: cannot decode transfer syntax JPEG-LS Lossless")


def test_dxa_images_in_jpeg2000_are_decoded_as_stored(dxa, tmp_path):
    if not edits.pillow_encodes_jpeg2000():
        pytest.skip("Pillow was built without JPEG 2000")
    pair = (TISSUE_INSTANCE, BONE_INSTANCE)
    path = _dxa_variant(dxa, tmp_path, lambda m, s: edits.edit(m, [_member(s, i) for i in pair], edits.as_jpeg2000))
    output = process_dxa_zip(parse_input(path), limits=LIMITS)
    np.testing.assert_array_equal(output.arrays["tissue"], dxa.tissue)
    np.testing.assert_array_equal(output.arrays["bone"], dxa.bone)


def test_hostile_dxa_member_names_are_only_labels(dxa, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _dxa_variant(dxa, tmp_path / "in", lambda members, _: {
        f"../../{name}" if i % 2 else f"/etc/{name}": data for i, (name, data) in enumerate(members.items())})
    output = process_dxa_zip(parse_input(path), limits=LIMITS)
    np.testing.assert_array_equal(output.arrays["tissue"], dxa.tissue)
    assert sorted(os.listdir(tmp_path)) == ["in"]
    assert not any(name.endswith(".dcm") for name in os.listdir(tmp_path.parent))
    assert not any(name.endswith(".dcm") for name in os.listdir("/etc"))


# What the fuzz tests (test_fuzz_readers.py) found, as fixed examples.


def test_a_zip_directory_entry_with_an_empty_name_is_passed_over(dxa, tmp_path):
    members = edits.read_members(dxa.path)
    path = tmp_path / dxa.path.name
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo(""), b"a damaged central directory entry")
        for name, data in members.items():
            archive.writestr(name, data)
    np.testing.assert_array_equal(process_dxa_zip(parse_input(path), limits=LIMITS).arrays["bone"], dxa.bone)


def test_a_damaged_value_representation_of_the_pixel_data_names_the_member(dxa, tmp_path):
    def unknown_vr(members, slices):
        name = _member(slices, TISSUE_INSTANCE)
        dataset = edits.parse(members[name])
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian  # so that each element carries its VR
        data = bytearray(edits.encode(dataset))
        at = data.find(b"\xe0\x7f\x10\x00OW")  # (7FE0,0010) PixelData
        data[at + 4 : at + 6] = b"B7"
        return {**members, name: bytes(data)}

    tissue = _member(edits.index_slices(edits.read_members(dxa.path)), TISSUE_INSTANCE)
    reason = _dxa_fails(_dxa_variant(dxa, tmp_path, unknown_vr))
    assert reason == f"member {tissue!r} has a damaged DICOM header (NotImplementedError)"


def test_an_empty_pixel_data_element_is_a_reason(dxa, tmp_path):
    def empty(dataset):
        dataset.PixelData = b""

    path = _dxa_variant(dxa, tmp_path, lambda m, s: edits.edit(m, [_member(s, BONE_INSTANCE)], empty))
    bone = _member(edits.index_slices(edits.read_members(dxa.path)), BONE_INSTANCE)
    assert _dxa_fails(path).startswith(f"member {bone!r} has 0 bytes of pixel data")


# --- empty folders and junk EID lists, through main.py ---------------------------------------------------------------


@pytest.mark.slow
def test_an_empty_input_folder_is_a_warning_naming_the_folder_and_what_was_looked_for(tmp_path, run_main):
    (tmp_path / "raw" / "dxas").mkdir(parents=True)
    result = run_main("stage=unzip_dxa", f"paths.root={tmp_path}")
    assert result.returncode == 0, result.stderr
    log = result.stdout + result.stderr
    assert f"unzip_dxa: no inputs found: looked for *.zip in {tmp_path / 'raw' / 'dxas'}" in log

    write_dxa_zip(tmp_path / "raw" / "dxas" / "1000300_20158_2_0.zip", eid=1000300, phantom=Phantom.random(3))
    (tmp_path / "eids.txt").write_text("1000300\n")
    result = run_main("stage=unzip_dxa", f"paths.root={tmp_path}", "exclude_eids_file=eids.txt")
    assert result.returncode == 0, result.stderr
    assert "unzip_dxa: 1 inputs found (*.zip in " in result.stdout + result.stderr
    assert "none left after exclude_eids_file; nothing to do" in result.stdout + result.stderr


@pytest.mark.slow
def test_an_eid_list_with_junk_lines_stops_before_any_work_naming_the_lines(tmp_path, run_main):
    write_dxa_zip(tmp_path / "raw" / "dxas" / "1000300_20158_2_0.zip", eid=1000300, phantom=Phantom.random(3))
    (tmp_path / "eids.txt").write_text("eid\n1000300\n1000301 # fine\n<html>\n10003O2\n")
    result = run_main("stage=unzip_dxa", f"paths.root={tmp_path}", "exclude_eids_file=eids.txt")
    assert result.returncode != 0
    assert "eids.txt: lines that are not EIDs: 4 ('<html>'), 5 ('10003O2')" in result.stdout + result.stderr
    assert not (tmp_path / "dxas-processed").exists(), "nothing was processed"


# --- SIGKILL at random points, then a re-run -------------------------------------------------------------------------


def _outputs(folder: Path) -> dict[str, int]:
    """Output name -> inode: an output rewritten by a later run gets a new inode (outputs are renamed into place)."""
    return {path.name: path.stat().st_ino for path in folder.glob("*.h5")} if folder.is_dir() else {}


def _only_outputs_and_metadata(folder: Path) -> None:
    if folder.is_dir():
        stray = [name for name in os.listdir(folder) if not name.endswith(".h5") and name != "pipeline-unzip-mri"]
        assert stray == [], "no half-written file among the outputs"


@pytest.mark.slow
def test_runs_killed_at_random_points_then_rerun_do_every_input_exactly_once(tmp_path, run_main):
    raw = tmp_path / "raw" / "mris"
    truths = [write_mri_zip(raw / f"{1000400 + i}_20201_2_0.zip", eid=1000400 + i, phantom=Phantom.random(400 + i))
              for i in range(6)]
    out = tmp_path / "mris-processed"
    command = [sys.executable, str(REPO / "main.py"), "stage=unzip_mri", f"paths.root={tmp_path}", "n_jobs=2"]
    chance = random.Random(7)
    seen: dict[str, int] = {}
    partial = 0
    # the first kill lands anywhere from start-up on; the others a random moment after a run's first new output
    for attempt in range(3):
        process = subprocess.Popen([*command, f"hydra.run.dir={tmp_path / f'killed{attempt}'}"], cwd=tmp_path,
                                   start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if attempt == 0:
            time.sleep(chance.uniform(0.5, 3.0))
        else:
            deadline = time.monotonic() + 60
            while len(_outputs(out)) <= len(seen) and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.01)
            time.sleep(chance.uniform(0.0, 0.2))  # well within the time the other outputs take
        os.killpg(process.pid, signal.SIGKILL)  # the run and its workers die at once
        process.wait(timeout=30)
        now = _outputs(out)
        assert {name: now[name] for name in seen} == seen, "an output once written is never rewritten"
        _only_outputs_and_metadata(out)
        partial += 0 < len(now) < len(truths)
        seen = now
    assert partial, "at least one kill landed mid-run"

    result = run_main(*command[2:])
    assert result.returncode == 0, result.stderr[-2000:]
    final = _outputs(out)
    assert {name: final[name] for name in seen} == seen
    assert len(final) == len(truths)
    for truth in truths:  # every output opens and holds what a clean run makes
        with h5py.File(out / f"{truth.path.stem}.h5") as handle:
            expected = process_mri_zip(parse_input(truth.path)).arrays["fat_scan"]
            np.testing.assert_array_equal(handle["fat_scan"][()], expected)
    every_row = read_manifests(out, latest=False)
    for truth in truths:
        assert sum(row["input"] == str(truth.path) and row["status"] == "ok" for row in every_row) <= 1
    assert {row["status"] for row in read_manifests(out)} <= {"ok", "skipped"}
    assert len(read_manifests(out)) == len(truths)
    assert list((out / "pipeline-unzip-mri" / "tmp").iterdir()) == [], "the dead runs' scratch files are removed"


# --- two runs at once ------------------------------------------------------------------------------------------------

_HAMMER = """
import sys
from pathlib import Path
from ukbb_pipeline.runtime.atomic import atomic_dir
root = Path(sys.argv[1])
for i in range(int(sys.argv[2])):
    with atomic_dir(root / "1000001_20158_2_0", scratch_dir=root / "scratch") as tmp:
        (tmp / "1000001_20158_2_0.pkl").write_bytes(sys.argv[3].encode() * 1000)
"""


def test_two_processes_replacing_the_same_output_folder_never_fail(tmp_path):
    runs = [subprocess.Popen([sys.executable, "-c", _HAMMER, str(tmp_path), "400", tag], cwd=REPO,
                             stderr=subprocess.PIPE, text=True) for tag in "ab"]
    errors = [run.communicate(timeout=120)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    assert os.listdir(tmp_path / "1000001_20158_2_0") == ["1000001_20158_2_0.pkl"]
    assert (tmp_path / "1000001_20158_2_0" / "1000001_20158_2_0.pkl").read_bytes() in (b"a" * 1000, b"b" * 1000)
    assert os.listdir(tmp_path / "scratch") == []


@pytest.mark.slow
def test_two_runs_over_the_same_inputs_at_once_lose_no_row_and_corrupt_nothing(tmp_path, dxa):
    raw = tmp_path / "raw" / "dxas"
    raw.mkdir(parents=True)
    eids = [1000500 + i for i in range(40)]
    for eid in eids:  # one zip under many names: the runs overlap on every output
        shutil.copyfile(dxa.path, raw / f"{eid}_20158_2_0.zip")
    command = [sys.executable, str(REPO / "main.py"), "stage=unzip_dxa", "writer=pickle", f"paths.root={tmp_path}",
               "n_jobs=1"]
    runs = [subprocess.Popen([*command, f"hydra.run.dir={tmp_path / f'run{i}'}"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    out = tmp_path / "dxas-processed"
    for eid in eids:
        payload = safe_load(out / f"{eid}_20158_2_0" / f"{eid}_20158_2_0.pkl")
        np.testing.assert_array_equal(payload["tissue"], dxa.tissue.astype(np.float32))
    every_row = read_manifests(out, latest=False)
    assert len({row["manifest"] for row in every_row}) == 2, "one manifest per run"
    assert len(every_row) == 2 * len(eids), "no manifest row is lost"
    assert {row["status"] for row in every_row} <= {"ok", "skipped"}
    assert sorted(os.listdir(out)) == sorted([f"{eid}_20158_2_0" for eid in eids] + ["pipeline-unzip-dxa"])


# --- a full disk, a read-only folder, a folder that cannot exist -----------------------------------------------------


def _final_error(log: str) -> str:
    """The message of the error that ended a main.py run, which must be the pipeline's OutputError (exit 3).

    The run ends with one line on stderr, ``python main.py: <message> [exit 3]``, and no traceback.
    """
    assert "Traceback" not in log, log[-3000:]
    prefix, suffix = "python main.py: ", " [exit 3]"
    errors = [line for line in log.splitlines() if line.startswith(prefix) and line.endswith(suffix)]
    assert errors, f"no error in: {log[-2000:]}"
    return errors[-1][len(prefix):-len(suffix)]


def _in_private_mounts(script: str, *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a shell script in a private mount namespace (its tmpfs and bind mounts vanish with it); skip if not root."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("needs `unshare -m` (root, or a user namespace) to mount a small or read-only file system")
    return subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=300)


def _write_dxa_zips(raw: Path, dxa: DxaTruth, count: int) -> list[int]:
    raw.mkdir(parents=True, exist_ok=True)
    eids = [1000600 + i for i in range(count)]
    for eid in eids:
        shutil.copyfile(dxa.path, raw / f"{eid}_20158_2_0.zip")
    return eids


@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_one_clear_error_and_no_partial_file(tmp_path, dxa):
    eids = _write_dxa_zips(tmp_path / "raw" / "dxas", dxa, 8)
    out, after_full, after_rerun = tmp_path / "disk", tmp_path / "after-full", tmp_path / "after-rerun"
    out.mkdir()
    main = f"{sys.executable} {REPO / 'main.py'} stage=unzip_dxa paths.root={tmp_path} stage.output_dir={out} n_jobs=2"
    result = _in_private_mounts(
        f"""
        mount -t tmpfs -o size=400k tmpfs {out}
        {main} hydra.run.dir={tmp_path / 'run1'} > {tmp_path / 'full.log'} 2>&1; echo $? > {tmp_path / 'full.rc'}
        cp -a {out} {after_full}
        mount -o remount,size=16m {out}
        {main} hydra.run.dir={tmp_path / 'run2'} > {tmp_path / 'rerun.log'} 2>&1; echo $? > {tmp_path / 'rerun.rc'}
        cp -a {out} {after_rerun}
        """,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "full.log").read_text()
    assert (tmp_path / "full.rc").read_text().strip() != "0"
    assert "No space left on device" in _final_error(log), log[-3000:]
    written = sorted(after_full.glob("*.h5"))
    assert 0 < len(written) < len(eids), "the disk filled up mid-run"
    for path in written:  # what is there opens whole
        with h5py.File(path) as handle:
            np.testing.assert_array_equal(handle["tissue"][()], dxa.tissue)
    assert sorted(os.listdir(after_full)) == sorted([p.name for p in written] + ["pipeline-unzip-dxa"])

    assert (tmp_path / "rerun.rc").read_text().strip() == "0", (tmp_path / "rerun.log").read_text()[-3000:]
    assert len(list(after_rerun.glob("*.h5"))) == len(eids)
    rows = read_manifests(after_rerun)
    assert sorted(row["status"] for row in rows) == sorted(["skipped"] * len(written) + ["ok"] * (8 - len(written)))
    assert list((after_rerun / "pipeline-unzip-dxa" / "tmp").iterdir()) == []


@pytest.mark.slow
def test_a_read_only_output_folder_stops_the_run_with_one_clear_error(tmp_path, dxa):
    _write_dxa_zips(tmp_path / "raw" / "dxas", dxa, 3)
    out = tmp_path / "dxas-processed"
    (out / "pipeline-unzip-dxa" / "tmp").mkdir(parents=True)
    result = _in_private_mounts(
        f"""
        mount --bind {out} {out} && mount -o remount,bind,ro {out}
        {sys.executable} {REPO / 'main.py'} stage=unzip_dxa paths.root={tmp_path} hydra.run.dir={tmp_path / 'run'}
        """,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "Read-only file system" in _final_error(result.stderr), result.stderr[-3000:]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["pipeline-unzip-dxa", "pipeline-unzip-dxa/tmp"]


@pytest.mark.slow
def test_an_output_folder_that_cannot_be_made_stops_the_run_with_one_clear_error(tmp_path, dxa, run_main):
    _write_dxa_zips(tmp_path / "raw" / "dxas", dxa, 2)
    (tmp_path / "a-file").write_text("not a folder")
    result = run_main("stage=unzip_dxa", f"paths.root={tmp_path}", f"stage.output_dir={tmp_path / 'a-file' / 'out'}")
    assert result.returncode != 0
    assert _final_error(result.stderr) == f"unzip_dxa: cannot write to {tmp_path / 'a-file' / 'out'}: Not a directory"
    assert (tmp_path / "a-file").read_text() == "not a folder"


# --- outputs that exist but do not open ------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["hdf5", "pickle"])
def test_an_output_that_does_not_open_is_redone(tmp_path, dxa, compose, writer):
    eids = _write_dxa_zips(tmp_path / "raw" / "dxas", dxa, 3)
    overrides = ["stage=unzip_dxa", f"writer={writer}", f"paths.root={tmp_path}", "n_jobs=1"]
    run_stage_from_config(compose(overrides))
    out = tmp_path / "dxas-processed"
    paths = {eid: out / (f"{eid}_20158_2_0.h5" if writer == "hdf5" else f"{eid}_20158_2_0/{eid}_20158_2_0.pkl")
             for eid in eids}
    truncated, emptied = paths[eids[0]], paths[eids[1]]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])  # e.g. copied off a full disk
    emptied.write_bytes(b"")

    [summary] = run_stage_from_config(compose(overrides))
    by_eid = {row.eid: row for row in summary.rows}
    assert [by_eid[eid].status for eid in eids] == ["ok", "ok", "skipped"]
    assert by_eid[eids[0]].reason == by_eid[eids[1]].reason == "redone: the previous output did not open"
    for eid in eids[:2]:
        np.testing.assert_array_equal(_tissue(paths[eid]), dxa.tissue)


def _tissue(path: Path) -> np.ndarray:
    if path.suffix == ".pkl":
        return safe_load(path)["tissue"]
    with h5py.File(path) as handle:
        return handle["tissue"][()]


# --- pickles the pipeline did not write ------------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this calls ``open(marker, "w")``: what a malicious pickle does, harmlessly."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_hostile_pickle_fails_its_own_input_and_runs_no_code(tmp_path, compose):
    make_cohort(tmp_path / "raw", n_subjects=2, seed=3)
    common = [f"paths.root={tmp_path}", "writer=pickle", "n_jobs=1", "qc=false", "allow_failures=true"]
    for stage in ("unzip_dxa", "unzip_mri"):
        run_stage_from_config(compose([f"stage={stage}", *common]))
    marker = tmp_path / "code-ran"
    hostile = {"fat_scan": _RunsCode(marker), "pixel_spacing": [2.0, 2.0, 2.0]}
    (tmp_path / "mris-processed" / "1000009_20201_2_0.pkl").write_bytes(pickle.dumps(hostile))
    dxa_folder = tmp_path / "dxas-processed" / "1000009_20158_2_0"
    dxa_folder.mkdir()
    (dxa_folder / "1000009_20158_2_0.pkl").write_bytes(pickle.dumps({"tissue": _RunsCode(marker)}))

    [slices] = run_stage_from_config(compose(["stage=extract_slices", *common]))
    rows = {row.eid: row for row in slices.rows}
    assert rows[1000009].status == "failed"
    refused = "refusing to load io.open: not a plain array pickle"
    assert rows[1000009].reason == f"not a readable pickle of arrays ({refused})"
    assert rows[1000001].status == rows[1000002].status == "ok"
    shutil.copyfile(tmp_path / "mris-processed" / "1000009_20201_2_0.pkl",
                    tmp_path / "mri-mid-corr-slices" / "1000009_20201_2_0.pkl")  # a hostile slab beside the others
    [collected] = run_stage_from_config(compose(["stage=collect", *common]))
    rows = {row.eid: row for row in collected.rows}
    assert rows[1000009].status == "failed" and refused in rows[1000009].reason
    assert rows[1000001].status == rows[1000002].status == "ok"
    assert not marker.exists(), "no code in a pickle ever runs"


# --- withdrawals: exclude_eids_file in every stage -------------------------------------------------------------------


def _mentions(root: Path, eid: int, *, skip: Path) -> list[Path]:
    """Files or folders under ``root`` (but not under ``skip``) whose name or bytes mention ``eid``."""
    found = []
    for path in root.rglob("*"):
        if skip in path.parents or path == skip:
            continue
        if str(eid) in path.name or (path.is_file() and str(eid).encode() in path.read_bytes()):
            found.append(path)
    return found


def test_every_processing_stage_honours_the_exclusion_list(tmp_path, compose):
    make_cohort(tmp_path / "raw", n_subjects=3, seed=4)
    withdrawn = 1000002
    (tmp_path / "w12345_20261126.csv").write_text(f"eid\n{withdrawn}\n")
    common = [f"paths.root={tmp_path}", f"exclude_eids_file={tmp_path / 'w12345_20261126.csv'}", "n_jobs=1"]
    for stage in ("unzip_dxa", "unzip_mri", "extract_slices", "collect", "report"):
        summaries = run_stage_from_config(compose([f"stage={stage}", *common]))
        assert all(row.eid != withdrawn for summary in summaries for row in summary.rows), stage
    with h5py.File(tmp_path / "collection" / "collection-shard0of1.h5") as handle:
        assert sorted(handle["eids"][()]) == [1000001, 1000003]
    assert _mentions(tmp_path, withdrawn, skip=tmp_path / "raw") == [tmp_path / "w12345_20261126.csv"]
    # the download stage never asks for them either:
    # tests/stages/test_download.py::test_excluded_eids_are_never_downloaded


# --- nothing written outside the stage folders -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_writes_nothing_outside_its_folders_and_the_hydra_run_folder(tmp_path):
    (tmp_path / "tmpdir").mkdir()
    result = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "stage.subjects=2", f"paths.root={tmp_path / 'data'}", "n_jobs=2"],
        cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp_path / "tmpdir")}, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(tmp_path)) == ["data", "outputs", "tmpdir"]
    assert os.listdir(tmp_path / "tmpdir") == [], "no temporary files outside the stage folders"
    assert os.listdir(tmp_path / "outputs") == ["runs"]
    assert len(os.listdir(tmp_path / "outputs" / "runs")) == 1, "one Hydra run folder"
    stage_folders = {"raw", "dxas-processed", "mris-processed", "mri-mid-corr-slices", "collection", "pipeline-report",
                     "pipeline-runs"}  # pipeline-runs: where each run recorded its log folder (for withdrawals)
    assert set(os.listdir(tmp_path / "data")) == stage_folders
    for folder in stage_folders - {"raw", "pipeline-report", "pipeline-runs"}:
        for name in os.listdir(tmp_path / "data" / folder):
            assert name.startswith(("pipeline-", "1000001_", "1000002_", "collection-shard")), (folder, name)


# --- issue 20: an output folder among the inputs ---------------------------------------------------------------------


@pytest.mark.parametrize(("stage", "output"), [
    ("extract_slices", "mris-processed"),  # its own input: every stitched volume would become its slab
    ("unzip_mri", "raw/mris/stitched"),  # inside its own input
    ("extract_slices", "dxas-processed"),  # collect's input
])
def test_an_output_folder_that_is_or_is_inside_an_input_folder_is_refused_at_start_up(tmp_path, run_main, stage,
                                                                                       output):
    volume = tmp_path / "mris-processed" / "1000001_20201_2_0.h5"
    volume.parent.mkdir(parents=True)
    volume.write_bytes(b"a stitched volume")
    for folder in ("raw/mris", "dxas-processed"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    result = run_main(f"stage={stage}", f"paths.root={tmp_path}", f"stage.output_dir={tmp_path / output}")
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert f"stage.output_dir={tmp_path / output} is" in line and "input" in line, line
    assert volume.read_bytes() == b"a stitched volume"
    assert not (tmp_path / output / "pipeline-extract-slices").exists()
    assert not (tmp_path / "hydra-run").exists(), "a refused run leaves no run folder"


# --- issue 20: text from a file cannot forge a log line ---------------------------------------------------------------


@pytest.mark.slow
def test_a_newline_in_a_dicom_string_cannot_forge_a_log_line(tmp_path, dxa, run_main):
    """Another participant's image (passed over with a note naming its ProtocolName) whose ProtocolName holds a
    newline and a terminal escape: the note is logged on one line, with the controls written as escapes."""
    forged = "Arm\n2026-12-06 00:00:00,000][ukbb_pipeline][ERROR] - forged\x1b[2J"

    def foreign(dataset):
        dataset.PatientID, dataset.ProtocolName = "someone else", forged

    path = _dxa_variant(dxa, tmp_path / "raw" / "dxas", lambda members, slices: edits.edit(
        members, [_member(slices, 1)], foreign))
    assert path.name == "1000200_20158_2_0.zip"
    result = run_main("stage=unzip_dxa", f"paths.root={tmp_path}", "qc=false", "n_jobs=1")
    assert result.returncode == 0, result.stderr[-2000:]
    log = (tmp_path / "hydra-run" / "ukbb-pipeline.log").read_text()
    assert "forged" in log
    assert not [line for line in log.splitlines() if line.startswith("2026-12-06")], "no forged line"
    assert "\x1b" not in log
    (line,) = [line for line in log.splitlines() if "forged" in line]
    assert "ignored 1 image(s) of another participant" in line and "Arm\\n2026-12-06" in line and "\\x1b[2J" in line


# --- issue 20, case 9: a run stopped by a signal loses nothing --------------------------------------------------------


def _manifest_outputs(out: Path) -> set[str]:
    return {Path(row["output"]).name for row in read_manifests(out) if row["output"]}


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_end_a_run_cleanly_with_every_finished_input_in_the_manifest(tmp_path, dxa, signum):
    """scancel (SIGTERM to the job) or Ctrl-C (SIGINT to the terminal's process group) mid-run: the manifest holds a
    row for every output written, the run ends with one line and exit 128 + the signal, and no traceback."""
    eids = _write_dxa_zips(tmp_path / "raw" / "dxas", dxa, 24)
    out = tmp_path / "dxas-processed"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), "stage=unzip_dxa", f"paths.root={tmp_path}", "n_jobs=2",
         f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, start_new_session=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("*.h5"))) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    os.killpg(process.pid, signum) if signum == signal.SIGINT else process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr + stdout
    assert stderr.strip().splitlines() == [
        f"python main.py: stopped by {signum.name}: the inputs finished so far are in the manifest; a re-run does "
        f"the rest [exit {128 + signum}]"], stderr[-3000:]
    written = {path.name for path in out.glob("*.h5")}
    assert 3 <= len(written) < len(eids), "the signal landed mid-run"
    assert written <= _manifest_outputs(out), "every output written has its manifest row"
    _only_outputs_and_metadata_of(out, "pipeline-unzip-dxa")


def _only_outputs_and_metadata_of(folder: Path, meta: str) -> None:
    stray = [name for name in os.listdir(folder) if not name.endswith(".h5") and name != meta]
    assert stray == [], "no half-written file among the outputs"


@pytest.mark.slow
def test_a_run_killed_before_its_manifest_flush_keeps_the_qc_flags_of_what_it_made(tmp_path, run_main):
    """SIGKILL (the OOM killer, a lost node) leaves outputs whose manifest rows were never written. The re-run skips
    them and reads their QC figures back from the outputs themselves: the swaps are still flagged."""
    raw = tmp_path / "raw" / "mris"
    eids = [1000700 + i for i in range(4)]
    for eid in eids:
        write_mri_zip(raw / f"{eid}_20201_2_0.zip", eid=eid, phantom=Phantom.random(eid),
                      quirks=MriQuirks(swapped_station=3))
    out = tmp_path / "mris-processed"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), "stage=unzip_mri", f"paths.root={tmp_path}", "n_jobs=2",
         f"hydra.run.dir={tmp_path / 'killed'}"], cwd=tmp_path, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def unrecorded() -> set[str]:
        written = {path.name for path in out.glob("*.h5")}
        return written - _manifest_outputs(out) if written else set()

    deadline = time.monotonic() + 240
    while not unrecorded() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # an output whose row waits for the manifest's next flush (10 s)
    process.wait(timeout=30)
    assert unrecorded(), "the kill landed between an output and its manifest row"

    rerun = run_main("stage=unzip_mri", f"paths.root={tmp_path}", "n_jobs=1")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    records = cohort_records(tmp_path, stages=["unzip_mri"])
    assert len(records) == len(eids)
    assert all(record["flags"].startswith("swapped station 3") for record in records), [r["flags"] for r in records]
    assert {record["swapped_stations"] for record in records} == {"3"}


# --- issue 20, case 14: every full disk is exit 3 ---------------------------------------------------------------------


def _kilobytes_used(folder: Path) -> int:
    return sum(path.stat().st_blocks * 512 for path in folder.rglob("*") if path.is_file()) // 1024


@pytest.mark.slow
def test_a_disk_that_fills_while_contact_sheets_are_drawn_is_exit_3(tmp_path, dxa):
    """The outputs and the manifest fit, the contact sheet does not: the run stops with one line, exit 3 (a full
    disk hides nothing: the next write, anywhere, would fail too), and leaves no partial sheet."""
    _write_dxa_zips(tmp_path / "raw" / "dxas", dxa, 3)
    out = tmp_path / "disk"
    out.mkdir()
    main = (f"{sys.executable} {REPO / 'main.py'} stage=unzip_dxa paths.root={tmp_path} stage.output_dir={out} "
            "n_jobs=1 stage.subject_pictures=false")
    result = _in_private_mounts(
        f"""
        mount -t tmpfs -o size=16m tmpfs {out}
        {main} qc=false hydra.run.dir={tmp_path / 'measure'} > /dev/null 2>&1
        used=$(du -sk {out} | cut -f1)
        rm -rf {out}/* && mount -o remount,size=$((used + 24))k {out}
        {main} hydra.run.dir={tmp_path / 'run'} > {tmp_path / 'full.log'} 2>&1; echo $? > {tmp_path / 'full.rc'}
        find {out} -name '*.png' > {tmp_path / 'pngs'}; find {out} -name '*.tmp' >> {tmp_path / 'pngs'}
        ls {out} > {tmp_path / 'listing'}
        """,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "full.log").read_text()
    assert (tmp_path / "full.rc").read_text().strip() == "3", log[-3000:]
    qc = out / "pipeline-unzip-dxa" / "qc"
    assert _final_error(log) == f"unzip_dxa: cannot write to {qc}: No space left on device"
    assert sorted((tmp_path / "listing").read_text().split()) == sorted(
        [f"{1000600 + i}_20158_2_0.h5" for i in range(3)] + ["pipeline-unzip-dxa"]), "the outputs are all there"
    assert (tmp_path / "pngs").read_text() == "", "no partial sheet, no scratch file"


@pytest.mark.slow
def test_collect_on_a_disk_that_fills_mid_shard_is_exit_3_not_a_crash(tmp_path):
    """collect's shard file fills the disk part-way (at several points): each run ends with one line and exit 3,
    never a segfault (exit 139) after the message, and leaves neither a shard file nor a scratch file."""
    from paired_inputs import Visit, write_visits

    write_visits(tmp_path, [Visit(1000001 + i) for i in range(6)])
    out = tmp_path / "disk"
    out.mkdir()
    main = (f"{sys.executable} {REPO / 'main.py'} stage=collect paths.root={tmp_path} stage.output_dir={out} "
            "n_jobs=2 qc=false")
    fractions = (0.3, 0.5, 0.7, 0.9)
    runs = "\n".join(
        f"""rm -rf {out}/* && mount -o remount,size=$((shard * {int(f * 100)} / 100 + 8))k {out}
        {main} hydra.run.dir={tmp_path / f'run{f}'} > {tmp_path / f'full{f}.log'} 2>&1; echo $? > {tmp_path / f'rc{f}'}
        find {out} -name 'collection-shard*' -o -name '*.tmp' > {tmp_path / f'left{f}'}"""
        for f in fractions)
    result = _in_private_mounts(
        f"""
        mount -t tmpfs -o size=64m tmpfs {out}
        {main} hydra.run.dir={tmp_path / 'measure'} > {tmp_path / 'measure.log'} 2>&1
        shard=$(du -sk {out}/collection-shard0of1.h5 | cut -f1)
        {runs}
        """,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for f in fractions:
        log = (tmp_path / f"full{f}.log").read_text()
        assert (tmp_path / f"rc{f}").read_text().strip() == "3", (f, log[-3000:])
        assert "No space left on device" in _final_error(log)
        assert (tmp_path / f"left{f}").read_text() == "", "no shard file and no scratch file left"
