"""Quality-control pictures and the run report."""
