"""A classical spine tracker: the vertebral bodies' centre at every axial level of a stitched Dixon volume.

Per axial level (a slice of the (x, y, z) volume, y anterior to posterior), each voxel is scored as the centre of a
vertebral body: a box the size of a small vertebral body (about 24 x 16 mm) filled with tissue of intermediate fat
fraction F / (F + W) (red and yellow marrow mixed: 0.2-0.7; muscle and organs are below 0.15, subcutaneous and
visceral fat above 0.8), with low-fat tissue (the spinal canal, its fluid and cord) just posterior to it and marrow
again behind that (the vertebral arch), near the body's left-right midline. The scanner table, a plate of
intermediate signal under the body, is left out (its lines are the same in every axial slice: see
``midcoronal.table_lines``). A chain through the levels (dynamic programming, Viterbi: the best-scoring path whose
row and column move by a bounded, penalised step per level) joins the levels through the discs (water-rich, no
marrow) and past organs that look like marrow in one level. The path is the spine's
anterior-posterior curve (row per z) and lateral curve (column per z).

The chain runs from the top of the body down to the crotch (below it the body is two legs: no spine). Where the
path's own evidence is weak (the head above the neck, the legs, a failed track) the levels count as untracked: the
curve is held flat at the nearest tracked level's row there, and a note says so. When too few levels are tracked the
track fails: :class:`SpineTrack` says why, and the caller falls back to a flat slab. Never a silently wrong slab.

Method in the tradition of column-tracking by dynamic programming on MR (e.g. Vrtovec, Pernus and Likar, "A review
of methods for quantitative evaluation of spinal curvature", Eur Spine J 2009; Peng et al., "Automated vertebra
detection and segmentation from the whole spine MR images", 2005), kept simple and explainable: no learned weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ukbb_pipeline.slices.midcoronal import table_lines

MARROW_FAT_FRACTION = (0.2, 0.75)  # vertebral marrow's fat fraction (adults: about 0.3-0.6)
CANAL_FAT_FRACTION = 0.15  # the spinal canal (fluid, cord) holds less fat than this
BODY_BOX_MM = (24.0, 16.0)  # x, y size of the box scored as a vertebral body
CANAL_BOX_MM = (10.0, 8.0)
CANAL_OFFSET_MM = 16.0  # from the vertebral body's centre to the canal's, posterior
ARCH_BOX_MM = (16.0, 8.0)  # the vertebral arch (laminae, spinous process): marrow again behind the canal
ARCH_OFFSET_MM = 34.0
LATERAL_REACH_MM = 45.0  # the spine lies within this of the body's left-right midline
LEVEL_STEP_MM = 4.5  # the chain's levels are about this far apart along z
STEP_ROWS_PER_MM = 0.5  # the path moves by at most this many mm in y (and half in x) per mm along z
STEP_PENALTY = 0.04  # per squared mm of step between levels (score units: 1 = a perfect level)
MIN_LEVEL_SCORE = 0.45  # a level whose path score (smoothed over ~2 cm) is below this is untracked
MIN_TRACKED_MM = 200.0  # fewer tracked mm of spine than this and the track fails
SMOOTH_MM = 20.0
BODY_REACH_MM = 30.0  # the vertebral body's edges are looked for within this of the path's row
CENTRE_STRIP_MM = 8.0  # the vertebral body's front and back edges are found on a strip this wide around the path


@dataclass(frozen=True)
class SpineTrack:
    """The spine's centre per z of the volume (rows and columns as float indices of axes 1 and 0).

    ``tracked`` says which levels the tracker found (elsewhere the curve is held flat at the nearest tracked row);
    ``score`` is the path's evidence per z (1 = a clear vertebral body with its canal). ``failed`` is None or the
    reason the track could not be used (then ``rows`` is empty and a caller uses a flat slab).
    """

    rows: np.ndarray
    columns: np.ndarray
    tracked: np.ndarray
    score: np.ndarray
    notes: list[str] = field(default_factory=list)
    failed: str | None = None

    @property
    def median_row(self) -> int:
        """The median row over the tracked levels (the flat slab's centre under ``stage.slab=flat``)."""
        return round(float(np.median(self.rows[self.tracked])))


def _box_mean(image: np.ndarray, size_mm: tuple[float, float], spacing: tuple[float, float]) -> np.ndarray:
    """Mean of ``image`` (x, y, levels) over an in-plane box of ``size_mm``."""
    size = (max(1, round(size_mm[0] / spacing[0])), max(1, round(size_mm[1] / spacing[1])), 1)
    return ndimage.uniform_filter(image, size=size, mode="constant")


def level_scores(
    fat: np.ndarray, water: np.ndarray, *, spacing: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The vertebral-body score of every voxel of some axial levels ``(x, y, levels)`` (0-1.5), the body mask, and
    the marrow-like voxels (averaged over a few mm along x, for :func:`body_centre_rows`).

    Marrow-likeness of a box around the voxel, plus half the canal-likeness of a box ``CANAL_OFFSET_MM`` posterior
    to it and half the marrow-likeness of the arch ``ARCH_OFFSET_MM`` posterior to it (so that the arch itself,
    with muscle behind it, does not pass for a body), minus the share of pure fat in the box (fat is not bone).
    """
    fat = np.asarray(fat, dtype=np.float32)
    water = np.asarray(water, dtype=np.float32)
    total = fat + water
    p99 = float(np.percentile(total[:: 3, :: 2, :], 99)) if total.size else 0.0
    threshold = 0.2 * p99
    body = total > threshold
    body &= ~table_lines(fat, threshold=0.2 * float(np.percentile(fat[:: 3, :: 2, :], 99)))
    fraction = np.where(body, fat / np.maximum(total, 1e-6), 0.0).astype(np.float32)
    low, high = MARROW_FAT_FRACTION
    marrow = (body & (fraction >= low) & (fraction <= high)).astype(np.float32)
    canal = (body & (fraction < CANAL_FAT_FRACTION)).astype(np.float32)
    pure_fat = (body & (fraction > 0.85)).astype(np.float32)
    marrow_box = _box_mean(marrow, BODY_BOX_MM, spacing)
    fat_box = _box_mean(pure_fat, BODY_BOX_MM, spacing)
    canal_box = _box_mean(canal, CANAL_BOX_MM, spacing)
    arch_box = _box_mean(marrow, ARCH_BOX_MM, spacing)
    behind = _posterior(canal_box, round(CANAL_OFFSET_MM / spacing[1]))
    arch = _posterior(arch_box, round(ARCH_OFFSET_MM / spacing[1]))
    marrow_strip = _box_mean(marrow, (CENTRE_STRIP_MM, 0.0), spacing)
    return marrow_box + 0.5 * behind + 0.5 * arch - fat_box, body, marrow_strip


def _posterior(image: np.ndarray, shift: int) -> np.ndarray:
    """``image`` seen ``shift`` rows posterior: out[:, y] = image[:, y + shift] (0 beyond the last row)."""
    out = np.zeros_like(image)
    if shift < image.shape[1]:
        out[:, : image.shape[1] - shift] = image[:, shift:]
    return out


def _midlines(body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per level: the body's left-right centre (column, float) and whether it is one trunk (not two legs)."""
    columns = body.sum(axis=1).astype(np.float64)  # (x, levels): rows of body per column
    weight = columns.sum(axis=0)
    x = np.arange(body.shape[0], dtype=np.float64)[:, None]
    centre = np.where(weight > 0, (columns * x).sum(axis=0) / np.maximum(weight, 1), np.nan)
    index = np.clip(np.nan_to_num(centre, nan=0).round().astype(int), 0, body.shape[0] - 1)
    at_centre = columns[index, np.arange(body.shape[2])]
    trunk = (weight > 0) & (at_centre >= 0.4 * columns.max(axis=0))
    return centre, trunk


def viterbi_path(scores: np.ndarray, *, max_step: tuple[int, int], penalty: tuple[float, float]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The (column, row) per level maximising the sum of ``scores`` (x, y, levels) along the path minus
    ``penalty[0] * dx**2 + penalty[1] * dy**2`` per step, with |dx| <= max_step[0] and |dy| <= max_step[1]. Exact."""
    n_x, n_y, n = scores.shape
    total = scores[:, :, 0].astype(np.float64)
    back = np.zeros((n, n_x, n_y), dtype=np.int32)
    offsets = [(dx, dy) for dx in range(-max_step[0], max_step[0] + 1) for dy in range(-max_step[1], max_step[1] + 1)]
    for k in range(1, n):
        best = np.full((n_x, n_y), -np.inf)
        choice = np.zeros((n_x, n_y), dtype=np.int32)
        for code, (dx, dy) in enumerate(offsets):
            moved = np.full((n_x, n_y), -np.inf)  # moved[x, y] = total[x - dx, y - dy]
            xs_to, xs_from = slice(max(dx, 0), n_x + min(dx, 0)), slice(max(-dx, 0), n_x - max(dx, 0))
            ys_to, ys_from = slice(max(dy, 0), n_y + min(dy, 0)), slice(max(-dy, 0), n_y - max(dy, 0))
            moved[xs_to, ys_to] = total[xs_from, ys_from] - penalty[0] * dx * dx - penalty[1] * dy * dy
            better = moved > best
            best = np.where(better, moved, best)
            choice = np.where(better, code, choice)
        back[k] = choice
        total = best + scores[:, :, k]
    x, y = np.unravel_index(int(np.argmax(total)), total.shape)
    path_x, path_y = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    for k in range(n - 1, -1, -1):
        path_x[k], path_y[k] = x, y
        if k:
            dx, dy = offsets[back[k, x, y]]
            x, y = x - dx, y - dy
    return path_x, path_y


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def track_spine(fat: np.ndarray, water: np.ndarray, *, spacing: tuple[float, float, float]) -> SpineTrack:
    """The spine's curve through a stitched volume (x, y, z arrays, z head to feet; ``spacing`` in mm per axis).

    See the module text. Levels about ``LEVEL_STEP_MM`` apart are scored and chained; the path is interpolated to
    every z. Rows and columns are float indices into axes 1 and 0.
    """
    sx, sy, sz = spacing
    n_z = fat.shape[2]
    step = max(1, round(LEVEL_STEP_MM / sz))
    levels = np.arange(0, n_z, step)
    scores, body, marrow = level_scores(fat[:, :, levels], water[:, :, levels], spacing=(sx, sy))
    centre, trunk = _midlines(body)
    if not trunk.any():
        return _failed(n_z, "no trunk found (no body level with tissue on its midline)")
    # the chain runs from the first level with a trunk down to the last one above the crotch
    first, last = int(np.flatnonzero(trunk)[0]), int(np.flatnonzero(trunk)[-1])
    chain = np.arange(first, last + 1)
    x = np.arange(fat.shape[0], dtype=np.float64)[:, None]
    reach = LATERAL_REACH_MM / sx
    mid = np.where(np.isfinite(centre), centre, np.nanmedian(centre))[None, chain]
    near_midline = np.abs(x - mid) <= reach
    chained = np.where(near_midline[:, None, :], scores[:, :, chain], -2.0)
    level_mm = step * sz
    max_step = (max(1, round(0.5 * STEP_ROWS_PER_MM * level_mm / sx)), max(1, round(STEP_ROWS_PER_MM * level_mm / sy)))
    path_x, path_y = viterbi_path(chained, max_step=max_step,
                                  penalty=(STEP_PENALTY * sx * sx, STEP_PENALTY * sy * sy))
    path_score = chained[path_x, path_y, np.arange(chain.size)]
    smooth = max(1, round(SMOOTH_MM / level_mm))
    evidence = ndimage.uniform_filter1d(path_score, size=smooth, mode="nearest")
    good = evidence >= MIN_LEVEL_SCORE
    runs = _runs(good)
    if not runs:
        return _failed(n_z, f"no level looks like a vertebral body with its canal (best {evidence.max():.2f}, "
                            f"need {MIN_LEVEL_SCORE})")
    start, stop = max(runs, key=lambda run: run[1] - run[0])
    tracked_mm = (stop - start) * level_mm
    if tracked_mm < MIN_TRACKED_MM:
        return _failed(n_z, f"the spine was tracked over {tracked_mm:.0f} mm only (need {MIN_TRACKED_MM:.0f})")
    kept = levels[chain[start:stop]]
    z = np.arange(n_z)
    centres = body_centre_rows(marrow[:, :, chain[start:stop]], path_x[start:stop], path_y[start:stop],
                               reach=round(BODY_REACH_MM / sy))
    rows = np.interp(z, kept, centres)
    columns = np.interp(z, kept, path_x[start:stop].astype(np.float64))
    tracked = (z >= kept[0]) & (z <= kept[-1])
    score = np.interp(z, levels[chain], evidence)
    notes = []
    if kept[0] > 0:
        notes.append(f"spine tracked from z index {kept[0]}: above it (head) the curve is held at row "
                     f"{rows[kept[0]]:.1f}")
    if kept[-1] < n_z - 1:
        notes.append(f"spine tracked down to z index {kept[-1]} (the sacrum or the track's end): below it (pelvis, "
                     f"legs) the slab is a flat plane at row {rows[kept[-1]]:.1f}")
    return SpineTrack(rows=rows, columns=columns, tracked=tracked, score=score.astype(np.float32), notes=notes)


def body_centre_rows(marrow: np.ndarray, path_x: np.ndarray, path_y: np.ndarray, *, reach: int) -> np.ndarray:
    """Per level, the row midway between the anterior and posterior edges of the vertebral body the path passes
    through: where the marrow profile along y (at the path's column) crosses one half, on either side of the path's
    row, within ``reach`` rows (sub-row, by linear interpolation). Levels where no such body is found (a disc)
    take the centre interpolated from the levels around them; the path's rows when no level has one."""
    n_y = marrow.shape[1]
    centres = np.full(path_y.size, np.nan)
    for k, (x, y) in enumerate(zip(path_x.tolist(), path_y.tolist(), strict=True)):
        profile = marrow[x, :, k]
        if profile[y] < 0.5:
            continue
        front = _crossing(profile, y, -1, max(0, y - reach))
        back = _crossing(profile, y, 1, min(n_y - 1, y + reach))
        if front is not None and back is not None:
            centres[k] = (front + back) / 2
    found = np.isfinite(centres)
    if not found.any():
        return path_y.astype(np.float64)
    levels = np.arange(path_y.size)
    return np.interp(levels, levels[found], centres[found])


def _crossing(profile: np.ndarray, start: int, direction: int, end: int) -> float | None:
    """Where ``profile`` first falls below one half going from ``start`` towards ``end`` (interpolated)."""
    for i in range(start + direction, end + direction, direction):
        if profile[i] < 0.5:
            previous = profile[i - direction]
            return i - direction + direction * (previous - 0.5) / max(previous - profile[i], 1e-6)
    return None


def _failed(n_z: int, reason: str) -> SpineTrack:
    empty = np.zeros(0)
    return SpineTrack(rows=empty, columns=empty, tracked=np.zeros(n_z, dtype=bool), score=np.zeros(n_z, np.float32),
                      notes=[f"spine not tracked: {reason}"], failed=reason)
