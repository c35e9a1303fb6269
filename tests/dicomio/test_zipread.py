"""Reading zips in memory, front to back, within bounds: bombs, lying headers, hostile names and damage become
reasons; at most ten files streamed at once per machine."""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from ukbb_pipeline.dicomio import zipread
from ukbb_pipeline.dicomio.zipread import ZipMembers, iter_members
from ukbb_pipeline.errors import InputError


def _zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_only_dcm_members_are_read_each_once(tmp_path):
    path = _zip(tmp_path / "a.zip", {"x.dcm": b"one", "manifest.cvs": b"header", "sub/": b"", "Y.DCM": b"two"})
    assert [(m.name, m.data) for m in iter_members(path)] == [("x.dcm", b"one"), ("Y.DCM", b"two")]


def test_hostile_member_names_are_labels_never_paths(tmp_path):
    path = _zip(tmp_path / "a.zip", {"../../escape.dcm": b"a", "/etc/absolute.dcm": b"b"})
    before = set(os.listdir(tmp_path))
    assert [m.data for m in iter_members(path)] == [b"a", b"b"]
    assert set(os.listdir(tmp_path)) == before
    assert not (tmp_path.parent / "escape.dcm").exists()


def test_a_zip_bomb_is_refused_before_inflating(tmp_path):
    path = _zip(tmp_path / "bomb.zip", {"a.dcm": b"\0" * (3 * 1024 * 1024)})  # compresses to a few kB
    assert path.stat().st_size < 50_000
    with pytest.raises(InputError, match="declares 3 MB, over the limit of 1 MB"):
        list(iter_members(path, max_member_mb=1))
    with pytest.raises(InputError, match="over the limit of 2 MB"):
        list(iter_members(_zip(tmp_path / "b.zip", {f"{i}.dcm": b"\0" * 1024 * 1024 for i in range(3)}),
                          max_total_mb=2))
    with pytest.raises(InputError, match="more than the limit of 2"):
        list(iter_members(_zip(tmp_path / "c.zip", {f"{i}.dcm": b"x" for i in range(3)}), max_members=2))


def test_a_header_that_understates_the_size_cannot_inflate_more(tmp_path):
    path = _zip(tmp_path / "liar.zip", {"a.dcm": b"A" * 100_000})
    raw = bytearray(path.read_bytes())
    # set the declared uncompressed size (local header offset 22, central directory offset 24) to 10 bytes
    raw[22:26] = struct.pack("<I", 10)
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24 : central + 28] = struct.pack("<I", 10)
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="damaged"):
        list(iter_members(path))


def test_not_a_zip_truncated_and_corrupt_members_are_reasons(tmp_path):
    (tmp_path / "text.zip").write_text("hello")
    with pytest.raises(InputError, match="not a zip"):
        list(iter_members(tmp_path / "text.zip"))
    whole = _zip(tmp_path / "whole.zip", {f"{i}.dcm": os.urandom(20_000) for i in range(5)}).read_bytes()
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match="not a zip"):
        list(iter_members(tmp_path / "cut.zip"))
    flipped = bytearray(whole)
    flipped[200] ^= 0xFF  # inside the first member's data
    (tmp_path / "flipped.zip").write_bytes(bytes(flipped))
    with pytest.raises(InputError, match="damaged"):
        list(iter_members(tmp_path / "flipped.zip"))


def test_members_read_as_zipfile_reads_them_whatever_their_compression(tmp_path):
    members = {"a.dcm": os.urandom(3000) + b"\0" * 5000, "b.dcm": b"", "c.dcm": b"xyz" * 999}
    for compression in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED, zipfile.ZIP_BZIP2):
        path = _zip(tmp_path / f"{compression}.zip", members, compression)
        with ZipMembers(path) as opened:
            assert {info.filename: opened.read(info) for info in opened.entries} == members
            assert [opened.peek(info, 100) for info in opened.entries] == [data[:100] for data in members.values()]


def test_a_member_whose_bytes_fail_their_crc_is_damaged_naming_it(tmp_path):
    path = _zip(tmp_path / "a.zip", {"first.dcm": b"A" * 1000, "second.dcm": b"B" * 1000}, zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"B" * 10) + 500] ^= 0x01  # stored: the bytes still inflate, only the CRC shows it
    path.write_bytes(bytes(raw))
    with ZipMembers(path) as opened:
        assert opened.read(opened.entries[0]) == b"A" * 1000
        with pytest.raises(InputError, match=r"member 'second.dcm' is damaged \(bad CRC-32\)"):
            opened.read(opened.entries[1])
        assert opened.peek(opened.entries[1], 10) == b"B" * 10  # a peek checks no CRC: its bytes are not used


def test_a_directory_pointing_past_the_file_or_at_another_member_is_damaged(tmp_path):
    path = _zip(tmp_path / "a.zip", {"one.dcm": b"1" * 100, "two.dcm": b"2" * 100})
    raw = bytearray(path.read_bytes())
    central = raw.rfind(b"PK\x01\x02")  # the second member's directory entry: point it at the first member
    raw[central + 42 : central + 46] = struct.pack("<I", 0)
    path.write_bytes(bytes(raw))
    with ZipMembers(path) as opened, pytest.raises(InputError, match=r"two\.dcm' is damaged"):
        opened.read(opened.entries[1])
    raw[central + 42 : central + 46] = struct.pack("<I", 10_000_000)
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"two\.dcm' is damaged"):
        list(iter_members(path))


def test_a_zip_is_read_front_to_back_in_a_few_large_reads_never_by_offset(tmp_path, monkeypatch):
    """dxfuse prefetches only files read sequentially: every read continues where the last ended, none seeks."""
    members = {f"{i:04d}.dcm": os.urandom(3000) + bytes(20_000) for i in range(300)}
    path = _zip(tmp_path / "a.zip", members)
    monkeypatch.setattr(zipread, "READ_CHUNK", 1024 * 1024)  # a 1 MB chunk, so this small zip takes a few reads
    reads: list[tuple[int, int]] = []
    real_readv = os.readv

    def counting_readv(fd, buffers):
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        got = real_readv(fd, buffers)
        reads.append((offset, got))
        return got

    def refused(*args):
        raise AssertionError("a positioned read or a seek")

    monkeypatch.setattr(os, "readv", counting_readv)
    monkeypatch.setattr(os, "pread", refused)
    with ZipMembers(path) as opened:
        monkeypatch.setattr(os, "lseek", refused)
        assert {info.filename: opened.read(info) for info in opened.entries} == members
    size = path.stat().st_size
    assert [offset for offset, _ in reads] == list(range(0, size, 1024 * 1024))  # each read starts where one ended
    assert sum(got for _, got in reads) == size and len(reads) == -(-size // (1024 * 1024))


def test_a_zip_larger_than_its_bounds_allow_is_refused_before_it_is_read(tmp_path):
    path = _zip(tmp_path / "big.zip", {"a.dcm": os.urandom(3 * 1024 * 1024)}, zipfile.ZIP_STORED)
    with pytest.raises(InputError, match=r"the zip is 3 MB, over the \d+ MB its bounds allow"):
        zipread.read_whole(path, max_bytes=2 * 1024 * 1024)


def test_at_most_ten_files_are_streamed_at_once_on_a_machine(tmp_path, monkeypatch):
    """Slots are shared by every process of the machine; the eleventh reader waits for a free one."""
    monkeypatch.setenv(zipread.STREAM_NAMESPACE, tmp_path.name)
    with contextlib.ExitStack() as held:
        slots = {held.enter_context(zipread.stream_slot()) for _ in range(zipread.MAX_STREAMS)}
        assert slots == set(range(zipread.MAX_STREAMS))
        script = ("import time, ukbb_pipeline.dicomio.zipread as z\n"
                  "start = time.monotonic()\n"
                  "with z.stream_slot(): print(round(time.monotonic() - start, 1))")
        waiting = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                                   env={**os.environ, "PYTHONPATH": str(Path(zipread.__file__).parents[2])})
        time.sleep(1.5)
        assert waiting.poll() is None  # all ten slots are taken: the other process waits
    assert float(waiting.communicate(timeout=30)[0]) >= 0.5  # it waited, and gets one once they are freed
