"""Evaluate a checkpoint: `python eval.py ckpt_path=<run folder>/checkpoints/best.ckpt`."""

import hydra
from omegaconf import DictConfig

from inpaintlab.evaluation.evaluate import evaluate
from inpaintlab.runtime import run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    """Evaluate and write metrics.json / metrics.csv in the run folder."""
    run_task(evaluate, cfg)


if __name__ == "__main__":
    main()
