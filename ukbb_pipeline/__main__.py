"""``python -m ukbb_pipeline``: the same command as ``ukbb-pipeline``."""

from ukbb_pipeline.cli import main

if __name__ == "__main__":
    main(prog="python -m ukbb_pipeline")
