"""Weighted mixture of mask generators, chosen independently for each sample."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from inpaintlab.data.masks.base import MaskGenerator
from inpaintlab.errors import ConfigError


def _paired(
    generators: Sequence[MaskGenerator] | Mapping[str, MaskGenerator],
    weights: Sequence[float] | Mapping[str, float],
) -> tuple[list[MaskGenerator], list[float]]:
    """Generators and weights as two aligned lists (mappings are matched by key)."""
    if isinstance(generators, Mapping):
        if not isinstance(weights, Mapping) or set(weights) != set(generators):
            raise ConfigError(
                f"MixtureMask weights must name the same generators {sorted(generators)}"
            )
        names = list(generators)
        return [generators[n] for n in names], [float(weights[n]) for n in names]
    return list(generators), [float(w) for w in weights]


class MixtureMask(MaskGenerator):
    """Each sample's mask comes from one generator, picked with probability ~ its weight.

    `generators` and `weights` are lists of the same length, or mappings with the same keys
    (convenient for Hydra configs that compose the members from other mask configs).
    """

    def __init__(
        self,
        generators: Sequence[MaskGenerator] | Mapping[str, MaskGenerator],
        weights: Sequence[float] | Mapping[str, float],
        **bounds: Any,
    ):
        super().__init__(**bounds)
        self.generators, self.weights = _paired(generators, weights)
        if len(self.generators) != len(self.weights) or not self.generators:
            raise ConfigError(
                f"MixtureMask needs one weight per generator, got {len(self.generators)} "
                f"generators and {len(self.weights)} weights"
            )
        if min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ConfigError(
                f"MixtureMask weights must be >= 0 with a positive sum, got {self.weights}"
            )

    def _sample(self, batch_size: int, height: int, width: int, generator, device) -> Tensor:
        probs = torch.tensor(self.weights, device=device, dtype=torch.float32)
        choice = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
        masks = torch.empty(batch_size, 1, height, width, device=device)
        for index, member in enumerate(self.generators):
            rows = (choice == index).nonzero().squeeze(1)
            if rows.numel() > 0:
                masks[rows] = member(
                    rows.numel(), height, width, generator=generator, device=device
                )
        return masks
