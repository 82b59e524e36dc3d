"""The Hydra tasks behind `inpaintlab train|eval` and a checkout's train.py / eval.py: the
configs ship inside the package (inpaintlab/conf), so both work wherever inpaintlab is installed.
Add a folder of your own configs with `hydra.searchpath=[file:///path/to/configs]`."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from inpaintlab.evaluation.evaluate import evaluate
from inpaintlab.runs.task import run_task
from inpaintlab.training.sweeps import (
    ddp_process_argv,
    ddp_processes_run_this_job,
    export_submitit_local_ranks,
    name_wandb_run_in_sweep,
    sweep_objective,
)
from inpaintlab.training.task import train


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def train_main(cfg: DictConfig) -> float | None:
    """Train; return the final `optimized_metric` (for Hydra sweepers that optimise it)."""
    name_wandb_run_in_sweep(cfg)
    export_submitit_local_ranks()
    with ddp_processes_run_this_job():
        metrics = run_task(train, cfg)
    return sweep_objective(metrics, cfg.get("optimized_metric"))


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def eval_main(cfg: DictConfig) -> None:
    """Evaluate; print the tables and write metrics, samples and plots in the run folder."""
    run_task(evaluate, cfg)


def run_train(argv: list[str]) -> None:
    """Train with `argv[1:]` as Hydra overrides (a DDP process gets its job's overrides)."""
    sys.argv = ddp_process_argv(argv)
    train_main()


def run_eval(argv: list[str]) -> None:
    """Evaluate with `argv[1:]` as Hydra overrides."""
    sys.argv = list(argv)
    eval_main()
