"""Finding stations whose fat and water images are swapped (ukbb-format.md 1.6.6: 1.8% of participants).

Two kinds of evidence, combined over all stations at once:

- Overlaps. Adjacent stations image the same tissue where they overlap. Inside the body fat and water are
  anti-correlated (fat tissue against muscle and organs), so a station's fat correlates with its neighbour's fat when
  both are right (or both swapped), and with its neighbour's water when exactly one is swapped. The agreement of a
  seam is (same-channel correlation) - (cross-channel correlation): clearly positive or clearly negative.
- Pattern. The body is wrapped in subcutaneous fat: the tissue just under the anterior skin is fat, the tissue a few
  centimetres deeper mostly is not. The pattern score of a station is the fat-water contrast (F-W)/(F+W) in that
  outer band minus the contrast deeper in: positive when fat is fat. The anterior side is used because the table
  lies posterior.

Each station is given a label (right or swapped) so as to maximise the agreement of the labels with both kinds of
evidence, with a small cost per swapped station (swaps are rare): with six stations that is 64 labelings, all tried.
Overlaps settle which stations differ from which; the pattern settles which side is right, and alone decides for a
station without neighbours.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from ukbb_pipeline.mri.harmonise import body_mask

SWAP_COST = 0.25  # the evidence a swapped label must overcome, per station
MAX_JOINT = 12  # stations labelled jointly (2**12 labelings at most)
OUTER_BAND_MM = 8.0  # the tissue just under the anterior skin
DEEP_BAND_MM = (20.0, 60.0)  # "deeper in", from the anterior skin


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally shaped samples (0 when either is constant)."""
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 0 else 0.0


def seam_agreement(
    fat_upper: np.ndarray, water_upper: np.ndarray, fat_lower: np.ndarray, water_lower: np.ndarray,
    body: np.ndarray,
) -> float:
    """Same-channel minus cross-channel correlation inside the body, in [-2, 2]: > 0 when the two stations agree
    on which image is fat, < 0 when one of them is swapped; 0 when there is too little to compare."""
    if int(body.sum()) < 50:
        return 0.0
    fu, wu, fl, wl = (channel[body] for channel in (fat_upper, water_upper, fat_lower, water_lower))
    same = correlation(fu, fl) + correlation(wu, wl)
    cross = correlation(fu, wl) + correlation(wu, fl)
    return (same - cross) / 2


def pattern_score(fat: np.ndarray, water: np.ndarray, *, row_spacing: float) -> float:
    """Fat-water contrast just under the anterior skin minus deeper in (z, y, x arrays, y anterior to posterior):
    about +0.5 or more when fat is fat, as negative when swapped, near 0 when the images show no body."""
    total = fat + water
    body = body_mask(total)
    if int(body.sum()) < 50:
        return 0.0
    rows = np.arange(body.shape[1], dtype=np.float64)[None, :, None]
    has_body = body.any(axis=1, keepdims=True)
    first = np.argmax(body, axis=1)[:, None, :].astype(np.float64)
    depth = (rows - first) * row_spacing  # mm under the anterior surface, per column
    outer = body & has_body & (depth >= 0) & (depth < max(OUTER_BAND_MM, row_spacing))
    deep = body & has_body & (depth >= DEEP_BAND_MM[0]) & (depth < max(DEEP_BAND_MM[1], DEEP_BAND_MM[0] + row_spacing))
    if int(outer.sum()) < 10 or int(deep.sum()) < 10:
        return 0.0
    contrast = (fat - water) / np.maximum(total, 1e-6)
    return float(contrast[outer].mean() - contrast[deep].mean())


def find_swapped(patterns: Sequence[float], agreements: dict[tuple[int, int], float]) -> list[int]:
    """Indices of the stations labelled swapped, from their pattern scores and the agreements of station pairs."""
    patterns = [0.0 if not np.isfinite(p) else float(p) for p in patterns]  # no evidence is no evidence
    agreements = {pair: float(a) for pair, a in agreements.items() if np.isfinite(a)}
    n = len(patterns)
    if n > MAX_JOINT:  # not a UK Biobank layout: judge each station by its own pattern
        return [i for i, p in enumerate(patterns) if 2 * p < -SWAP_COST]
    best_score, best = -np.inf, (1,) * n
    labels: tuple[int, ...]
    for labels in itertools.product((1, -1), repeat=n):
        score = sum(p * label for p, label in zip(patterns, labels, strict=True))
        score += sum(a * labels[i] * labels[j] for (i, j), a in agreements.items())
        score -= SWAP_COST * labels.count(-1)
        if score > best_score + 1e-12:
            best_score, best = score, labels
    return [i for i, label in enumerate(best) if label == -1]
