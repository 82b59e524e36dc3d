"""How a photo of any size meets a model trained at one size: the inference strategies.

- "full": the model sees the whole photo at its own resolution (fully convolutional models;
  a model of one fixed size, the Context Encoder, sees it resized to that size).
- "resize": the photo is shrunk so that its longer side is the training size, filled there,
  and the fill enlarged back into the holes.
- "crop": each group of nearby holes gets a window of the photo around it, at least the
  training size and with half of it as context on every side; the window is filled at the
  photo's resolution (shrunk to `MAX_WINDOW_FACTOR` times the training size when the group is
  larger) and only its group's holes are pasted back (windows may overlap; each hole is
  pasted once). Time and memory then grow with the area of the
  holes, not of the photo: a 4000 x 3000 scan with a few scratches costs a few windows.
- "auto": "full" when the photo's longer side is at most `MAX_WINDOW_FACTOR` times the
  training size, else "crop" (a Context Encoder trained in the centre setting fills its
  centre only, so it always takes "full").

In every strategy the known pixels come back bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from inpaintlab.errors import ConfigError
from inpaintlab.inference import STRATEGIES
from inpaintlab.ops.compositing import composite, resize_image, resize_mask
from inpaintlab.ops.growth import spread_within

MAX_WINDOW_FACTOR = 4  # a window's longer side, in training sizes, before it is shrunk
CELLS_PER_SIDE = 4  # holes are grouped on a grid of (training size / this) pixel cells

Fill = Callable[[Tensor, Tensor], Tensor]  # (image, mask) -> composite, at the input's size


class Window(NamedTuple):
    top: int
    left: int
    bottom: int
    right: int


def chosen_strategy(strategy: str, height: int, width: int, side: int, centre_only: bool) -> str:
    """The strategy `auto` stands for with this photo and model, or `strategy` itself."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if centre_only and strategy == "crop":
        raise ConfigError(
            "a Context Encoder trained in the centre setting fills the centre of the image "
            "only: use --strategy full or resize"
        )
    if strategy != "auto":
        return strategy
    if centre_only or max(height, width) <= MAX_WINDOW_FACTOR * side:
        return "full"
    return "crop"


def filled_by(strategy: str, fill: Fill, image: Tensor, mask: Tensor, side: int) -> Tensor:
    """`fill` applied to `image` the way `strategy` (crop, resize or full) says."""
    if strategy == "crop":
        return cropped_fill(fill, image, mask, side)
    if strategy == "resize":
        return resized_fill(fill, image, mask, side)
    return fill(image, mask)


def resized_fill(fill: Fill, image: Tensor, mask: Tensor, side: int) -> Tensor:
    """Fill `image` shrunk to a longer side of `side` (not enlarged), the fill brought back
    to the image's size in its holes."""
    height, width = image.shape[-2:]
    scale = side / max(height, width)
    if scale >= 1:
        return fill(image, mask)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    small = fill(resize_image(image, size), resize_mask(mask, size))
    filled = F.interpolate(small, size=(height, width), mode="bilinear")
    return composite(filled, image, mask)


def cropped_fill(fill: Fill, image: Tensor, mask: Tensor, side: int) -> Tensor:
    """Fill each window around a group of holes (see the module docstring), image by image;
    a window pastes back its own group's holes only, so overlapping windows never fill one
    pixel twice."""
    result = image.clone()
    for index in range(image.shape[0]):
        holes = mask[index, 0].bool()
        groups, windows = hole_windows(holes, side)
        for group, window in windows:
            rows, cols = slice(window.top, window.bottom), slice(window.left, window.right)
            part = image[index : index + 1, :, rows, cols]
            filled = resized_fill(
                fill, part, mask[index : index + 1, :, rows, cols], side * MAX_WINDOW_FACTOR
            )
            own = holes[rows, cols] & (groups[rows, cols] == group)
            target = result[index, :, rows, cols]
            result[index, :, rows, cols] = torch.where(own, filled[0], target)
    return result


def hole_windows(holes: Tensor, side: int) -> tuple[Tensor, list[tuple[int, Window]]]:
    """The group of each pixel (an H x W map of labels, 0 outside the groups' cells) and a
    window, with context, around each group of holes of an H x W map."""
    height, width = holes.shape
    cell = max(1, side // CELLS_PER_SIDE)
    grid = F.max_pool2d(holes[None, None].float(), cell, ceil_mode=True)[0, 0].bool()
    labels = group_labels(grid)
    windows = [(label, grown(box, side, cell, height, width)) for label, box in boxes_of(labels)]
    pixels = labels.repeat_interleave(cell, 0).repeat_interleave(cell, 1)[:height, :width]
    return pixels, windows


def group_labels(grid: Tensor) -> Tensor:
    """A label for each 8-connected group of True cells (0 elsewhere), the same in a group."""
    numbers = torch.arange(1, grid.numel() + 1, device=grid.device).view(grid.shape)
    labels = torch.where(grid, numbers, 0).float()[None, None]
    # every cell takes the largest label of its group
    return spread_within(labels, grid[None, None].float())[0, 0].long()


def boxes_of(labels: Tensor) -> list[tuple[int, Window]]:
    """Each label and the bounding box (in cells) of its cells."""
    boxes = []
    for label in labels[labels > 0].unique().tolist():
        rows, cols = (labels == label).nonzero(as_tuple=True)
        top, left, bottom, right = rows.min(), cols.min(), rows.max() + 1, cols.max() + 1
        boxes.append((label, Window(int(top), int(left), int(bottom), int(right))))
    return boxes


def grown(box: Window, side: int, cell: int, height: int, width: int) -> Window:
    """A grid box in pixels, grown by half the training size on every side and to at least
    the training size, kept inside the image."""
    margin = side // 2
    top, bottom = _grown_span(box.top * cell - margin, box.bottom * cell + margin, side, height)
    left, right = _grown_span(box.left * cell - margin, box.right * cell + margin, side, width)
    return Window(top, left, bottom, right)


def _grown_span(start: int, stop: int, least: int, limit: int) -> tuple[int, int]:
    """[start, stop) widened to `least` about its centre, then moved inside [0, limit)."""
    missing = max(0, least - (stop - start))
    start, stop = start - missing // 2, stop + missing - missing // 2
    if start < 0:
        start, stop = 0, stop - start
    if stop > limit:
        start, stop = start - (stop - limit), limit
    return max(0, start), min(limit, stop)
