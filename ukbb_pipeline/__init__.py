"""ukbb-pipeline: UK Biobank DXA and Dixon MRI bulk files to training-ready data."""
