"""ukbb-pipeline: UK Biobank DXA and Dixon MRI bulk files to training-ready data.

Layers (``tests/test_layout.py`` checks the import rule):

- science: ``dxa``, ``mri``, ``slices``, ``pairs.fit`` (and ``pairs.flags``) take arrays and keyword-only parameters;
  they never import ``runtime``, ``formats``, ``stages``, ``config`` or Hydra.
- runtime: ``runtime`` (the one run loop, manifests, sharding, atomic writes, fingerprints, input discovery, workers)
  handles files and units of work, never pixels: it never imports the science packages.
- formats: ``formats`` (HDF5, pickle, NIfTI, the collection), each writing and reading its own files.
- ``dicomio`` (bulk zips and DICOM members), ``download``, ``pairs.build`` / ``pairs.dataset``, ``qc``: the I/O around
  the science; ``stages`` (one short module per stage) join them.
- ``synthetic`` (the test-data generator) never imports the rest of the product.
"""
