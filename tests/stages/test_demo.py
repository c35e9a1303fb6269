"""The demo keeps to a root of its own: it refuses one that holds inputs or outputs of anything but its cohort."""

from __future__ import annotations

from pathlib import Path

import pytest

from ukbb_pipeline.config import pipeline_config
from ukbb_pipeline.errors import ConfigError
from ukbb_pipeline.stages import demo


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def _demo_root(root: Path, subjects: int = 2) -> None:
    """What a demo run leaves: the marker of its cohort, its zips and outputs named after its EIDs."""
    _touch(root / "raw" / f".complete-{subjects}-small-0-quirks")
    for eid in range(demo.FIRST_EID, demo.FIRST_EID + subjects):
        _touch(root / "raw" / "mris" / f"{eid}_20201_2_0.zip")
        _touch(root / "raw" / "dxas" / f"{eid}_20158_2_0.zip")
        _touch(root / "mris-processed" / f"{eid}_20201_2_0.h5")
        _touch(root / "dxas-processed" / f"{eid}_20158_2_0" / f"{eid}_20158_2_0.pkl")
    _touch(root / "mris-processed" / "pipeline-unzip-mri" / "state.csv")


def test_a_root_of_the_demos_own_making_is_accepted(compose, tmp_path):
    _demo_root(tmp_path)
    config = pipeline_config(compose([f"paths.root={tmp_path}"])).stage
    assert demo.foreign_entries(config) == []
    demo.refuse_a_foreign_root(config)


@pytest.mark.parametrize("foreign", [
    "mris-processed/2345678_20201_2_0.h5",  # an output of a real input, written into the demo's folder
    "raw/mris/2345678_20201_2_0.zip",  # a real zip
    "mri-mid-corr-slices/1000003_20201_2_0.h5",  # an EID beyond the cohort the demo wrote
])
def test_a_root_holding_other_inputs_or_outputs_is_refused_naming_one(compose, tmp_path, foreign):
    _demo_root(tmp_path)
    _touch(tmp_path / foreign)
    config = pipeline_config(compose([f"paths.root={tmp_path}"])).stage
    with pytest.raises(ConfigError) as refused:
        demo.refuse_a_foreign_root(config)
    assert str(refused.value) == (
        f"the demo's paths.root={tmp_path} holds 1 input(s) or output(s) that are not the demo's synthetic subjects "
        f"(e.g. {tmp_path / foreign}): run the demo with a paths.root of its own")


def test_through_the_command_line_the_refusal_is_one_line_before_any_cohort_is_written(run_main, tmp_path):
    root = tmp_path / "data"
    _touch(root / "mris-processed" / "2345678_20201_2_0.h5")
    result = run_main(f"paths.root={root}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"python main.py: the demo's paths.root={root} holds 1")
    assert not (root / "raw").exists()
