"""Thin long scratches, like the damage on old photographs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from inpaintlab.data.masks.base import MaskGenerator, as_range, randint, uniform
from inpaintlab.data.masks.strokes import draw_polylines
from inpaintlab.errors import ConfigError


class ScratchMask(MaskGenerator):
    """Several long, thin, nearly straight or gently curved lines.

    Each scratch starts at a random pixel with a random heading and runs U(length) x the
    shorter side in `segments` equal steps, turning by U(-bend, bend) radians per step; it
    may leave the image. Width is U(width) x the shorter side, at least 1 px (the default
    is 1-3 px at 256).
    """

    def __init__(
        self,
        count: Sequence[int] = (1, 6),
        length: Sequence[float] = (0.3, 1.2),
        width: Sequence[float] = (0.004, 0.012),
        bend: float = 0.1,
        segments: int = 8,
        **bounds: Any,
    ):
        super().__init__(**bounds)
        if segments < 1 or bend < 0:
            raise ConfigError(
                f"ScratchMask needs segments >= 1 and bend >= 0, got {segments}, {bend}"
            )
        self.count = as_range(count, "ScratchMask.count", integer=True)
        self.length = as_range(length, "ScratchMask.length")
        self.width = as_range(width, "ScratchMask.width")
        self.bend = float(bend)
        self.segments = int(segments)

    def _sample(self, batch_size: int, height: int, width: int, generator, device) -> Tensor:
        side = min(height, width)
        shape = (batch_size, self.count[1])
        draw = (generator, device)
        line_on = torch.arange(shape[1], device=device) < randint(
            *self.count, (batch_size, 1), *draw
        )
        active = line_on.unsqueeze(-1).expand(*shape, self.segments)
        size = torch.tensor([width, height], device=device, dtype=torch.float32)
        start = torch.rand((*shape, 1, 2), generator=generator, device=device) * size
        heading = torch.rand((*shape, 1), generator=generator, device=device) * (2 * math.pi)
        theta = heading + uniform(-self.bend, self.bend, (*shape, self.segments), *draw).cumsum(-1)
        step = uniform(*self.length, (*shape, 1), *draw) * (side / self.segments)
        moves = torch.stack([theta.cos(), theta.sin()], dim=-1) * step.unsqueeze(-1)
        points = torch.cat([start, start + moves.cumsum(dim=2)], dim=2)
        radius = uniform(*self.width, shape, *draw) * (side / 2)
        extent = (self.length[1] / self.segments + self.width[1]) * side
        return draw_polylines(points, radius, active, height, width, extent)
