"""UK Biobank facts have one home (ukbb_pipeline/ukbb.py): every reader of EIDs and channel names agrees with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ukbb_pipeline import ukbb
from ukbb_pipeline.config import Channel
from ukbb_pipeline.download.bulk import read_request_file
from ukbb_pipeline.mri.header import CHANNELS
from ukbb_pipeline.runtime.inputs import parse_input
from ukbb_pipeline.withdraw import named_after


@pytest.mark.parametrize("eid", ["123456", "1234567", "12345678"])
def test_every_reader_takes_the_same_eids(tmp_path, eid):
    assert parse_input(Path(f"{eid}_20201_2_0.zip")).eid == int(eid)
    assert named_after(f"{eid}_20201_2_0.h5", {eid}), "withdraw finds what the stages wrote"
    bulk = tmp_path / "eids.txt"
    bulk.write_text(f"{eid}\n")
    assert read_request_file(bulk).eids == (int(eid),)


def test_an_eid_of_nine_digits_is_no_eid():
    assert not ukbb.EID.match("123456789")
    assert not named_after("123456789_20201_2_0.h5", {"23456789"})


def test_the_dixon_channels_are_named_once():
    assert tuple(channel.value for channel in Channel) == ukbb.DIXON_CHANNELS == CHANNELS
    assert set(ukbb.DIXON_OUTPUT_NAMES) == set(ukbb.DIXON_CHANNELS)
