"""Finding inputs (flat or in the Research Analysis Platform's nested layout) and reading EID lists."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from ukbb_pipeline.errors import InputError
from ukbb_pipeline.runtime.inputs import discover_inputs, filter_by_eid, parse_input, read_eid_list


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_names_give_eid_field_instance_and_array():
    item = parse_input(Path("/raw/1234567_20201_3_0.zip"))
    assert (item.stem, item.eid, item.field, item.instance, item.array) == ("1234567_20201_3_0", 1234567, 20201, 3, 0)
    assert parse_input(Path("/raw/notes.zip")).eid is None


def test_flat_and_nested_layouts_are_both_found(tmp_path):
    _touch(tmp_path / "1000001_20201_2_0.zip")
    _touch(tmp_path / "21" / "2100005_20201_2_0.zip")  # /mnt/project/Bulk/.../<first two digits>/
    _touch(tmp_path / "21" / "readme.txt")
    _touch(tmp_path / "other" / "3000001_20201_2_0.zip")  # not a two-digit folder: not an input folder
    found = [item.stem for item in discover_inputs(tmp_path, suffix=".zip")]
    assert found == ["1000001_20201_2_0", "2100005_20201_2_0"]


def test_with_an_eid_list_only_the_needed_two_digit_folders_are_listed(tmp_path, monkeypatch):
    for eid in (1000001, 2100005, 3300007):
        _touch(tmp_path / str(eid)[:2] / f"{eid}_20201_2_0.zip")
    listed: list[Path] = []
    original_scandir = os.scandir

    def recording_scandir(path):
        listed.append(Path(path))
        return original_scandir(path)

    monkeypatch.setattr(os, "scandir", recording_scandir)
    found = discover_inputs(tmp_path, suffix=".zip", eids={2100005})
    assert [item.eid for item in found] == [2100005]
    assert set(listed) == {tmp_path, tmp_path / "21"}


def test_what_discovery_passes_over_is_counted_and_named_in_the_log(tmp_path, caplog):
    _touch(tmp_path / "1000001_20201_2_0.zip")
    _touch(tmp_path / "1000002_20201_2_0.ZIP")  # names are case-sensitive: UK Biobank's are lower case
    _touch(tmp_path / "extra" / "3000001_20201_2_0.zip")  # not a two-digit folder
    _touch(tmp_path / "21" / "readme.txt")
    _touch(tmp_path / ".complete-6")  # hidden and pipeline-* entries are the pipeline's own: not mentioned
    _touch(tmp_path / "pipeline-download" / "x.csv")
    with caplog.at_level(logging.WARNING):
        found = discover_inputs(tmp_path, suffix=".zip")
    assert [item.stem for item in found] == ["1000001_20201_2_0"]
    assert [record.getMessage() for record in caplog.records] == [
        f"passed over 3 entries in {tmp_path} (looked for *.zip inputs, flat or in two-digit <nn>/ folders): "
        "'1000002_20201_2_0.ZIP', '21/readme.txt', 'extra/'"]


def test_nothing_passed_over_says_nothing(tmp_path, caplog):
    _touch(tmp_path / "1000001_20201_2_0.zip")
    with caplog.at_level(logging.WARNING):
        discover_inputs(tmp_path, suffix=".zip")
    assert caplog.records == []


def test_a_missing_input_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist: stage=download makes it"):
        discover_inputs(tmp_path / "nope", suffix=".zip", made_by="download")


def test_eid_lists_accept_comments_headers_and_bulk_files(tmp_path):
    plain = tmp_path / "eids.txt"
    plain.write_text("eid\n1000001\n\n# withdrawn later\n1000002  # trailing comment\n")
    assert read_eid_list(plain) == {1000001, 1000002}
    bulk = tmp_path / "ukb.bulk"
    bulk.write_text("1000001 20201_2_0\n1000001 20158_2_0\n1000003 20201_3_0\n")
    assert read_eid_list(bulk) == {1000001, 1000003}


def test_junk_lines_are_refused_with_their_line_numbers(tmp_path):
    junk = tmp_path / "w12345_20261126.csv"
    junk.write_text("1000001\nhello\n1000002\n12\n")
    with pytest.raises(InputError, match=r"lines that are not EIDs: 2 \('hello'\), 4 \('12'\)"):
        read_eid_list(junk)


def test_exclusions_win_and_nameless_inputs_are_kept_for_their_reason(tmp_path):
    items = [parse_input(tmp_path / name) for name in ("1000001_20201_2_0.zip", "1000002_20201_2_0.zip", "odd.zip")]
    kept = filter_by_eid(items, only=None, exclude={1000002})
    assert [item.stem for item in kept] == ["1000001_20201_2_0", "odd"]
    kept = filter_by_eid(items, only={1000001, 1000002}, exclude={1000002})
    assert [item.stem for item in kept] == ["1000001_20201_2_0"]


def test_every_eid_on_a_line_is_read_whatever_the_separator(tmp_path):
    """Issue 20, case 4: a withdrawal list with several EIDs on a line withdraws every one of them."""
    listed = tmp_path / "w12345_20261126.csv"
    listed.write_text("1000002,1000003,1000004\n1000005 1000006\t1000007\n\"1000008\";\"1000009\"\n")
    assert read_eid_list(listed) == set(range(1000002, 1000010))


def test_a_list_saved_with_a_byte_order_mark_is_read(tmp_path):
    listed = tmp_path / "w12345_20261126.csv"
    listed.write_bytes("\ufeffeid\r\n1000002\r\n1000003\r\n".encode())
    assert read_eid_list(listed) == {1000002, 1000003}
    listed.write_bytes("\ufeff1000002\r\n".encode())
    assert read_eid_list(listed) == {1000002}


def test_a_line_with_an_eid_and_junk_is_refused_not_half_read(tmp_path):
    junk = tmp_path / "w.csv"
    junk.write_text("1000002,hello\n")
    with pytest.raises(InputError, match=r"lines that are not EIDs: 1 \('1000002,hello'\)"):
        read_eid_list(junk)
