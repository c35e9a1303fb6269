"""Dixon MRI (field 20201): reading the six stations of a bulk zip in one pass and stitching them into one volume.

``header`` reads the dozen tags a slice needs, ``series`` stacks a series' slices in physical order, ``read`` makes
the one pass over a zip, ``stations`` groups series into stations (repeats, F/W size mismatches, missing ones),
``grid`` is the common output grid and the linear resampling onto it, ``edges`` finds noisy slab-edge slices,
``harmonise`` matches station intensities from their overlaps, ``swaps`` detects fat/water swaps, ``stitch``
feathers the stations together and ``assemble`` runs those steps in order. Science only: no Hydra, no config objects.
"""

from __future__ import annotations
