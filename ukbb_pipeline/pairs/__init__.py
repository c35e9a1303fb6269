"""DXA/MRI pairs: fitting one pair to the paper's geometry, and the paired dataset reader."""
