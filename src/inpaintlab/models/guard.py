"""The non-finite step guard: optimiser steps whose loss or gradients are not finite are
skipped on the device, counted there, and read by the host only at logging intervals.

An optimiser that can skip a step on the device (fused Adam, AdamW and SGD read a `found_inf`
tensor, as under a gradient scaler) never makes the host wait for the check. Other optimisers
and 16-mixed's gradient scaler (whose scaled gradients overflow by design, so only the loss is
checked) need the flag on the host: one synchronisation per step, as before this guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class GuardReport:
    """What the guard saw since its last report (read at one host synchronisation)."""

    bad_steps: int  # non-finite optimiser steps, all skipped
    first_name: str  # the loss of the first one
    first_step: int  # its global step
    longest_run: int  # the longest run of skipped steps in a row


def skips_on_device(optimizer: torch.optim.Optimizer) -> bool:
    """Whether `optimizer.step()` honours a `found_inf` attribute (fused implementations)."""
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False))


def non_finite_flag(loss: Tensor, parameters: list[Tensor], check_gradients: bool) -> Tensor:
    """1.0 where the loss (or, with `check_gradients`, any gradient) is not finite, else 0.0:
    a float32 scalar on the loss's device, computed without a host synchronisation."""
    flag = torch.isfinite(loss.detach()).all().logical_not().float()
    gradients = [p.grad for p in parameters if p.grad is not None] if check_gradients else []
    if gradients:
        total = torch.nn.utils.get_total_norm(gradients, foreach=True)
        flag = torch.maximum(flag, torch.isfinite(total).logical_not().float().to(flag.device))
    return flag


def step_unless(optimizer: Any, flag: Tensor, on_device: bool) -> None:
    """`optimizer.step()` unless `flag` is 1: decided by the optimiser's kernel when `on_device`
    (the step's clock and moments stay as they were), else on the host."""
    if not on_device:
        if not bool(flag):
            optimizer.step()
        return
    inner = getattr(optimizer, "optimizer", optimizer)  # Lightning wraps the optimiser
    inner.found_inf = flag
    try:
        optimizer.step()
    finally:
        del inner.found_inf


def restore_where(flag: Tensor, tensors: list[Tensor], saved: list[Tensor]) -> None:
    """Put `saved` back into `tensors` where `flag` is 1, on the device (nothing is saved
    before the first batch)."""
    if not saved:
        return
    with torch.no_grad():
        bad = flag.bool()
        for tensor, value in zip(tensors, saved, strict=True):
            tensor.copy_(torch.where(bad, value, tensor))


class StepCounts:
    """Device-side counts of the non-finite steps since the last `report()`."""

    def __init__(self) -> None:
        self.names: list[str] = []
        # bad steps, skipped in a row now, longest run, first bad step, its loss's index
        self._counts: Tensor | None = None

    def record(self, flag: Tensor, name: str, global_step: int) -> None:
        """Count one optimiser step at `global_step` (`flag` 1 when it was skipped)."""
        if name not in self.names:
            self.names.append(name)
        if self._counts is None:
            self._counts = torch.tensor([0, 0, 0, -1, -1], device=flag.device)
        bad = flag.long()
        bad_steps, in_a_row, longest, first_step, first_name = self._counts.unbind()
        in_a_row = (in_a_row + 1) * bad
        is_first = bad.bool() & (first_step < 0)
        self._counts = torch.stack(
            [
                bad_steps + bad,
                in_a_row,
                torch.maximum(longest, in_a_row),
                torch.where(is_first, global_step, first_step),
                torch.where(is_first, self.names.index(name), first_name),
            ]
        )

    def report(self) -> GuardReport | None:
        """The counts since the last report (one host synchronisation), or None without a
        non-finite step; a run of skipped steps in a row carries over to the next report."""
        if self._counts is None:
            return None
        bad_steps, in_a_row, longest, first_step, first_name = self._counts.tolist()
        self._counts = torch.tensor([0, in_a_row, in_a_row, -1, -1], device=self._counts.device)
        if not bad_steps:
            return None
        return GuardReport(bad_steps, self.names[first_name], first_step, longest)
