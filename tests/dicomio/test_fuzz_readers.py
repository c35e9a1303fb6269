"""Random corruptions of valid synthetic zips: a reader either succeeds or raises InputError, never anything else,
and never hangs (each read is stopped after HANG_S seconds of wall time, which fails the test).

Two kinds of damage: bytes of the zip file itself (what a broken download looks like), and bytes of the DICOM files
inside an intact zip (what a broken export looks like; the CRCs then pass and only the DICOM parser sees it; the
Dixon reader's version of this is in test_unzip_mri.py).
"""

from __future__ import annotations

import contextlib
import functools
import io
import signal
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ukbb_pipeline.config import ZipLimits
from ukbb_pipeline.errors import InputError
from ukbb_pipeline.runtime.inputs import parse_input
from ukbb_pipeline.stages.unzip_dxa import process_dxa_zip
from ukbb_pipeline.stages.unzip_mri import process_mri_zip
from ukbb_pipeline.synthetic import DxaQuirks, MriQuirks, Phantom, write_dxa_zip, write_mri_zip

FUZZ = settings(max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
HANG_S = 30.0  # wall-clock bound of one read (a clean small zip takes well under a second)

edits = st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from(["flip", "zero", "cut", "insert"]),
              st.integers(1, 64)),
    min_size=1,
    max_size=4,
)


def _damage(data: bytes, plan: list[tuple[float, str, int]]) -> bytes:
    damaged = bytearray(data)
    for where, how, length in plan:
        at = int(where * len(damaged))
        if how == "flip":
            damaged[at : at + length] = bytes(b ^ 0xA5 for b in damaged[at : at + length])
        elif how == "zero":
            damaged[at : at + length] = bytes(len(damaged[at : at + length]))
        elif how == "cut":
            del damaged[at:]
        else:
            damaged[at:at] = b"\x07" * length
        if not damaged:
            break
    return bytes(damaged)


@functools.cache
def _valid_zip(kind: str) -> bytes:
    """One valid small synthetic zip of each kind, made once per session."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "valid.zip"
        if kind == "dxa":
            write_dxa_zip(path, eid=1000001, phantom=Phantom.random(0), quirks=DxaQuirks(regional_images=False))
        else:
            write_mri_zip(path, eid=1000002, phantom=Phantom.random(0), quirks=MriQuirks(manifest_name=None))
        return path.read_bytes()


READERS: dict[str, tuple[Callable, str]] = {  # the reader of each kind, and the name its zip must have
    "dxa": (functools.partial(process_dxa_zip, limits=ZipLimits()), "1000001_20158_2_0.zip"),
    "mri": (process_mri_zip, "1000002_20201_2_0.zip"),
}


class Hung(Exception):
    """A read that took longer than HANG_S: not an InputError, so the test fails."""


@contextlib.contextmanager
def _bounded(seconds: float):
    def stop(signum, frame):
        raise Hung(f"the reader did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _read(reader: Callable, path: Path) -> None:
    reason = ""
    try:
        with _bounded(HANG_S):
            reader(parse_input(path))
    except InputError as error:  # anything else, or a hang, fails the test
        reason = str(error)
    assert "\n" not in reason, "reasons are one line"


@pytest.mark.parametrize("kind", sorted(READERS))
@FUZZ
@given(plan=edits)
def test_damaged_zip_bytes(kind, plan, tmp_path):
    reader, name = READERS[kind]
    path = tmp_path / name
    path.write_bytes(_damage(_valid_zip(kind), plan))
    _read(reader, path)


@pytest.mark.parametrize("kind", sorted(READERS))
@FUZZ
@given(plan=edits, which=st.integers(0, 10_000))
@example(plan=[(0.0203, "flip", 1)], which=0)  # a damaged VR of PixelData once escaped as NotImplementedError
def test_damaged_dicom_members(kind, plan, which, tmp_path):
    reader, name = READERS[kind]
    with zipfile.ZipFile(io.BytesIO(_valid_zip(kind))) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    dicoms = sorted(name for name in members if name.endswith(".dcm"))
    victim = dicoms[which % len(dicoms)]
    members[victim] = _damage(members[victim], plan)
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    _read(reader, path)
