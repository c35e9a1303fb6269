"""ukbb-pipeline entry point in a checkout: the installed ``ukbb-pipeline`` command, composing from ./conf."""

from __future__ import annotations

from pathlib import Path

from ukbb_pipeline.cli import main

if __name__ == "__main__":
    main(conf=Path(__file__).resolve().parent / "conf", prog="python main.py")
