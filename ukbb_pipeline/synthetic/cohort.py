"""A synthetic cohort: one DXA and one MRI zip per subject, laid out as the download stage leaves them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ukbb_pipeline.synthetic.dxa import DxaTruth, dxa_zip_name, write_dxa_zip
from ukbb_pipeline.synthetic.mri import mri_zip_name, write_mri_zip
from ukbb_pipeline.synthetic.mri_truth import MriTruth
from ukbb_pipeline.synthetic.phantom import Phantom
from ukbb_pipeline.synthetic.quirks import DxaQuirks, MriQuirks

MRI_FOLDER = "mris"
DXA_FOLDER = "dxas"


@dataclass(frozen=True)
class SubjectTruth:
    index: int
    eid: int
    phantom: Phantom
    mri: MriTruth
    dxa: DxaTruth


def subject_phantom(*, seed: int, index: int) -> Phantom:
    """The phantom of subject ``index`` of the cohort made with ``seed``."""
    return Phantom.random(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))


def make_cohort(
    raw_dir: str | Path,
    *,
    n_subjects: int,
    size: str = "small",
    seed: int = 0,
    mri_quirks: dict[int, MriQuirks] | None = None,
    dxa_quirks: dict[int, DxaQuirks] | None = None,
    first_eid: int = 1000001,
    instance: int = 2,
) -> list[SubjectTruth]:
    """Write ``raw_dir/mris/<eid>_20201_<instance>_0.zip`` and ``raw_dir/dxas/<eid>_20158_<instance>_0.zip``.

    Subject i (0-based) has eid ``first_eid + i``; quirks are looked up by subject index. Deterministic in ``seed``.
    """
    if n_subjects < 0:
        raise ValueError(f"n_subjects must be >= 0, got {n_subjects}")
    raw = Path(raw_dir)
    mri_quirks, dxa_quirks = mri_quirks or {}, dxa_quirks or {}
    subjects = []
    for index in range(n_subjects):
        eid = first_eid + index
        phantom = subject_phantom(seed=seed, index=index)
        mri = write_mri_zip(
            raw / MRI_FOLDER / mri_zip_name(eid, instance),
            eid=eid,
            instance=instance,
            phantom=phantom,
            size=size,
            quirks=mri_quirks.get(index, MriQuirks()),
            seed=seed,
        )
        dxa = write_dxa_zip(
            raw / DXA_FOLDER / dxa_zip_name(eid, instance),
            eid=eid,
            instance=instance,
            phantom=phantom,
            size=size,
            quirks=dxa_quirks.get(index, DxaQuirks()),
            seed=seed,
        )
        subjects.append(SubjectTruth(index=index, eid=eid, phantom=phantom, mri=mri, dxa=dxa))
    return subjects
