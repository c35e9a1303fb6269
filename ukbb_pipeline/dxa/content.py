"""Telling the Total Body bone image from the soft-tissue image by what they show, not by their numbers.

Facts from the UK Biobank example exam (ukbb-format.md 3.2, 3.4): both images have background exactly 0 and the body
in 1-249; 252 marks saturation, which fills bright bone (skull, femurs, pelvis) in the skeleton image; the soft-tissue
image shows the whole body at broad, mid-to-high grey levels, while the bone image is a dim body with a few bright
bones. Two figures of the body pixels (value > 0) follow, each compared between the two images:

- ``saturated``: the share of body pixels at 252. The bone image has clearly more: at least
  ``SATURATION_RATIO`` times the other's and ``MIN_SATURATION_GAP`` more (a share of body pixels).
- ``median``: the median body value. The bone image is darker over most of the body: its median is at least
  ``MIN_MEDIAN_GAP`` grey levels below the other's.

Each figure votes for one image as bone, or abstains when the difference is too small. The images are told apart
when at least one votes and none votes the other way; otherwise (identical images, two tissue-like or two bone-like
images, figures that disagree) they cannot be, and the caller fails the zip rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SATURATED = 252
SATURATION_RATIO = 2.0
MIN_SATURATION_GAP = 0.002  # 0.2 % of the body pixels
MIN_MEDIAN_GAP = 20.0  # grey levels of 0-249


@dataclass(frozen=True)
class Content:
    """What one Total Body image shows."""

    body: float  # share of the image that is body (value > 0)
    saturated: float  # share of the body pixels at 252
    median: float  # median body value

    def describe(self) -> str:
        return f"body {100 * self.body:.0f}%, saturated {100 * self.saturated:.1f}%, median {self.median:.0f}"


def content(image: np.ndarray) -> Content:
    """The figures of one image (in MONOCHROME2 sense)."""
    body = image[image > 0]
    if body.size == 0:
        return Content(body=0.0, saturated=0.0, median=0.0)
    return Content(
        body=body.size / image.size,
        saturated=float(np.count_nonzero(body == SATURATED)) / body.size,
        median=float(np.median(body)),
    )


def bone_vote(first: Content, second: Content) -> int:
    """+1 when the figures say ``second`` is the bone image, -1 when ``first`` is, 0 when they cannot tell."""
    votes = [_saturation_vote(first, second), _median_vote(first, second)]
    if any(v > 0 for v in votes) and not any(v < 0 for v in votes):
        return 1
    if any(v < 0 for v in votes) and not any(v > 0 for v in votes):
        return -1
    return 0


def _saturation_vote(first: Content, second: Content) -> int:
    def clearly_more(a: float, b: float) -> bool:
        return a >= SATURATION_RATIO * b and a - b >= MIN_SATURATION_GAP

    if clearly_more(second.saturated, first.saturated):
        return 1
    if clearly_more(first.saturated, second.saturated):
        return -1
    return 0


def _median_vote(first: Content, second: Content) -> int:
    if first.median - second.median >= MIN_MEDIAN_GAP:
        return 1
    if second.median - first.median >= MIN_MEDIAN_GAP:
        return -1
    return 0
