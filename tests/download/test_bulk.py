"""Download requests: reading EID lists and .bulk files, and splitting the work into tool calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from ukbb_pipeline.download.bulk import (
    BulkRequest,
    keep_eids,
    raw_path,
    read_request_file,
    requests_for,
    split_into_calls,
    write_bulk_file,
)
from ukbb_pipeline.download.dx import dx_argv, dx_remote_path
from ukbb_pipeline.download.ukbfetch import ukbfetch_argv
from ukbb_pipeline.errors import InputError


def test_an_eid_list_gives_every_eid_field_and_instance(tmp_path):
    path = tmp_path / "eids.txt"
    path.write_text("eid\n1000002\n# a comment\n\n1000001  # trailing comment\n1000002\n")
    source = read_request_file(path)
    assert source.eids == (1000002, 1000001)  # file order, duplicates once
    requests = requests_for(source, fields=[20158, 20201], instances=[2, 3])
    assert [r.stem for r in requests] == [
        "1000002_20158_2_0", "1000002_20158_3_0", "1000002_20201_2_0", "1000002_20201_3_0",
        "1000001_20158_2_0", "1000001_20158_3_0", "1000001_20201_2_0", "1000001_20201_3_0",
    ]


def test_every_eid_on_a_line_is_requested_and_a_byte_order_mark_is_accepted(tmp_path):
    """Issue 20, case 4: the download's EID lists read like every other EID list."""
    path = tmp_path / "eids.csv"
    path.write_bytes("\ufeffeid\r\n1000002,1000003,1000004\r\n1000005\t1000006\r\n".encode())
    assert read_request_file(path).eids == (1000002, 1000003, 1000004, 1000005, 1000006)


def test_a_bulk_file_gives_its_own_lines_of_the_configured_fields_and_instances(tmp_path):
    path = tmp_path / "ukb12345.bulk"
    path.write_text("1000001 20201_2_0\n1000001 20201_3_0\n1000002 20201_2_0\n1000003 20252_2_0\n1000004 20201_2_1\n")
    source = read_request_file(path)
    assert source.is_bulk
    requests = requests_for(source, fields=[20158, 20201], instances=[2])
    assert [r.bulk_line for r in requests] == ["1000001 20201_2_0", "1000002 20201_2_0", "1000004 20201_2_1"]


def test_bad_lines_are_refused_with_their_line_numbers(tmp_path):
    path = tmp_path / "eids.txt"
    path.write_text("1000001\n10000x1\n1000002\nabc\n")
    with pytest.raises(InputError, match=r"line 2 .*line 4 ") as error:
        read_request_file(path)
    assert "line 1 " not in str(error.value)
    assert "line 3 " not in str(error.value)


def test_a_bulk_file_with_a_malformed_datafile_or_a_bare_eid_is_refused(tmp_path):
    path = tmp_path / "x.bulk"
    path.write_text("1000001 20201_2_0\n1000002 20201_2\n1000003\n")
    with pytest.raises(InputError, match=r"line 2 .*<field>_<instance>_<array>.*line 3 ") as error:
        read_request_file(path)
    assert "line 1 " not in str(error.value)


def test_a_missing_eid_list_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.txt"):
        read_request_file(tmp_path / "nowhere.txt")


def test_excluded_eids_are_never_requested():
    requests = [BulkRequest(eid, 20201, 2) for eid in (1000001, 1000002, 1000003)]
    kept = keep_eids(requests, only=frozenset({1000001, 1000002}), exclude=frozenset({1000002}))
    assert [r.eid for r in kept] == [1000001]


def test_zips_go_to_the_documented_raw_folders(tmp_path):
    assert raw_path(tmp_path, BulkRequest(1000001, 20158, 2)) == tmp_path / "dxas" / "1000001_20158_2_0.zip"
    assert raw_path(tmp_path, BulkRequest(1000001, 20201, 3)) == tmp_path / "mris" / "1000001_20201_3_0.zip"
    assert raw_path(tmp_path, BulkRequest(1000001, 20204, 2)) == tmp_path / "20204" / "1000001_20204_2_0.zip"


@pytest.mark.parametrize(
    ("n_files", "parallel", "sizes"),
    [
        (48, 10, [5] * 8 + [4] * 2),  # every process gets work, not one call of 48
        (3, 10, [1, 1, 1]),
        (2500, 10, [250] * 10),
        (25_000, 10, [1000] * 25),  # never more than 1000 per call
        (10_500, 10, [955] * 6 + [954] * 5),  # 11 calls, sizes differ by one at most
        (7, 1, [7]),
        (0, 10, []),
    ],
)
def test_calls_hold_at_most_1000_files_and_keep_every_process_busy(n_files, parallel, sizes):
    items = list(range(n_files))
    calls = split_into_calls(items, parallel=parallel)
    assert [len(call) for call in calls] == sizes
    assert [item for call in calls for item in call] == items  # in order, each exactly once


def test_the_batch_file_has_one_eid_and_datafile_per_line(tmp_path):
    path = tmp_path / "a.bulk"
    assert write_bulk_file(path, [BulkRequest(1000001, 20201, 2), BulkRequest(1000002, 20158, 3)]) == 2
    assert path.read_text() == "1000001 20201_2_0\n1000002 20158_3_0\n"


def test_ukbfetch_flags_are_glued_to_their_values_and_capped_at_1000(tmp_path):
    argv = ukbfetch_argv("/bin/ukbfetch", key_file=Path("/k/.ukbkey"), batch_file=Path("/s/b.bulk"),
                         start_line=1, max_files=5)
    assert argv == ["/bin/ukbfetch", "-a/k/.ukbkey", "-b/s/b.bulk", "-s1", "-m5"]
    with pytest.raises(ValueError, match=r"1 to 1000"):
        ukbfetch_argv("ukbfetch", key_file=Path("k"), batch_file=Path("b"), start_line=1, max_files=1001)


def test_dx_paths_follow_the_research_analysis_platform_layout(tmp_path):
    folders = {20201: "/Bulk/Whole Body MRI/Dixon/"}
    request = BulkRequest(1234567, 20201, 2)
    plain = dx_remote_path(request, folders=folders, project=None)
    assert plain == "/Bulk/Whole Body MRI/Dixon/12/1234567_20201_2_0.zip"
    remote = dx_remote_path(request, folders=folders, project="project-Gk1")
    assert remote == "project-Gk1:/Bulk/Whole Body MRI/Dixon/12/1234567_20201_2_0.zip"
    argv = dx_argv("dx", remote_path=remote, output=tmp_path / "1234567_20201_2_0.zip")
    assert argv[:3] == ["dx", "download", remote]  # one argument, spaces and all: no shell in between
    with pytest.raises(KeyError, match="20158"):
        dx_remote_path(BulkRequest(1234567, 20158, 2), folders=folders, project=None)
