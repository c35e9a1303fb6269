"""Fat/water swaps of half a station: one leg, one side, or a z-range of a slab (ukbb-format.md 1.7).

The fallback of regions.py for a station whose in-phase image cannot tell fat from water-rich tissue by brightness
(too little contrast for voxel-level evidence): the regions found here are halves of the body over z-ranges.

Real swaps are regional ("labels inverted at the voxel level"; RECOH classifies each leg of stations 5-6 on its
own). Each half of the body (split at its midline, the x centre of the body's voxels; in the leg stations the halves
are the legs) is a chain of slices, and the evidence is that of swaps.py at the scale of slices: adjacent slices
image nearly the same tissue, so their fat/water agreement is strongly positive unless exactly one of them is
swapped (the edge of a swapped z-range); the fat pattern of each slice (fat just under the anterior skin) says which
side of such an edge is right; and the two halves of a slice, mirrored about the midline, mostly image alike tissue
(the legs, the two sides of the trunk), so their agreement links the halves. Each half-slice is labelled right or
swapped to agree best with all three, with the cost of a swapped label per mm as in swaps.py (exact, by dynamic
programming along the chain). Runs of swapped slices on one side, or on both, are the regions. A station labelled
swapped everywhere is left to the whole-station labelling of swaps.py, which also uses the seams.

Regions are named ``<station>:<part>`` (the ``swapped_regions`` vocabulary, also in the README):
``<n>:whole`` (the whole station), ``<n>:left-leg`` / ``<n>:right-leg`` (one leg over the whole station),
``<n>:left-half`` / ``<n>:right-half`` (one side of the trunk), ``<n>:z <top> to <bottom> mm`` (both sides over a
z-range, LPS z of the slice centres), and ``<n>:left-leg z <top> to <bottom> mm`` etc. for one side over a z-range.
Left and right are the patient's (LPS x above the midline is left).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ukbb_pipeline.mri.harmonise import body_mask
from ukbb_pipeline.mri.swaps import DEEP_BAND_MM, OUTER_BAND_MM, SWAP_COST

BLOCK_MM = 40.0  # the fat pattern of this much of a side weighs as much as one station's in swaps.py
LEG_GAP_FRACTION = 0.5  # the body is two legs when its midline is a gap in this share of the slices ...
LEG_GAP_DEPTH = 0.4  # ... a gap: the midline column holds less than 40% of the deepest column's body
MIRROR_WEIGHT = 0.5  # the two halves of a slice mirror each other less closely than adjacent slices match


@dataclass(frozen=True)
class HalfRegion:
    """A region of one station whose F and W are exchanged: a side (or both) over a z-range."""

    index: int  # the station's index in the station list
    side: str  # "left", "right" or "both"
    z_top: float  # LPS z (mm) of the first and last slice centre in the region
    z_bottom: float
    midline: float  # LPS x (mm) splitting the sides
    legs: bool  # the station shows two legs (the sides are legs)
    whole_z: bool  # the region spans the station's whole z range

    def label(self, number: int) -> str:
        """The ``swapped_regions`` text of this region (see the module text)."""
        z_text = f"z {self.z_top:.0f} to {self.z_bottom:.0f} mm"
        if self.side == "both":
            return f"{number}:{'whole' if self.whole_z else z_text}"
        part = f"{self.side}-{'leg' if self.legs else 'half'}"
        return f"{number}:{part}" if self.whole_z else f"{number}:{part} {z_text}"

    def mask(self, z: np.ndarray, x: np.ndarray, *, z_step: float) -> tuple[np.ndarray, np.ndarray]:
        """Which slices (at ``z``) and columns (at ``x``) of a series lie in the region."""
        slack = z_step / 2
        slices = (z <= self.z_top + slack) & (z >= self.z_bottom - slack)
        if self.side == "left":
            columns = x > self.midline
        elif self.side == "right":
            columns = x <= self.midline
        else:
            columns = np.ones(x.shape, dtype=bool)
        return slices, columns


STATES = np.array([(1, 1), (1, -1), (-1, 1), (-1, -1)])  # labels (right half, left half) of a slice


def ladder_labels(patterns: np.ndarray, along: np.ndarray, across: np.ndarray, *, cost: float) -> np.ndarray:
    """Labels (+1 right, -1 swapped), shape (2, slices), of the two halves of a station: maximising the pattern of
    each half-slice times its label, plus the agreement of adjacent slices (``along``, per half) and of the two
    halves of a slice (``across``) times the product of their labels, minus ``cost`` per swapped half-slice.
    Exact (Viterbi over the four labelings of a slice)."""
    n = patterns.shape[1]
    right, left = STATES[:, 0], STATES[:, 1]

    def own(k: int) -> np.ndarray:
        return (patterns[0, k] * right + patterns[1, k] * left + across[k] * right * left
                - cost * ((right < 0).astype(float) + (left < 0)))

    score = own(0)
    back = np.zeros((n, 4), dtype=np.intp)
    for k in range(1, n):
        link = along[0, k - 1] * np.outer(right, right) + along[1, k - 1] * np.outer(left, left)
        gain = score[:, None] + link  # [previous, current]
        back[k] = np.argmax(gain, axis=0)
        score = gain[back[k], np.arange(4)] + own(k)
    state = int(np.argmax(score))
    out = np.empty((2, n), dtype=np.int64)
    for k in range(n - 1, -1, -1):
        out[:, k] = STATES[state]
        state = int(back[k, state])
    return out


def slice_evidence(fat: np.ndarray, water: np.ndarray, *, columns: np.ndarray, row_spacing: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per slice the fat pattern score (swaps.pattern_score, one slice at a time), and per pair of adjacent slices
    their fat/water agreement (swaps.seam_agreement), on ``columns``; vectorised over the slices."""
    f, w = fat[:, :, columns], water[:, :, columns]
    total = f + w
    body = body_mask(total)
    rows = np.arange(body.shape[1], dtype=np.float64)[None, :, None]
    has_body = body.any(axis=1, keepdims=True)
    depth = (rows - np.argmax(body, axis=1)[:, None, :]) * row_spacing
    outer = body & has_body & (depth >= 0) & (depth < max(OUTER_BAND_MM, row_spacing))
    deep = body & has_body & (depth >= DEEP_BAND_MM[0]) & (depth < max(DEEP_BAND_MM[1], DEEP_BAND_MM[0] + row_spacing))
    contrast = (f - w) / np.maximum(total, 1e-6)
    n_outer, n_deep = outer.sum(axis=(1, 2)), deep.sum(axis=(1, 2))
    usable = (body.sum(axis=(1, 2)) >= 50) & (n_outer >= 10) & (n_deep >= 10)
    patterns = np.where(
        usable,
        (contrast * outer).sum(axis=(1, 2)) / np.maximum(n_outer, 1)
        - (contrast * deep).sum(axis=(1, 2)) / np.maximum(n_deep, 1),
        0.0,
    )
    both = body[:-1] & body[1:]
    agreements = pair_agreements(f[:-1], w[:-1], f[1:], w[1:], both)
    return patterns, agreements


def pair_agreements(fat_a: np.ndarray, water_a: np.ndarray, fat_b: np.ndarray, water_b: np.ndarray,
                    mask: np.ndarray) -> np.ndarray:
    """swaps.seam_agreement of each pair of planes (axis 0) on ``mask``: (same - cross channel correlation) / 2;
    0 where fewer than 50 voxels are shared. Each of the four images is centred once and serves two correlations."""
    weight = mask.astype(np.float64)
    n = np.maximum(weight.sum(axis=(1, 2)), 1.0)[:, None, None]
    fa, wa, fb, wb = (_centred(image, weight, n) for image in (fat_a, water_a, fat_b, water_b))
    same = _correlation(fa, fb) + _correlation(wa, wb)
    cross = _correlation(fa, wb) + _correlation(wa, fb)
    return np.where(mask.sum(axis=(1, 2)) >= 50, (same - cross) / 2, 0.0)


def _centred(image: np.ndarray, weight: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` minus its weighted mean per plane, times the weight; and its sum of squares per plane."""
    a = image.astype(np.float64)
    da = (a - (a * weight).sum(axis=(1, 2))[:, None, None] / n) * weight
    return da, (da * da).sum(axis=(1, 2))


def _correlation(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Pearson correlation per plane of two centred images; 0 where either is constant."""
    norm = np.sqrt(a[1] * b[1])
    return np.where(norm > 0, (a[0] * b[0]).sum(axis=(1, 2)) / np.maximum(norm, 1e-300), 0.0)


def midline_and_legs(fat: np.ndarray, water: np.ndarray, *, x: np.ndarray) -> tuple[float, bool]:
    """The body's midline (x centre of its voxels above the table's band) and whether the station shows two legs
    (a gap at the midline)."""
    body = body_mask(fat + water)
    depth = body.sum(axis=1).astype(np.float64)  # (z, x): rows of body per column, the table's included
    beneath = np.where(depth > 0, depth, np.inf).min(axis=1, keepdims=True)  # the table spans nearly every column
    above = np.clip(depth - np.where(np.isfinite(beneath), beneath, 0.0), 0.0, None)
    columns = above.sum(axis=0)
    midline = float((columns * x).sum() / columns.sum()) if columns.sum() > 0 else float(x.mean())
    centre = int(np.argmin(np.abs(x - midline)))
    with_body = above.max(axis=1) > 0
    gap = above[:, max(0, centre - 1): centre + 2].min(axis=1) < LEG_GAP_DEPTH * above.max(axis=1)
    return midline, bool(with_body.any() and (gap & with_body).sum() >= LEG_GAP_FRACTION * with_body.sum())


def find_half_regions(fat: np.ndarray, water: np.ndarray, *, x: np.ndarray, z: np.ndarray, row_spacing: float,
                 index: int) -> list[HalfRegion]:
    """The regional swaps of one station (z, y, x arrays on slices at ``z``, columns at ``x``; see the module
    text); [] when none, or when the whole station reads as swapped (a matter for the whole-station labelling)."""
    if z.size < 2:
        return []
    midline, legs = midline_and_legs(fat, water, x=x)
    step = float(np.median(np.abs(np.diff(z))))
    weight = step / BLOCK_MM  # per-slice evidence weighs as much per mm as a block's
    halves = (np.flatnonzero(x <= midline), np.flatnonzero(x > midline))
    if min(h.size for h in halves) < 2:
        return []
    patterns = np.zeros((2, z.size))
    along = np.zeros((2, z.size - 1))
    for side, columns in enumerate(halves):
        patterns[side], along[side] = slice_evidence(fat, water, columns=columns, row_spacing=row_spacing)
    width = min(h.size for h in halves)
    near_right, near_left = halves[0][-width:], halves[1][:width][::-1]  # mirrored about the midline
    body = body_mask(fat + water)
    across = pair_agreements(fat[:, :, near_right], water[:, :, near_right], fat[:, :, near_left],
                             water[:, :, near_left], body[:, :, near_right] & body[:, :, near_left])
    swapped = ladder_labels(patterns * weight, along, across * MIRROR_WEIGHT, cost=SWAP_COST * weight) < 0
    if swapped.all():
        return []
    return regions_from_flags(swapped, z=z, midline=midline, legs=legs, index=index)


def regions_from_flags(swapped: np.ndarray, *, z: np.ndarray, midline: float, legs: bool, index: int
                       ) -> list[HalfRegion]:
    """The regions of a (right, left) x slices map of swapped half-slices: runs on both sides, then on one."""
    regions = []
    both = swapped[0] & swapped[1]
    for side, name in ((None, "both"), (0, "right"), (1, "left")):
        flags = both if side is None else swapped[side] & ~both
        for start, stop in _runs(flags):
            regions.append(HalfRegion(index=index, side=name, z_top=float(z[start]), z_bottom=float(z[stop - 1]),
                                      midline=midline, legs=legs, whole_z=start == 0 and stop == z.size))
    return regions


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the runs of True in ``flags``."""
    runs, start = [], None
    for i, flag in enumerate([*flags.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs
