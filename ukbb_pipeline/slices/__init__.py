"""Mid-coronal slab extraction: arrays in, arrays out."""
