"""Run folders keep an earlier run's records: a new run, or an evaluation, is refused before it
writes where a finished run left checkpoints or results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from inpaintlab.errors import ConfigError

# the files an evaluation writes into its folder
RESULT_FILES = ("metrics.csv", "metrics.json", "metrics.md", "samples.png", "per_bin.png")


class KeepFinishedRuns(Callback):
    """Refuse a single run whose folder (hydra.run.dir) holds an earlier run's results before
    Hydra writes anything there (.hydra/, the log): checkpoints for train.py unless it resumes
    with ckpt_path; evaluation results or a training run's checkpoints for eval.py. The tasks
    refuse earlier checkpoints and results again when they are called as functions."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(config.hydra.run.dir)
        task = config.hydra.job.config_name
        try:
            if task == "eval":
                refuse_existing_results(folder)
                refuse_training_run(folder)
            elif task == "train":
                refuse_to_overwrite(folder / "checkpoints", resuming=bool(config.get("ckpt_path")))
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)


def refuse_training_run(folder: Path) -> None:
    """An evaluation never writes into a training run's folder (its .hydra/ records)."""
    if any((folder / "checkpoints").glob("*.ckpt")):
        raise ConfigError(
            f"{folder} holds a training run: evaluate into a new folder (hydra.run.dir=...) "
            "so that the run's records stay as they are"
        )


def refuse_to_overwrite(folder: Path | None, resuming: bool) -> None:
    """Never write a new run's checkpoints over an earlier run's."""
    if folder is not None and not resuming and any(folder.glob("*.ckpt")):
        raise ConfigError(
            f"{folder} already holds a run's checkpoints: choose a new hydra.run.dir, or "
            "resume that run with ckpt_path=last"
        )


def refuse_existing_results(folder: Path) -> None:
    """A one-line ConfigError when `folder` already holds evaluation results."""
    existing = [name for name in RESULT_FILES if (folder / name).exists()]
    if existing:
        raise ConfigError(
            f"{folder} already holds evaluation results ({', '.join(existing)}): "
            "choose a new output folder (hydra.run.dir=...)"
        )
