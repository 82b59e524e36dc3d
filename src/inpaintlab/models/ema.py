"""Exponential moving average of network weights (the generators' averaged copies)."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor, nn


class WeightAverage(nn.Module):
    """Averaged copies of networks: after each update, average = d * average + (1 - d) * live.

    The decay is warmed up, d = min(decay, (1 + n) / (10 + n)) at the n-th update, so that early
    averages are not dominated by the random initial weights. Buffers (BatchNorm statistics,
    spectral-norm vectors) are copied, not averaged. The copies are submodules: they move with
    the module, sit in its state_dict (checkpoints) and take no gradients.

    >>> net = nn.Linear(2, 2)
    >>> average = WeightAverage({"net": net}, decay=0.999)
    >>> average.update({"net": net})
    >>> average.networks["net"](torch.zeros(1, 2)).shape
    torch.Size([1, 2])
    """

    def __init__(self, networks: Mapping[str, nn.Module], decay: float) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"an EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        copies = {name: copy.deepcopy(network) for name, network in networks.items()}
        self.networks = nn.ModuleDict(copies).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def current_decay(self) -> Tensor:
        """The decay the next update uses (a tensor: no host synchronisation)."""
        n = self.updates.to(torch.float32)
        return torch.clamp((1 + n) / (10 + n), max=self.decay)

    @torch.no_grad()
    def update(self, live: Mapping[str, nn.Module]) -> None:
        """Move each average towards its live network's current weights."""
        weight = 1 - self.current_decay()
        for name, average in self.networks.items():
            averaged = list(average.parameters())
            current = [p.detach() for p in live[name].parameters()]
            torch._foreach_lerp_(averaged, current, weight.to(averaged[0].device))
            for mine, theirs in zip(average.buffers(), live[name].buffers(), strict=True):
                mine.copy_(theirs)
        self.updates += 1

    @torch.no_grad()
    def reset(self, live: Mapping[str, nn.Module]) -> None:
        """Restart the averages from the live networks' weights (e.g. after loading them)."""
        for name, average in self.networks.items():
            average.load_state_dict(live[name].state_dict())
        self.updates.zero_()
