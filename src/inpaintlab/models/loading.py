"""Rebuild the model a checkpoint or release file records: its class (an inpaintlab model, never
anything else), its settings, its weights."""

from __future__ import annotations

from typing import Any

import hydra

from inpaintlab.errors import CheckpointError, InpaintlabError, one_line
from inpaintlab.models.base import InpaintingModule
from inpaintlab.models.checkpoint import CHECKPOINT_KEY

MODELS_PACKAGE = "inpaintlab.models."


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
