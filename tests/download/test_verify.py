"""A download counts only when the zip is whole; the key file is checked and its content never shown."""

from __future__ import annotations

import logging
import zipfile

import pytest
from fakes import PASSWORD, synthetic_zip, write_key_file

from ukbb_pipeline.download.keyfile import KeyFileError, check_key_file
from ukbb_pipeline.download.verify import zip_problem


@pytest.fixture
def good_zip(tmp_path):
    path = tmp_path / "1000001_20201_2_0.zip"
    path.write_bytes(synthetic_zip("1000001_20201_2_0"))
    return path


def test_a_whole_zip_passes(good_zip):
    assert zip_problem(good_zip) is None


@pytest.mark.parametrize("keep", [0.5, 0.98, 0.0])
def test_a_truncated_zip_fails(good_zip, keep):
    data = good_zip.read_bytes()
    good_zip.write_bytes(data[: int(len(data) * keep)])
    assert "truncated or damaged" in zip_problem(good_zip)


def test_a_flipped_byte_inside_a_member_fails_its_crc(good_zip):
    with zipfile.ZipFile(good_zip) as archive:
        info = archive.getinfo("1.2.840.1.dcm")
    data = bytearray(good_zip.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 100] ^= 0xFF  # inside the member's compressed data
    good_zip.write_bytes(bytes(data))
    assert zip_problem(good_zip) == "member '1.2.840.1.dcm' fails its CRC check; damaged"


def test_an_empty_zip_and_a_non_zip_fail(tmp_path):
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    assert zip_problem(empty) == "the zip has no members"
    html = tmp_path / "error.zip"
    html.write_text("<html>503 Service Unavailable</html>")
    assert "not a complete zip" in zip_problem(html)


def test_a_missing_key_file_is_named(tmp_path):
    with pytest.raises(KeyFileError, match=r"nokey.*does not exist.*stage.key_file"):
        check_key_file(tmp_path / "nokey")


def test_a_malformed_key_file_is_refused_without_showing_its_content(tmp_path):
    path = write_key_file(tmp_path / ".ukbkey", password="short-secret-123")
    with pytest.raises(KeyFileError) as error:
        check_key_file(path)
    assert "short-secret-123" not in str(error.value)
    assert str(path) in str(error.value)


def test_a_key_others_can_read_is_warned_about_by_path_only(tmp_path, caplog):
    path = write_key_file(tmp_path / ".ukbkey", mode=0o644)
    with caplog.at_level(logging.WARNING):
        key = check_key_file(path)
    assert "readable by other users" in caplog.text
    assert f"chmod 600 {path}" in caplog.text
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(key)


def test_a_private_key_gives_no_warning_and_scrubs_its_secret(tmp_path, caplog):
    path = write_key_file(tmp_path / ".ukbkey", mode=0o600)
    with caplog.at_level(logging.WARNING):
        key = check_key_file(path)
    assert caplog.text == ""
    assert key.scrub(f"auth 12345 {PASSWORD} failed") == "auth 12345 <key> failed"
