"""A curved slab: at each z, the rows around that z's own centre row (a curved planar reformation along y).

A flat slab keeps the same input rows at every z. A slab through the spine follows it: at z the centre is the row
r(z) of the spine, and the slab's rows are r(z) + k * spacing for k = -n .. n. At a z where that window would leave
the volume, it is moved inward (as the flat window is, see ``midcoronal.slab_window``) and the shift is recorded.
"""

from __future__ import annotations

import numpy as np

from ukbb_pipeline.errors import InputError


def curved_rows(centres: np.ndarray, *, n_rows: int, n_neighbours: int, spacing: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For centre rows per z, the slab's rows ``(2 n + 1, z)``, the centre row actually used per z (after moving
    the window inward where needed) and the shift per z (rows, positive towards higher rows)."""
    if n_neighbours < 0 or spacing < 1:
        raise ValueError(f"need n_neighbours >= 0 and spacing >= 1, got {n_neighbours} and {spacing}")
    span = 2 * n_neighbours * spacing
    if span >= n_rows:
        raise InputError(
            f"the volume has {n_rows} coronal rows; {2 * n_neighbours + 1} rows {spacing} apart need {span + 1}"
        )
    start = np.asarray(centres, dtype=np.int64) - n_neighbours * spacing
    fitted = np.clip(start, 0, n_rows - 1 - span)
    rows = fitted[None, :] + spacing * np.arange(2 * n_neighbours + 1)[:, None]
    return fitted + n_neighbours * spacing, rows, fitted - start
