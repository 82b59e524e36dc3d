"""Read checkpoints written by train.py without unpickling arbitrary objects; where a trainer
keeps them; what a step checkpoint records as finished."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from inpaintlab.errors import CheckpointError, one_line

# the entry that on_save_checkpoint adds: inpaintlab version, model class, run config
CHECKPOINT_KEY = "inpaintlab"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint's contents (tensors and plain containers only) and check its origin."""
    path = Path(path)
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "does not exist"
        raise CheckpointError(
            f"checkpoint {path} {problem}: give a file such as <run>/checkpoints/last.ckpt"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not zipfile.is_zipfile(path):  # torch.save writes zip archives; not a pickle at all
            raise CheckpointError(
                f"cannot read checkpoint {path}: it is not a checkpoint, or a damaged one; "
                "use a checkpoint written by train.py"
            ) from error
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain containers, which could run "
            "code when loaded: inpaintlab refuses it; use a checkpoint written by train.py"
        ) from error
    except Exception as error:
        raise CheckpointError(
            f"cannot read checkpoint {path} ({one_line(error)}): it is truncated or not a "
            "checkpoint written by train.py"
        ) from error
    if not isinstance(checkpoint, dict) or CHECKPOINT_KEY not in checkpoint:
        raise CheckpointError(
            f"{path} was not written by inpaintlab's train.py: pass one of its checkpoints"
        )
    return checkpoint


def checkpoint_folder(trainer: Any) -> Path | None:
    """The folder the trainer's checkpoint callback writes to (None without one)."""
    checkpointing = trainer.checkpoint_callback
    if checkpointing is None or checkpointing.dirpath is None:
        return None
    return Path(checkpointing.dirpath)


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
