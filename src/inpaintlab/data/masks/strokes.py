"""Free-form brush strokes (DeepFill v2 / LaMa style) and the irregular thin/medium/thick presets.

Lengths and widths are fractions of the shorter image side, so a setting means the same
hole shapes at any resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from inpaintlab.data.masks.base import MaskGenerator, as_range, randint, uniform
from inpaintlab.data.masks.raster import draw_segments
from inpaintlab.errors import ConfigError


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


def _px256(low: float, high: float) -> tuple[float, float]:
    """A pixel range at 256 px as fractions of the image side."""
    return low / 256, high / 256


# LaMa's random_{thin,medium,thick}_256 irregular settings, rescaled to fractions of the side:
# strokes = [min_times, max_times], 1-5 segments per stroke, length 10 + U(max_len) px,
# brush 5 + U(max_width) px, turns up to max_angle = 4 rad. Differences from LaMa: turns are
# drawn continuously (LaMa draws whole radians) around a random heading, the brush is fixed
# per stroke, and the turn sign alternates per segment as in DeepFill v2.
IRREGULAR_PRESETS: dict[str, dict[str, Any]] = {
    "thin": {"strokes": (4, 50), "length": _px256(10, 50), "width": _px256(5, 15)},
    "medium": {"strokes": (4, 5), "length": _px256(10, 110), "width": _px256(5, 55)},
    "thick": {"strokes": (1, 5), "length": _px256(10, 210), "width": _px256(5, 105)},
}
_IRREGULAR_SHARED: dict[str, Any] = {"segments": (1, 5), "angle": (0.0, 4.0)}


class IrregularMask(FreeFormMask):
    """Brush strokes with a named difficulty preset ("thin", "medium" or "thick").

    thin = many narrow strokes, thick = few wide ones (LaMa's presets). Keyword overrides
    replace single preset values; an override of None keeps the preset value.
    """

    def __init__(self, preset: str = "medium", **overrides: Any):
        if preset not in IRREGULAR_PRESETS:
            raise ConfigError(
                f"unknown irregular preset {preset!r}; choose one of {sorted(IRREGULAR_PRESETS)}"
            )
        chosen = {k: v for k, v in overrides.items() if v is not None}
        super().__init__(**{**_IRREGULAR_SHARED, **IRREGULAR_PRESETS[preset], **chosen})
        self.preset = preset
