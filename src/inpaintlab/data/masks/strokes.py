"""Free-form brush strokes (DeepFill v2 / LaMa style).

Lengths and widths are fractions of the shorter image side, so a setting means the same
hole shapes at any resolution. LaMa's irregular thin/medium/thick presets are settings of
this generator: conf/mask/irregular_{thin,medium,thick}.yaml.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from inpaintlab.data.masks.base import MaskGenerator, as_range, randint, uniform
from inpaintlab.data.masks.raster import draw_segments


def draw_polylines(
    points: Tensor, radius: Tensor, active: Tensor, height: int, width: int, max_extent: float
) -> Tensor:
    """Rasterise B x S polylines of V + 1 points (B x S x (V+1) x 2) with per-line radius.

    `active` (B x S x V) switches single segments off; returns B x 1 x H x W {0,1}.
    """
    batch = points.shape[0]
    starts = points[:, :, :-1].reshape(batch, -1, 2)
    ends = points[:, :, 1:].reshape(batch, -1, 2)
    radii = radius.unsqueeze(-1).expand_as(active).reshape(batch, -1)
    return draw_segments(starts, ends, radii, active.reshape(batch, -1), height, width, max_extent)


class FreeFormMask(MaskGenerator):
    """Random brush strokes: zig-zag random walks drawn with a round brush.

    Each stroke starts at a random pixel with a random heading; segment k turns by
    +/- U(angle) radians from that heading (the sign alternates, as in DeepFill v2), has a
    length of U(length) x the shorter side and is clipped to the image. The brush width,
    U(width) x the shorter side, is fixed per stroke. Defaults follow DeepFill v2 at 256 px:
    1-3 strokes of 4-12 segments, brush 12-40 px, turn 2pi/5 +/- 2pi/15.
    """

    def __init__(
        self,
        strokes: Sequence[int] = (1, 3),
        segments: Sequence[int] = (4, 12),
        length: Sequence[float] = (0.04, 0.35),
        width: Sequence[float] = (0.047, 0.156),
        angle: Sequence[float] = (0.84, 1.68),
        **bounds: Any,
    ):
        super().__init__(**bounds)
        self.strokes = as_range(strokes, "FreeFormMask.strokes", integer=True)
        self.segments = as_range(segments, "FreeFormMask.segments", minimum=1, integer=True)
        self.length = as_range(length, "FreeFormMask.length")
        self.width = as_range(width, "FreeFormMask.width")
        self.angle = as_range(angle, "FreeFormMask.angle")

    def _sample(self, batch_size: int, height: int, width: int, generator, device) -> Tensor:
        side = min(height, width)
        shape = (batch_size, self.strokes[1])
        steps = self.segments[1]
        draw = (generator, device)
        stroke_on = torch.arange(shape[1], device=device) < randint(
            *self.strokes, (batch_size, 1), *draw
        )
        seg_on = torch.arange(steps, device=device) < randint(*self.segments, (*shape, 1), *draw)
        active = seg_on & stroke_on.unsqueeze(-1)
        size = torch.tensor([width, height], device=device, dtype=torch.float32)
        point = torch.rand((*shape, 2), generator=generator, device=device) * size
        heading = torch.rand((*shape, 1), generator=generator, device=device) * (2 * math.pi)
        sign = 1.0 - 2.0 * (torch.arange(steps, device=device) % 2)
        theta = heading + sign * uniform(*self.angle, (*shape, steps), *draw)
        step = uniform(*self.length, (*shape, steps), *draw) * side
        radius = uniform(*self.width, shape, *draw) * (side / 2)
        points = [point]
        for k in range(steps):
            move = (
                torch.stack([theta[..., k].cos(), theta[..., k].sin()], dim=-1)
                * step[..., k : k + 1]
            )
            point = torch.minimum((point + move).clamp_min(0.0), size)
            points.append(point)
        extent = (self.length[1] + self.width[1]) * side
        return draw_polylines(torch.stack(points, dim=2), radius, active, height, width, extent)
