"""Hydra multiruns on clusters: sweep objectives, wandb grouping, and DDP inside a sweep."""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

log = logging.getLogger("inpaintlab")


class HydraConfigForSweeps(Callback):
    """Make `${hydra:...}` resolvable while a multirun is set up: Hydra sets HydraConfig only
    when a job starts, but the sweepers and launchers resolve `hydra.sweep.dir` before that, and
    ours lies under paths.root_dir, which defaults to `${hydra:runtime.cwd}` (Hydra issue 2247)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # a copy: set_config makes the hydra node read-only, and the sweep's config stays as is
        HydraConfig.instance().set_config(copy.deepcopy(config))


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun (a sweep)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_objective(metrics: dict[str, float], name: str | None) -> float | None:
    """The value a Hydra sweeper optimises: the run's final `name` metric (None when unnamed or
    not logged, which an optuna trial reports as a failure)."""
    if not name:
        return None
    if name not in metrics:
        log.warning("optimized_metric %r was not logged; logged: %s", name, ", ".join(metrics))
    return metrics.get(name)


def name_wandb_run_in_sweep(cfg: DictConfig) -> None:
    """In a multirun, a wandb run joins a group named after the sweep (unless the config names
    one) and gets the job number after its name, so the runs of a sweep sit together."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is None or not in_multirun():
        return
    hydra_cfg = HydraConfig.get()
    if not wandb_cfg.get("group"):
        wandb_cfg.group = f"{cfg.task_name}-{Path(hydra_cfg.sweep.dir).name}"
    wandb_cfg.name = f"{wandb_cfg.get('name') or cfg.task_name}-{hydra_cfg.job.num}"


# Lightning's DDP launcher (strategy=ddp, not ddp_spawn) starts processes 1..N-1 of a node by
# running the script again with the same command line. In a multirun that command line is the
# whole sweep (`-m a=1,2`): each of those processes would run every job of the sweep again,
# in a multirun folder of its own, with an optuna sampler of its own. The main process instead
# hands them its job's overrides in this variable, and train.py runs exactly that job.
DDP_JOB_ENV = "INPAINTLAB_DDP_JOB"
# what Lightning writes into the main process's environment when it starts those processes
DDP_LAUNCH_ENV = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def job_command_line() -> list[str]:
    """The arguments that make train.py run this multirun job alone, in this job's folder, with
    no .hydra/ record of its own (the main process writes it)."""
    hydra_cfg = HydraConfig.get()
    return [
        f"--config-name={hydra_cfg.job.config_name}",
        *hydra_cfg.overrides.hydra,
        *hydra_cfg.overrides.task,
        "hydra.mode=RUN",
        f'hydra.run.dir="{hydra_cfg.runtime.output_dir}"',
        "hydra.output_subdir=null",
    ]


@contextmanager
def ddp_processes_run_this_job() -> Iterator[None]:
    """Around one multirun job: the DDP processes Lightning starts run this job (not the
    sweep), and afterwards the job's process group and launcher variables are gone, so that
    the next job starts processes of its own."""
    launches = in_multirun() and "LOCAL_RANK" not in os.environ
    if not launches:
        yield
        return
    saved = {key: os.environ.get(key) for key in (*DDP_LAUNCH_ENV, DDP_JOB_ENV)}
    os.environ[DDP_JOB_ENV] = json.dumps(job_command_line())
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def export_submitit_local_ranks() -> None:
    """Under hydra/launcher=local with one task per device, tell Lightning each task's rank (as
    SLURM's variables do on a cluster), so that it starts no processes of its own."""
    if int(os.environ.get("SUBMITIT_LOCAL_NTASKS", "1")) > 1 and "LOCAL_RANK" not in os.environ:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def ddp_process_argv(argv: list[str]) -> list[str]:
    """The command line to run: `argv`, except in a DDP process that Lightning started
    (LOCAL_RANK > 0) for a multirun job, which runs that job's command line instead."""
    job = os.environ.get(DDP_JOB_ENV)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if job is None or local_rank == 0:
        return argv
    name = f"{Path(argv[0]).stem}_ddp_process_{local_rank}"
    return [argv[0], *json.loads(job), f"hydra.job.name={name}"]
