"""Resuming runs: which checkpoint `ckpt_path` names, crash-safe checkpoint files, per-rank state,
and run folders that keep an earlier run's records.

Lightning's own checkpoint writer serialises into memory, writes a temporary file in the system
temp folder and moves it into place, which is a copy (not atomic) when that folder lies on
another file system, as it usually does on clusters. `AtomicCheckpointIO` writes next to the
target and renames, so a run killed at any moment leaves either the old or the new file.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from fsspec.implementations.local import LocalFileSystem
from hydra.experimental.callback import Callback
from lightning_fabric.utilities.cloud_io import get_filesystem
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.plugins.io import TorchCheckpointIO

from inpaintlab.errors import ConfigError
from inpaintlab.evaluation.report import refuse_existing_results
from inpaintlab.runtime import save_config

log = logging.getLogger("inpaintlab")

LAST = "last"
LAST_FILE = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each local checkpoint to a hidden temporary file in its own folder, flush it to
    disk, then rename it over the target (remote paths fall back to Lightning's writer)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # no .ckpt suffix: a file left by a killed writer is never taken for a checkpoint
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk, where the platform allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def checkpoint_folder(trainer: Any) -> Path | None:
    """The folder the trainer's checkpoint callback writes to (None without one)."""
    checkpointing = trainer.checkpoint_callback
    if checkpointing is None or checkpointing.dirpath is None:
        return None
    return Path(checkpointing.dirpath)


def resolve_ckpt_path(ckpt_path: str | None, checkpoint_dir: Path | None) -> str | None:
    """The checkpoint to resume from: `last` means <checkpoint folder>/last.ckpt, or a fresh
    start while that file does not exist yet (the first launch of a job that may be requeued)."""
    if ckpt_path != LAST:
        return ckpt_path
    if checkpoint_dir is None:
        raise ConfigError(
            "ckpt_path=last needs checkpoints: use callbacks=default, or pass ckpt_path=<file>"
        )
    last = checkpoint_dir / LAST_FILE
    if last.is_file():
        return str(last)
    log.info("ckpt_path=last: %s does not exist yet, starting a new run", last)
    return None


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts (added and removed keys too)."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [prefix or "<root>"]
    keys = sorted(set(old) | set(new), key=str)
    return [
        changed
        for key in keys
        for changed in changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")
    ]


def save_run_config(cfg: DictConfig, path: Path, resuming: bool) -> Path:
    """Write the run's resolved config to `path`; a run resumed into the folder of the run it
    continues (e.g. a requeued SLURM job) keeps that config.yaml (`save_resumed_config`), and
    a new run replaces the config.yaml of one that stopped before writing any checkpoint."""
    if resuming and path.is_file():
        return save_resumed_config(cfg, path)
    if path.is_file() and not any(path.parent.glob("*.ckpt")):
        # an earlier run stopped before its first checkpoint: it left no result to protect
        log.info("%s belonged to a run that left no checkpoint: replaced", path)
        path.unlink()
    return save_config(cfg, path)


def save_resumed_config(cfg: DictConfig, path: Path) -> Path:
    """Keep a resumed run's config.yaml; write this run's config beside it, as
    config.resume<N>.yaml, only when it differs from the latest one, and say what changed."""
    saved = sorted(path.parent.glob(f"{path.stem}.resume*{path.suffix}"), key=resume_number)
    latest = saved[-1] if saved else path
    changes = changed_keys(plain_config(OmegaConf.load(latest)), plain_config(cfg))
    if not changes:
        return latest
    target = path.with_name(f"{path.stem}.resume{resume_number(latest) + 1}{path.suffix}")
    target.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    changed = ", ".join(key.rstrip(".") for key in changes)
    log.info("resumed with changed settings (%s): saved them to %s", changed, target)
    return target


def resume_number(path: Path) -> int:
    """N of config.resume<N>.yaml; 0 for config.yaml."""
    suffix = Path(path.stem).suffix  # ".resume<N>" or ""
    return int(suffix.removeprefix(".resume")) if suffix else 0


def plain_config(cfg: DictConfig) -> dict:
    """A config as resolved containers, without Hydra's own node (present when a config is
    composed outside @hydra.main, and different at every launch)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    return container


def gather_from_ranks(value: Any) -> list[Any]:
    """`value` of every process, in rank order (a one-item list without torch.distributed).
    A collective call: every rank must reach it."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def generator_state(generator: torch.Generator | None) -> dict[str, Any] | None:
    """A torch.Generator's device type and state, as checkpoint-safe values."""
    if generator is None:
        return None
    return {"device": generator.device.type, "state": generator.get_state()}


def restore_generator(state: dict[str, Any] | None, device: torch.device) -> torch.Generator | None:
    """A generator on `device` continuing from `state`; None (with a warning when there was a
    state) when there is none or it was saved on another device type."""
    if state is None:
        return None
    generator = torch.Generator(device)
    if state["device"] == generator.device.type:
        return generator.set_state(state["state"])
    log.warning(
        "a generator saved on %s is resumed on %s: it restarts from its seed",
        state["device"],
        generator.device.type,
    )
    return None


def rank_entry(states: list[Any] | None, rank: int, world_size: int, what: str) -> Any:
    """This rank's entry of per-rank states saved by `world_size` processes, or None (with a
    warning) when the checkpoint was written by a different number of processes."""
    if states is None:
        return None
    if len(states) != world_size:
        log.warning(
            "%s were saved by %d processes and are resumed by %d: they restart from their seeds",
            what,
            len(states),
            world_size,
        )
        return None
    return states[rank]


def count_the_finished_batch(checkpoint: dict[str, Any]) -> None:
    """Record a batch whose optimiser steps are taken as completed in a checkpoint written at
    its end (on_train_batch_end: every N steps, preemption). Lightning counts it completed only
    after that hook, and a run resumed from the checkpoint would train it again (its weights
    already are in the checkpoint, and the datamodule's position already counts it)."""
    fit_loop = checkpoint.get("loops", {}).get("fit_loop")
    if not fit_loop:
        return
    progress = fit_loop["epoch_loop.batch_progress"]
    if progress["total"]["processed"] != progress["total"]["completed"] + 1:
        return  # between batches, or inside one (the non-finite guard)
    for counts in (progress["total"], progress["current"]):
        counts["completed"] += 1
    # Lightning counts a stepped batch for its loggers after the hook, too
    fit_loop["epoch_loop.state_dict"]["_batches_that_stepped"] += 1


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
