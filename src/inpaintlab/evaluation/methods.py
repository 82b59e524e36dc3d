"""Method specs of the evaluation: `ckpt:<path>` for a train.py checkpoint, or a baseline name.

    python eval.py methods='[ckpt:/runs/a/checkpoints/best.ckpt,telea,navier_stokes,biharmonic]'

Every method becomes a callable `(image, mask) -> composite` under a short unique label: the
baseline's name, or the checkpoint path's last folders that tell it apart from the others
(`checkpoints/` folders left out, `.ckpt` dropped), e.g. `a/best`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from inpaintlab.errors import ConfigError
from inpaintlab.evaluation.baselines import BASELINES, ClassicalInpainter
from inpaintlab.inference.inpainter import Inpainter
from inpaintlab.models.checkpoint import CHECKPOINT_KEY, read_checkpoint
from inpaintlab.models.loading import model_from_checkpoint

InpaintFn = Callable[[Tensor, Tensor], Tensor]
CKPT_PREFIX = "ckpt:"
SKIPPED_FOLDERS = {"checkpoints"}


def checkpoint_path(spec: str) -> Path | None:
    """The path of a `ckpt:<path>` spec (user's home expanded); None for a baseline."""
    return Path(spec.removeprefix(CKPT_PREFIX)).expanduser() if is_checkpoint(spec) else None


def is_checkpoint(spec: str) -> bool:
    return spec.startswith(CKPT_PREFIX)


def check_specs(specs: Sequence[str]) -> list[str]:
    """`specs` as a list, or a ConfigError for an unknown, repeated or empty list of methods."""
    specs = [str(spec).strip() for spec in specs]
    if not specs:
        raise ConfigError(
            "nothing to evaluate: pass ckpt_path=<run>/checkpoints/best.ckpt or "
            f"methods=[ckpt:<path>,{','.join(BASELINES)}]"
        )
    for spec in specs:
        if not is_checkpoint(spec) and spec not in BASELINES:
            raise ConfigError(
                f"unknown method {spec!r} in methods: use ckpt:<path> or one of "
                f"{', '.join(BASELINES)}"
            )
    repeated = sorted({spec for spec in specs if specs.count(spec) > 1})
    if repeated:
        raise ConfigError(f"methods lists {', '.join(repeated)} more than once: list each once")
    return specs


def method_labels(specs: Sequence[str]) -> list[str]:
    """A short unique label per spec (see the module docstring)."""
    names = [_name_parts(spec) for spec in specs]
    labels = []
    for parts in names:
        length = min(2, len(parts))
        while length < len(parts) and sum(n[-length:] == parts[-length:] for n in names) > 1:
            length += 1
        labels.append("/".join(parts[-length:]))
    return labels


def _name_parts(spec: str) -> list[str]:
    path = checkpoint_path(spec)
    if path is None:
        return [spec]
    folders = [part for part in path.parent.parts if part not in SKIPPED_FOLDERS and part != "/"]
    return [*folders, path.stem]


def build_methods(
    specs: Sequence[str],
    device: torch.device,
    radius: int = 3,
    checkpoints: dict[str, dict[str, Any]] | None = None,
) -> dict[str, InpaintFn]:
    """{label: method} for `specs`; `checkpoints` holds checkpoints already read, by spec."""
    specs = check_specs(specs)
    checkpoints = checkpoints or {}
    methods: dict[str, InpaintFn] = {}
    for spec, label in zip(specs, method_labels(specs), strict=True):
        path = checkpoint_path(spec)
        if path is None:
            methods[label] = ClassicalInpainter(spec, radius)
            continue
        checkpoint = checkpoints.get(spec) or read_checkpoint(path)
        methods[label] = Inpainter(model_from_checkpoint(checkpoint), label, device)
    return methods


def saved_run_config(checkpoint: dict[str, Any], path: Path) -> dict[str, Any]:
    """The training run's resolved config saved in a checkpoint, or a ConfigError."""
    config = checkpoint[CHECKPOINT_KEY].get("config")
    if config is None:
        raise ConfigError(f"{path} has no saved run config: evaluate a checkpoint of train.py")
    return config
