"""The training switches every model shares (conf/model/switches/default.yaml), checked once."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import hydra
import torch

from inpaintlab.errors import ConfigError
from inpaintlab.networks.prefill import PREFILL_KINDS, check_residual

CHOICES = {
    "gradient_clip_algorithm": ("norm", "value"),
    "scheduler_interval": ("step", "epoch"),
    "nan_guard": ("stop", "skip"),
    "prefill": PREFILL_KINDS,
}


@dataclass(frozen=True)
class TrainingSwitches:
    """Speed, stability and generator-extension switches every model shares (see the yaml)."""

    num_samples: int = 8
    channels_last: bool = False
    compile: bool = False
    compile_mode: str | None = None
    compile_backend: str = "inductor"
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str = "norm"
    scheduler: dict | None = None
    scheduler_interval: str = "epoch"
    scheduler_monitor: str = "val/psnr/all"
    ema_decay: float | None = None
    nan_guard: str = "stop"
    nan_max_skips: int = 10
    prefill: str = "none"
    residual: bool = False

    def __post_init__(self) -> None:
        for key, choices in CHOICES.items():
            if getattr(self, key) not in choices:
                raise ConfigError(
                    f"model.{key}={getattr(self, key)!r} is not one of {', '.join(choices)}"
                )
        check_residual(self.prefill, self.residual)
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(
                f"model.ema_decay={self.ema_decay} must lie between 0 and 1 (e.g. 0.999), "
                "or be null to train without an average"
            )
        if self.gradient_clip_val is not None and self.gradient_clip_val <= 0:
            raise ConfigError(
                f"model.gradient_clip_val={self.gradient_clip_val} must be positive, or null"
            )

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> TrainingSwitches:
        """Switches from a model's extra keyword arguments; unknown names are config errors."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"unknown model option(s) {', '.join(unknown)}: the training switches are "
                f"{', '.join(sorted(known))}"
            )
        return cls(**options)


def build_scheduler(
    config: dict, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler:
    """One learning-rate scheduler for `optimizer` from a partial scheduler config."""
    try:
        factory = hydra.utils.instantiate(config)
    except hydra.errors.InstantiationException as error:
        raise ConfigError(f"model.scheduler cannot be built: {error}") from error
    if not callable(factory):
        raise ConfigError("model.scheduler must be a partial config (_partial_: true)")
    return factory(optimizer)


def is_plateau(scheduler: Any) -> bool:
    """Whether a scheduler steps on a monitored metric rather than on a clock."""
    return isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
