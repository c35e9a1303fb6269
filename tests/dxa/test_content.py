"""Telling the Total Body bone image from the soft-tissue image by content: bright, saturated bone over a dim body
against broad mid-grey soft tissue (ukbb-format.md 3.2, 3.4), checked on phantoms of varied build."""

from __future__ import annotations

import numpy as np
import pytest

from ukbb_pipeline.dxa.content import bone_vote, content
from ukbb_pipeline.synthetic import Phantom, dxa_images


def _pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    phantom = Phantom.random(seed)
    grid = dxa_images.total_body_grid(phantom, rng=np.random.default_rng(seed))
    tissue = dxa_images.soft_tissue_image(dxa_images.tissue_thickness(phantom, grid))
    return tissue, dxa_images.bone_image(phantom, grid, tissue)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_bone_image_is_found_whichever_order_the_pair_comes_in(seed):
    tissue, bone = _pair(seed)
    assert bone_vote(content(tissue), content(bone)) == 1
    assert bone_vote(content(bone), content(tissue)) == -1


def test_the_figures_say_what_the_images_show():
    tissue, bone = _pair(5)
    t, b = content(tissue), content(bone)
    assert t.saturated == 0 and b.saturated > 0.005  # 252 fills bright bone only
    assert t.median > b.median + 40  # a dim body with bright bones, against broad mid-grey tissue
    assert t.body == pytest.approx((tissue > 0).mean())


def test_images_that_cannot_be_told_apart_get_no_vote():
    tissue, bone = _pair(6)
    assert bone_vote(content(tissue), content(tissue)) == 0  # the same image twice
    assert bone_vote(content(bone), content(bone.copy())) == 0
    darker = (tissue * 0.5).astype(np.uint8)  # darker but never saturated, against a saturated one: figures disagree
    brighter_saturated = tissue.copy()
    brighter_saturated[bone == 252] = 252
    assert bone_vote(content(darker), content(brighter_saturated)) == 0
    assert bone_vote(content(np.zeros((4, 4), np.uint8)), content(np.zeros((4, 4), np.uint8))) == 0
