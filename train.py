"""Train an inpainting GAN: `python train.py model=context_encoder mask=freeform ...`."""

import sys

import hydra
from omegaconf import DictConfig

from inpaintlab.runtime import run_task
from inpaintlab.sweeps import (
    ddp_process_argv,
    ddp_processes_run_this_job,
    export_submitit_local_ranks,
    name_wandb_run_in_sweep,
    sweep_objective,
)
from inpaintlab.training import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train; return the final `optimized_metric` (for Hydra sweepers that optimise it)."""
    name_wandb_run_in_sweep(cfg)
    export_submitit_local_ranks()
    with ddp_processes_run_this_job():
        metrics = run_task(train, cfg)
    return sweep_objective(metrics, cfg.get("optimized_metric"))


if __name__ == "__main__":
    sys.argv = ddp_process_argv(sys.argv)
    main()
