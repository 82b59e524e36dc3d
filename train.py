"""Train an inpainting GAN: `python train.py model=context_encoder mask=freeform ...`."""

import hydra
from omegaconf import DictConfig

from inpaintlab.runtime import run_task
from inpaintlab.training import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train; return the last validation PSNR (for Hydra sweepers that optimise it)."""
    metrics = run_task(train, cfg)
    return metrics.get("val/psnr/all")


if __name__ == "__main__":
    main()
