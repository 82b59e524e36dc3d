"""Sample grids for humans: masked input | output | composite | original, one row per image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torchvision
from torch import Tensor

from inpaintlab.ops.compositing import composite

HOLE_SHADE = 1.0  # holes are shown white in the masked input


def sample_grid(image: Tensor, mask: Tensor, pred: Tensor, extras: Sequence[Tensor] = ()) -> Tensor:
    """A C x H' x W' grid in [0, 1] with four tiles per row for each sample, then `extras`
    (B x 1 or B x C maps, such as edges)."""
    hole = mask.bool().expand_as(image)
    masked = image.masked_fill(hole, HOLE_SHADE)
    output = pred.clamp(0, 1).to(image.dtype)
    composed = composite(output, image, mask)
    columns = [
        masked,
        output,
        composed,
        image,
        *(e.to(image.dtype).expand_as(image) for e in extras),
    ]
    tiles = torch.stack(columns, dim=1).flatten(0, 1)
    return torchvision.utils.make_grid(
        tiles.float().cpu(), nrow=len(columns), padding=2, pad_value=0.5
    )


def save_grid(grid: Tensor, path: Path) -> Path:
    """Write a grid as PNG, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torchvision.utils.save_image(grid, path)
    return path
