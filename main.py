"""ukbb-pipeline entry point: compose the Hydra config and run the selected stage."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ukbb_pipeline.config import register_configs
from ukbb_pipeline.stages import run_stage_from_config

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    run_stage_from_config(cfg)


if __name__ == "__main__":
    main()
