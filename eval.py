"""Evaluate checkpoints and classical baselines on the same images and masks:

python eval.py ckpt_path=<run folder>/checkpoints/best.ckpt
python eval.py methods='[ckpt:<run>/checkpoints/best.ckpt,telea,navier_stokes,biharmonic]'
"""

import hydra
from omegaconf import DictConfig

from inpaintlab.evaluation.evaluate import evaluate
from inpaintlab.runtime import run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    """Evaluate; print the tables and write metrics, samples and plots in the run folder."""
    run_task(evaluate, cfg)


if __name__ == "__main__":
    main()
