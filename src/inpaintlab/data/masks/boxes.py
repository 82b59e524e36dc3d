"""Rectangular holes: a fixed centre box and random axis-aligned boxes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from inpaintlab.data.masks.base import MaskGenerator, as_range, randint, uniform
from inpaintlab.errors import ConfigError


class CenterBoxMask(MaskGenerator):
    """Centred square hole of side round(size * min(H, W)) - 2 * inset.

    The Context Encoder centre setting is size 0.5, inset 4 at 128 px: the network predicts
    the 64 px centre patch, whose 56 px interior is the hole (rows/cols 36..91) and whose
    4 px border is known overlap.

    >>> CenterBoxMask(0.5, inset=4)(1, 128, 128)[0, 0, 36:92, 36:92].min().item()
    1.0
    """

    def __init__(self, size: float = 0.5, inset: int = 0, **bounds: Any):
        super().__init__(**bounds)
        if not 0.0 < size <= 1.0 or inset < 0:
            raise ConfigError(
                f"CenterBoxMask needs 0 < size <= 1 and inset >= 0, got {size}, {inset}"
            )
        self.size = float(size)
        self.inset = int(inset)

    def _sample(self, batch_size: int, height: int, width: int, generator, device) -> Tensor:
        side = round(self.size * min(height, width))
        top = (height - side) // 2 + self.inset
        left = (width - side) // 2 + self.inset
        hole = max(side - 2 * self.inset, 0)
        mask = torch.zeros(batch_size, 1, height, width, device=device)
        mask[..., top : top + hole, left : left + hole] = 1.0
        return mask


class RandomBoxMask(MaskGenerator):
    """Union of `count` random boxes; each side is a `size` fraction of that image side."""

    def __init__(
        self,
        count: Sequence[int] = (1, 4),
        size: Sequence[float] = (0.1, 0.4),
        **bounds: Any,
    ):
        super().__init__(**bounds)
        self.count = as_range(count, "RandomBoxMask.count", integer=True)
        self.size = as_range(size, "RandomBoxMask.size")
        if self.size[1] > 1.0:
            raise ConfigError(f"RandomBoxMask.size must lie in [0, 1], got {size}")

    def _sample(self, batch_size: int, height: int, width: int, generator, device) -> Tensor:
        slots = self.count[1]
        shape = (batch_size, slots)
        active = torch.arange(slots, device=device) < randint(
            *self.count, (batch_size, 1), generator, device
        )
        rows = self._spans(height, shape, generator, device)
        cols = self._spans(width, shape, generator, device)
        rows = rows * active.unsqueeze(-1)
        covered = torch.einsum("bkh,bkw->bhw", rows, cols)
        return (covered > 0.5).float().unsqueeze(1)

    def _spans(self, length: int, shape: tuple[int, int], generator, device) -> Tensor:
        """B x K x length indicator of one random interval per box along one axis."""
        extent = (uniform(*self.size, shape, generator, device) * length).round().clamp(1, length)
        start = (
            torch.rand(shape, generator=generator, device=device) * (length - extent + 1)
        ).floor()
        pos = torch.arange(length, device=device)
        inside = (pos >= start.unsqueeze(-1)) & (pos < (start + extent).unsqueeze(-1))
        return inside.float()
