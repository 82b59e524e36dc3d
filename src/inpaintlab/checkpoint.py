"""Read checkpoints written by train.py without unpickling arbitrary objects, and rebuild models."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
import torch

from inpaintlab.errors import CheckpointError, InpaintlabError, one_line

if TYPE_CHECKING:
    from inpaintlab.models.base import InpaintingModule

# the entry that on_save_checkpoint adds: inpaintlab version, model class, run config
CHECKPOINT_KEY = "inpaintlab"
MODELS_PACKAGE = "inpaintlab.models."


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


def model_from_checkpoint(checkpoint: dict[str, Any]) -> InpaintingModule:
    """Rebuild the LightningModule recorded in a checkpoint and load its weights (eval mode)."""
    model = untrained_model(checkpoint)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, RuntimeError) as error:
        raise settings_do_not_fit(model.__class__, error) from error
    return model


def untrained_model(record: dict[str, Any]) -> InpaintingModule:
    """The LightningModule a checkpoint (or release file) records, built from its settings
    with fresh weights, in eval mode."""
    name = record[CHECKPOINT_KEY]["model"]
    if not name.startswith(MODELS_PACKAGE):
        raise CheckpointError(f"checkpoint names model {name!r}, which is not an inpaintlab model")
    try:
        model_class = hydra.utils.get_class(name)
    except (ImportError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint names model {name!r}, which this version of inpaintlab does not have: "
            "use the version that wrote it"
        ) from error
    try:
        model = model_class(**record["hyper_parameters"])
    except (InpaintlabError, KeyError, RuntimeError, TypeError) as error:
        raise settings_do_not_fit(model_class, error) from error
    model.run_config = record[CHECKPOINT_KEY]["config"]
    return model.eval()


def settings_do_not_fit(model_class: type, error: Exception) -> CheckpointError:
    return CheckpointError(
        f"the checkpoint's settings or weights do not fit {model_class.__name__} "
        f"({one_line(error)}): it was written by another version of inpaintlab, or edited"
    )
