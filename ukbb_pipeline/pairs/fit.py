"""Training-ready DXA/MRI pairs: the geometry of the paper's public loader, without its augmentations.

The paper's loader (Windsor et al. 2021, ``CoronalScanPairsDataset``) takes the middle coronal row of each MRI slab,
resamples it bicubically to 2 mm, transposes it to (z head->feet, x right->left), min-max normalises each channel, and
centre pads or crops to MRI (2, 700, 224) [fat, water] and DXA (2, 1000, 300) [bone, tissue]. This module does the
same with numpy, so that no deep-learning framework is needed to build a collection:

- resampling reproduces ``torch.nn.functional.interpolate(mode='bicubic', align_corners=False)`` (cubic convolution,
  a = -0.75, edge pixels repeated), applied as one small weight matrix per axis;
- the per-channel minimum and maximum of the resampled image (before padding or cropping, as the loader computes
  them) are stored beside the raw intensities, and padding is filled with the channel minimum, so that
  ``(x - min) / (max - min + 1e-5)`` gives exactly the loader's normalised, zero-padded image;
- ``scaling='physical'`` (the default) resamples both modalities to the target spacing. The public loader does not:
  it scales by ``target / spacing`` (the inverse ratio, so MRI at 2.232 mm ends up at about 2.49 mm) and sets the DXA
  spacing to the target before resampling (so DXA keeps its native ~2.4 mm). ``scaling='paper_loader'`` reproduces
  that, for models trained with the public code.

Shapes default to the public code's README, MRI (700, 224) and DXA (1000, 300); the loader's source at commit 59b2a5f
still says ``output_mri_shape = (2, 501, 224)`` (the paper's size), which ``stage.mri_shape=[501,224]`` gives.
Augmentations (rotation, shifts, brightness, gamma, a random coronal row) are the training code's business: the
collection stores the deterministic part only.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy import sparse

CUBIC_A = -0.75  # torch's bicubic kernel parameter
NORMALISE_EPS = 1e-5  # the loader's epsilon in (x - min) / (max - min + eps)
SCALING_RULES = ("physical", "paper_loader")
SPLITS = ("train", "val", "test")
UNASSIGNED = "unassigned"  # a pair whose EID is in none of the user's split lists


# ---------------------------------------------------------------------------------------------------------------------
# Resampling and fitting


def zoom_factors(spacing: Sequence[float], *, target: float, scaling: str, modality: str) -> tuple[float, float]:
    """Output pixels per input pixel along each axis, for ``modality`` (mri | dxa) images of pixel ``spacing`` (mm).

    ``physical``: ``spacing / target``. ``paper_loader``: what the public loader computes, ``target / spacing`` for
    MRI and 1 for DXA (it overwrites the DXA spacing with the target before resampling).
    """
    if modality not in ("mri", "dxa"):
        raise ValueError(f"modality must be mri or dxa, got {modality!r}")
    rows, columns = (float(s) for s in spacing)
    if scaling == "physical":
        return rows / target, columns / target
    if scaling == "paper_loader":
        return (target / rows, target / columns) if modality == "mri" else (1.0, 1.0)
    raise ValueError(f"scaling must be one of {SCALING_RULES}, got {scaling!r}")


def bicubic_matrix(n_in: int, *, factor: float) -> sparse.csr_array:
    """Sparse weights (n_out, n_in) that resample a line of ``n_in`` samples by ``factor`` as torch's bicubic does.

    Output sample ``i`` sits at input coordinate ``(i + 0.5) / factor - 0.5`` (pixel areas aligned, as with
    ``align_corners=False``); ``n_out = floor(n_in * factor)``; samples beyond the edge repeat the edge sample.
    """
    n_out = math.floor(n_in * factor)
    if n_out < 1:
        raise ValueError(f"resampling {n_in} samples by {factor:.4g} leaves none")
    # float32 arithmetic, as torch computes the source coordinate for float32 images
    scale = np.float32(1.0 / factor)
    position = scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    base = np.floor(position)
    t = (position - base).astype(np.float64)
    a = CUBIC_A
    weights = np.stack(
        [
            ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
            ((a + 2) * t - (a + 3)) * t * t + 1,
            ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
            ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a,
        ],
        axis=1,
    )
    columns = np.clip(base.astype(np.int64)[:, None] + np.arange(-1, 3), 0, n_in - 1)
    rows = np.repeat(np.arange(n_out), 4)
    # duplicate (row, column) entries, where the edge sample repeats, are summed
    return sparse.csr_array((weights.ravel().astype(np.float32), (rows, columns.ravel())), shape=(n_out, n_in))


def resample_bicubic(images: np.ndarray, *, factors: tuple[float, float]) -> np.ndarray:
    """Resample the last two axes of ``images`` (channels, rows, columns) by ``factors``; float32."""
    rows = bicubic_matrix(images.shape[-2], factor=factors[0])
    columns = bicubic_matrix(images.shape[-1], factor=factors[1])
    out = np.empty((images.shape[0], rows.shape[0], columns.shape[0]), dtype=np.float32)
    for channel, image in enumerate(np.asarray(images, dtype=np.float32)):
        out[channel] = (columns @ (rows @ image).T).T
    return out


def centre_offsets(size: int, target: int) -> int:
    """Where input index 0 lands in an output of ``target`` samples when ``size`` samples are centred in it.

    Negative when cropping. Follows the loader: the smaller half of the padding (or cropping) goes first.
    """
    return (target - size) // 2


def centre_pad_crop(
    images: np.ndarray, *, shape: tuple[int, int], fill: np.ndarray
) -> tuple[np.ndarray, tuple[int, int]]:
    """Centre ``images`` (channels, rows, columns) in ``shape``, padding channel c with ``fill[c]``.

    Returns the fitted images and the (row, column) offsets of input pixel [0, 0] in them (negative when cropped).
    """
    channels, rows, columns = images.shape
    offsets = (centre_offsets(rows, shape[0]), centre_offsets(columns, shape[1]))
    out = np.empty((channels, *shape), dtype=np.float32)
    out[...] = np.asarray(fill, dtype=np.float32)[:, None, None]
    source, target = [], []
    for size, wanted, offset in zip((rows, columns), shape, offsets, strict=True):
        start, stop = max(0, -offset), min(size, wanted - offset)
        source.append(slice(start, stop))
        target.append(slice(start + offset, stop + offset))
    out[:, target[0], target[1]] = images[:, source[0], source[1]]
    return out, offsets


@dataclass
class FittedImage:
    """Channels resampled and centred in a fixed shape, with what is needed to normalise them and to locate them.

    ``value_range`` (channels, 2) holds each channel's minimum and maximum over the whole resampled image (before
    cropping), the loader's normalisation range. ``pixel_spacing`` (rows, columns) is the spacing after resampling,
    ``offset`` where resampled pixel [0, 0] sits in the output, ``cut`` how many resampled rows and columns fell
    outside it.
    """

    image: np.ndarray
    value_range: np.ndarray
    pixel_spacing: tuple[float, float]
    offset: tuple[int, int]
    cut: tuple[int, int]


def fit_channels(
    channels: np.ndarray, *, spacing: tuple[float, float], factors: tuple[float, float], shape: tuple[int, int]
) -> FittedImage:
    """Resample (channels, rows, columns) images of pixel ``spacing`` by ``factors`` and centre them in ``shape``."""
    resampled = resample_bicubic(channels, factors=factors)
    low = resampled.min(axis=(1, 2))
    high = resampled.max(axis=(1, 2))
    image, offset = centre_pad_crop(resampled, shape=shape, fill=low)
    cut = tuple(max(0, size - wanted) for size, wanted in zip(resampled.shape[1:], shape, strict=True))
    return FittedImage(
        image=image,
        value_range=np.stack([low, high], axis=1).astype(np.float32),
        pixel_spacing=(spacing[0] / factors[0], spacing[1] / factors[1]),
        offset=offset,
        cut=cut,
    )


def normalise(image: np.ndarray, value_range: np.ndarray) -> np.ndarray:
    """The loader's per-channel min-max normalisation, from the stored range: padding maps to 0."""
    low = value_range[:, 0, None, None]
    high = value_range[:, 1, None, None]
    return ((image - low) / (high - low + np.float32(NORMALISE_EPS))).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------------
# One pair


@dataclass
class PairedItem:
    """One training item: MRI (2, rows, columns) and DXA (2, rows, columns), raw intensities, and their geometry.

    ``mri_origin`` is the LPS position (mm) of MRI output pixel [0, 0]: rows run head->feet (LPS z falls by
    ``mri.pixel_spacing[0]`` per row), columns run right->left (LPS x rises by ``mri.pixel_spacing[1]``). DXA images
    carry no position, so ``dxa_origin`` is relative: the (row, column) mm of output pixel [0, 0] from the centre of
    the stored image's pixel [0, 0].
    """

    mri: FittedImage
    dxa: FittedImage
    mri_origin: np.ndarray
    dxa_origin: np.ndarray


def make_pair(
    mri_rows: np.ndarray,
    dxa_images: np.ndarray,
    *,
    mri_spacing: tuple[float, float],
    mri_origin: np.ndarray,
    dxa_spacing: tuple[float, float],
    target: float,
    scaling: str,
    mri_shape: tuple[int, int],
    dxa_shape: tuple[int, int],
) -> PairedItem:
    """Fit one pair.

    ``mri_rows`` (channels, z, x) is a coronal MRI image already transposed to rows head->feet, with pixel spacing
    ``mri_spacing`` (sz, sx) and ``mri_origin`` the LPS position of its pixel [0, 0] (NaN when unknown).
    ``dxa_images`` (channels, rows, columns) with ``dxa_spacing`` (row, column) mm.
    """
    mri_factors = zoom_factors(mri_spacing, target=target, scaling=scaling, modality="mri")
    dxa_factors = zoom_factors(dxa_spacing, target=target, scaling=scaling, modality="dxa")
    mri = fit_channels(mri_rows, spacing=mri_spacing, factors=mri_factors, shape=mri_shape)
    dxa = fit_channels(dxa_images, spacing=dxa_spacing, factors=dxa_factors, shape=dxa_shape)
    mri_shift = _output_origin(mri, source_spacing=mri_spacing)  # mm along (rows: towards the feet, columns: left)
    origin = np.asarray(mri_origin, dtype=np.float64).copy()
    origin[0] += mri_shift[1]
    origin[2] -= mri_shift[0]
    return PairedItem(
        mri=mri,
        dxa=dxa,
        mri_origin=origin.astype(np.float32),
        dxa_origin=_output_origin(dxa, source_spacing=dxa_spacing).astype(np.float32),
    )


def _output_origin(fitted: FittedImage, *, source_spacing: tuple[float, float]) -> np.ndarray:
    """(row, column) mm of output pixel [0, 0] from the centre of source pixel [0, 0].

    Resampled pixel i sits at ``(i + 0.5) * new - 0.5 * old`` mm from source pixel 0 (pixel areas aligned), and
    output pixel 0 is resampled pixel ``-offset``.
    """
    return np.array(
        [
            (0.5 - offset) * new - 0.5 * old
            for offset, new, old in zip(fitted.offset, fitted.pixel_spacing, source_spacing, strict=True)
        ]
    )


# ---------------------------------------------------------------------------------------------------------------------
# Pairing and splits


class Visit(Protocol):
    """Anything named after a visit: an input file or output (its EID, instance and array index, and its stem)."""

    @property
    def eid(self) -> int | None: ...
    @property
    def instance(self) -> int | None: ...
    @property
    def array(self) -> int | None: ...
    @property
    def stem(self) -> str: ...


@dataclass(frozen=True)
class Pair:
    """The MRI slab and the DXA output of one participant's visit."""

    eid: int
    instance: int
    mri: Any  # a Visit (an InputFile in the pipeline)
    dxa: Any


@dataclass
class Pairing:
    pairs: list[Pair]
    mri_only: list[Any]
    dxa_only: list[Any]


def pair_by_visit(mri: Iterable[Visit], dxa: Iterable[Visit]) -> Pairing:
    """Pair MRI and DXA outputs on (eid, instance), sorted by it; the lowest array index wins a tie.

    Outputs whose names do not carry an EID and instance are ignored.
    """
    by_visit_mri = _by_visit(mri)
    by_visit_dxa = _by_visit(dxa)
    both = sorted(by_visit_mri.keys() & by_visit_dxa.keys())
    return Pairing(
        pairs=[Pair(eid=eid, instance=instance, mri=by_visit_mri[eid, instance], dxa=by_visit_dxa[eid, instance])
               for eid, instance in both],
        mri_only=[by_visit_mri[key] for key in sorted(by_visit_mri.keys() - by_visit_dxa.keys())],
        dxa_only=[by_visit_dxa[key] for key in sorted(by_visit_dxa.keys() - by_visit_mri.keys())],
    )


def _by_visit(items: Iterable[Visit]) -> dict[tuple[int, int], Visit]:
    chosen: dict[tuple[int, int], Visit] = {}
    for item in sorted(items, key=lambda item: (item.array or 0, item.stem), reverse=True):
        if item.eid is not None and item.instance is not None:
            chosen[item.eid, item.instance] = item
    return chosen


def hash_split(eid: int, *, fractions: Sequence[float], seed: int = 0) -> str:
    """The split of ``eid`` by a stable hash (blake2b, not Python's salted ``hash``) and the train/val/test fractions.

    The same EID always gets the same split, whichever other EIDs exist and on whichever machine, so every visit of a
    participant lands in one split and a growing cohort never moves a participant between splits.
    """
    check_fractions(fractions)
    digest = hashlib.blake2b(f"{seed}:{eid}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2.0**64
    bounds = np.cumsum(fractions)
    for name, bound in zip(SPLITS, bounds, strict=True):
        if u < bound:
            return name
    return SPLITS[-1]


def check_fractions(fractions: Sequence[float]) -> None:
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers (train, val, test) summing to 1, "
                         f"got {list(fractions)}")


def split_from_lists(eid: int, lists: Mapping[str, set[int]]) -> str:
    """The split whose list holds ``eid`` (e.g. the paper's published subject lists); ``unassigned`` if none does."""
    for name, eids in lists.items():
        if eid in eids:
            return name
    return UNASSIGNED


def check_disjoint(lists: Mapping[str, set[int]]) -> None:
    """Refuse split lists that share EIDs: a participant in two splits leaks test data into training."""
    names = list(lists)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = lists[first] & lists[second]
            if shared:
                shown = ", ".join(map(str, sorted(shared)[:5]))
                raise ValueError(f"split lists {first} and {second} share {len(shared)} EID(s): {shown}")
