"""Fat/water swaps of any shape within a station, found from local evidence, voxel by voxel (ukbb-format.md 1.7).

Real swaps are regional ("labels inverted at the voxel level", Basty et al. 2021), mostly at the field of view's
edges (arms, flanks) where B0 is worst. A swap leaves the in-phase signal F + W as it was and exchanges which image
holds it. Fat is the bright tissue of the in-phase image (short T1: UK Biobank's Dixon is a T1-weighted gradient
echo) and the water-rich tissues (muscle, organs) the darker one, so each voxel carries its own evidence:

- its **tissue** from the in-phase brightness alone: the body's in-phase values split in two classes (Otsu's
  threshold), fat above, water-rich tissue below; ``t`` in [-1, 1] says how far a voxel is towards either level;
- its **label** from the fat fraction ``FF = F / (F + W)``;
- evidence ``e = (2 FF - 1) * t``: positive where they agree (fat with a high fraction, muscle with a low one),
  negative where they contradict (a swap). Mixed voxels (marrow, partial fat) have FF and t near their middles and
  little evidence either way. The subcutaneous fat that wraps the body is the strongest prior: swapped, it is bright
  tissue with a low fat fraction, which no normal tissue is.

Partial volume dims fat at the body's surface (and where a limb ends along z) so that dim, fat-labelled voxels are
not evidence on their own: the body is eroded by a voxel, faint voxels are left out, and a region needs seeds of
*bright* tissue labelled water (what partial volume cannot make). Evidence is averaged over ~15 mm, regions grow from
the seeds through voxels whose averaged evidence is negative, and each connected region (3-D labelling) is one
:class:`SwapRegion` with its own voxel mask, so only those voxels are exchanged back. A region whose evidence is
weak is "uncertain": reported, not fixed. A region covering most of the station is left to the whole-station
labelling of swaps.py, which also weighs the seams. Where the station's fat is not clearly brighter than its
water-rich tissue (``MIN_CONTRAST``), brightness cannot tell them apart, and where pixels are coarser than
``MAX_PIXEL_MM`` (thumbnail-sized test data) fat layers are not resolved: there halves.py judges halves of the body
over z-ranges instead, from slice-level evidence; its regions are kept as voxel masks too.

Regions are named ``<station>:<part> z <top> to <bottom> mm, x <low> to <high> mm, <volume> ml`` (the
``swapped_regions`` vocabulary): ``<part>`` is ``left-leg`` / ``right-leg`` (stations showing two legs) or
``left-half`` / ``right-half`` when the region lies on one side of the body's midline, and is left out when it
crosses it; ``z`` gives the LPS z of its first and last slice, ``x`` its LPS x extent. ``<n>:whole`` is a whole
station (swaps.py). Left and right are the patient's (LPS x above the midline is left).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ukbb_pipeline.mri.halves import HalfRegion, find_half_regions, midline_and_legs
from ukbb_pipeline.mri.harmonise import body_mask

MAX_PIXEL_MM = 6.0  # coarser pixels than this cannot resolve a subcutaneous fat layer: halves.py judges instead
MIN_CONTRAST = 1.5  # fat's in-phase level over water-rich tissue's: below it brightness cannot tell them apart
FAINT = 0.6  # voxels fainter than this share of the water-rich tissue's level are left out (lungs, partial volume)
SMOOTH_MM = 15.0  # in-plane width of the evidence average (three slices along z)
SEED_EVIDENCE = -0.15  # averaged evidence of bright tissue below this seeds a region
GROW_EVIDENCE = -0.1  # a region grows through voxels whose averaged evidence is below this
CERTAIN_EVIDENCE = -0.3  # a region's mean evidence below this is a swap; between this and GROW: uncertain
EDGE_EVIDENCE = -0.15  # a neighbour of a region whose own evidence is below this joins it ...
EXTEND_STEPS = 3  # ... up to this many voxels out
ERODE = ndimage.generate_binary_structure(3, 1)  # the body is eroded by a voxel (its surface's partial volume)
IN_PLANE = np.ones((1, 3, 3), dtype=bool)
END_SLICES = 4  # a region this close to a station's end slice is carried on to it
MIN_REGION_ML = 8.0  # smaller regions are noise
WHOLE_STATION_SHARE = 0.6  # a region holding this share of the station's body is the whole-station check's


@dataclass(frozen=True)
class SwapRegion:
    """A region of one station whose F and W are exchanged: its voxels on the station's (subsampled) grid."""

    index: int  # the station's index in the station list
    voxels: np.ndarray  # bool (slices, rows // step, columns // step) on the slices ``z``
    z: np.ndarray  # LPS z of the station's slices that ``voxels`` covers
    step: int  # in-plane subsampling of ``voxels``
    midline: float  # LPS x (mm) splitting the sides
    legs: bool  # the station shows two legs (the sides are legs)
    x_range: tuple[float, float]  # LPS x of the region's first and last column
    volume_ml: float
    evidence: float  # mean averaged evidence inside (negative: swapped)
    certain: bool = True
    rest: bool = False  # the rest of a station labelled swapped as a whole outside its other regions

    @property
    def side(self) -> str:
        if self.x_range[0] > self.midline:
            return "left"
        if self.x_range[1] <= self.midline:
            return "right"
        return "both"

    def label(self, number: int) -> str:
        """The ``swapped_regions`` text of this region (see the module text)."""
        if self.rest:
            return f"{number}:whole outside the other regions"
        slices = np.flatnonzero(self.voxels.any(axis=(1, 2)))
        top, bottom = (float(self.z[slices[0]]), float(self.z[slices[-1]])) if slices.size else (0.0, 0.0)
        part = "" if self.side == "both" else f"{self.side}-{'leg' if self.legs else 'half'} "
        return (f"{number}:{part}z {top:.0f} to {bottom:.0f} mm, x {self.x_range[0]:.0f} to {self.x_range[1]:.0f} mm, "
                f"{self.volume_ml:.0f} ml")

    def slice_mask(self, z: float, shape: tuple[int, int], *, z_step: float) -> np.ndarray | None:
        """The region's mask (rows, columns) on a full-resolution slice at LPS ``z``; None off the region."""
        k = np.flatnonzero(np.abs(self.z - z) <= max(z_step, 1e-3) * 0.25)
        if not k.size or not self.voxels[k[0]].any():
            return None
        plane = self.voxels[k[0]]
        rows = np.minimum(np.arange(shape[0]) // self.step, plane.shape[0] - 1)
        columns = np.minimum(np.arange(shape[1]) // self.step, plane.shape[1] - 1)
        return plane[np.ix_(rows, columns)]


@dataclass(frozen=True)
class Evidence:
    """Per voxel of a station: the swap evidence (negative: swapped), its bright-tissue part, and where it counts."""

    evidence: np.ndarray
    bright: np.ndarray
    core: np.ndarray
    contrast: float = 0.0  # fat's in-phase level over water-rich tissue's


def otsu_threshold(values: np.ndarray, *, bins: int = 128) -> float:
    """The threshold splitting ``values`` into two classes of least within-class variance (Otsu 1979)."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(hist)
    above = below[-1] - below
    sums = np.cumsum(hist * centres)
    mean_below = sums / np.maximum(below, 1)
    mean_above = (sums[-1] - sums) / np.maximum(above, 1)
    return float(centres[np.argmax(below * above * (mean_below - mean_above) ** 2)])


def swap_evidence(fat: np.ndarray, water: np.ndarray) -> Evidence:
    """The evidence of every voxel of a station (z, y, x; see the module text)."""
    total = fat + water
    body = body_mask(total)
    core = ndimage.binary_erosion(body, structure=ERODE)
    if int(core.sum()) < 100:
        empty = np.zeros(fat.shape, np.float32)
        return Evidence(empty, empty, np.zeros(fat.shape, bool))
    threshold = otsu_threshold(total[core])
    fat_level = float(np.median(total[core & (total > threshold)]))
    water_level = float(np.median(total[core & (total <= threshold) & (total > 0.3 * threshold)]))
    core &= total > FAINT * water_level
    middle, half = (fat_level + water_level) / 2, max((fat_level - water_level) / 2, 1e-6)
    tissue = np.clip((total - middle) / half, -1.0, 1.0)
    label = 2 * fat / np.maximum(total, 1e-6) - 1
    evidence = np.where(core, label * tissue, 0.0).astype(np.float32)
    return Evidence(evidence, np.where(tissue > 0, evidence, 0.0).astype(np.float32), core,
                    contrast=fat_level / max(water_level, 1e-6))


def find_regions(fat: np.ndarray, water: np.ndarray, *, x: np.ndarray, z: np.ndarray, row_spacing: float,
                 column_spacing: float, step: int, index: int) -> list[SwapRegion]:
    """The swapped regions of one station (z, y, x arrays subsampled by ``step`` in-plane, slices at ``z``, columns
    at ``x``); [] when none, or when the swap covers most of the station (the whole-station labelling's)."""
    found = swap_evidence(fat, water)
    core = found.core
    if not core.any():
        return []
    if found.contrast < MIN_CONTRAST or max(row_spacing, column_spacing) > MAX_PIXEL_MM:
        return [_from_half(half, body=body_mask(fat + water), x=x, z=z, step=step,
                           voxel_ml=row_spacing * column_spacing * _z_step(z, row_spacing) / 1000.0)
                for half in find_half_regions(fat, water, x=x, z=z, row_spacing=row_spacing, index=index)]
    window = (3, _odd(SMOOTH_MM / row_spacing), _odd(SMOOTH_MM / column_spacing))
    count = np.maximum(ndimage.uniform_filter(core.astype(np.float32), window), 1e-3)
    averaged = ndimage.uniform_filter(found.evidence, window) / count
    bright = ndimage.uniform_filter(found.bright, window) / count
    growing = core & (averaged < GROW_EVIDENCE)
    labels, _ = ndimage.label(growing, structure=ndimage.generate_binary_structure(3, 2))
    seeds = np.unique(labels[growing & (bright < SEED_EVIDENCE)])
    voxel_ml = row_spacing * column_spacing * _z_step(z, row_spacing) / 1000.0
    midline, legs = midline_and_legs(fat, water, x=x)
    edge = ndimage.binary_dilation(body_mask(fat + water), iterations=1) & ~core  # partial-volume rim
    components = [labels == seed for seed in seeds[seeds > 0]]
    components = [c for c in components if c.sum() * voxel_ml >= MIN_REGION_ML]
    if sum(int(c.sum()) for c in components) >= WHOLE_STATION_SHARE * core.sum():
        return []  # the whole station (trunk and arms apart): the whole-station labelling's, with the seams
    regions = []
    for component in components:
        mean = float(averaged[component].mean())
        voxels = _to_the_ends(_extend(component, evidence=found.evidence, core=core, rim=edge), body=core | edge)
        columns = np.nonzero(voxels)[2]
        regions.append(SwapRegion(index=index, voxels=voxels, z=z, step=step, midline=midline, legs=legs,
                                  x_range=(float(np.percentile(x[columns], 2)), float(np.percentile(x[columns], 98))),
                                  volume_ml=float(component.sum()) * voxel_ml, evidence=mean,
                                  certain=mean < CERTAIN_EVIDENCE))
    return regions


def _z_step(z: np.ndarray, default: float) -> float:
    return float(np.median(np.abs(np.diff(z)))) if z.size > 1 else default


def _from_half(half: HalfRegion, *, body: np.ndarray, x: np.ndarray, z: np.ndarray, step: int,
               voxel_ml: float) -> SwapRegion:
    """A half region (halves.py: a side over a z-range) as a voxel region."""
    slices, columns = half.mask(z, x, z_step=_z_step(z, 1.0))
    voxels = np.zeros(body.shape, dtype=bool)
    voxels[np.ix_(slices, np.ones(body.shape[1], bool), columns)] = True
    inside = columns.nonzero()[0]
    return SwapRegion(index=half.index, voxels=voxels, z=z, step=step, midline=half.midline, legs=half.legs,
                      x_range=(float(x[inside[0]]), float(x[inside[-1]])) if inside.size else (0.0, 0.0),
                      volume_ml=float((voxels & body).sum()) * voxel_ml, evidence=float("nan"))


def _odd(voxels: float) -> int:
    """An odd window width near ``voxels`` (an even one would shift the average by half a voxel)."""
    n = max(1, round(voxels))
    return n if n % 2 else n + 1


def _extend(component: np.ndarray, *, evidence: np.ndarray, core: np.ndarray, rim: np.ndarray) -> np.ndarray:
    """A region's voxels: its component, the neighbouring voxels in-plane whose own evidence is clearly a swap (the
    average blurs the region's edge), its enclosed holes, and the body's rim next to it (partial volume, no
    evidence)."""
    voxels = component
    for _ in range(EXTEND_STEPS):
        voxels = voxels | (ndimage.binary_dilation(voxels, structure=IN_PLANE) & core & (evidence < EDGE_EVIDENCE))
    voxels = ndimage.binary_fill_holes(voxels)
    return voxels | (ndimage.binary_dilation(voxels, structure=IN_PLANE) & rim)


def _to_the_ends(voxels: np.ndarray, *, body: np.ndarray) -> np.ndarray:
    """A region reaching within ``END_SLICES`` of a station's end carries on to it: the slab's edge slices lose signal
    and fold (their evidence is unreliable), and a swap does not stop there. Its nearest slice's mask is copied."""
    slices = np.flatnonzero(voxels.any(axis=(1, 2)))
    if not slices.size:
        return voxels
    out = voxels.copy()
    if slices[0] <= END_SLICES:
        out[: slices[0]] = voxels[slices[0]] & body[: slices[0]]
    if slices[-1] >= voxels.shape[0] - 1 - END_SLICES:
        out[slices[-1] + 1:] = voxels[slices[-1]] & body[slices[-1] + 1:]
    return out


def complement(regions: list[SwapRegion]) -> list[SwapRegion]:
    """The rest of a station outside ``regions``: what is swapped when the station as a whole is labelled swapped
    and ``regions`` were undone first."""
    if not regions:
        return []
    first = regions[0]
    inside = np.zeros_like(first.voxels)
    for region in regions:
        inside |= region.voxels
    return [SwapRegion(index=first.index, voxels=~inside, z=first.z, step=first.step, midline=first.midline,
                       legs=first.legs, x_range=first.x_range, volume_ml=float("nan"), evidence=float("nan"),
                       rest=True)]
