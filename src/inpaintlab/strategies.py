"""How a photo of any size meets a model trained at one size: the inference strategies.

- "full": the model sees the whole photo at its own resolution (fully convolutional models;
  a model of one fixed size, the Context Encoder, sees it resized to that size).
- "resize": the photo is shrunk so that its longer side is the training size, filled there,
  and the fill enlarged back into the holes.
- "crop": each group of nearby holes gets a window of the photo around it, at least the
  training size and with half of it as context on every side; the window is filled at the
  photo's resolution (shrunk to `MAX_WINDOW_FACTOR` times the training size when the group is
  larger) and only its holes are pasted back. Time and memory then grow with the area of the
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

STRATEGIES = ("auto", "crop", "resize", "full")
MAX_WINDOW_FACTOR = 4  # a window's longer side, in training sizes, before it is shrunk
CELLS_PER_SIDE = 4  # holes are grouped on a grid of (training size / this) pixel cells

Fill = Callable[[Tensor, Tensor], Tensor]  # (image, mask) -> composite, at the input's size


class Window(NamedTuple):
    top: int
    left: int
    bottom: int
    right: int

    def overlaps(self, other: Window) -> bool:
        return (
            self.top < other.bottom
            and other.top < self.bottom
            and self.left < other.right
            and other.left < self.right
        )

    def union(self, other: Window) -> Window:
        return Window(
            min(self.top, other.top),
            min(self.left, other.left),
            max(self.bottom, other.bottom),
            max(self.right, other.right),
        )


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
    small_image = F.interpolate(image, size=size, mode="bilinear", antialias=True)
    small_mask = F.adaptive_max_pool2d(mask, size)  # a coarse pixel with any hole is a hole
    filled = F.interpolate(fill(small_image, small_mask), size=(height, width), mode="bilinear")
    return torch.where(mask.bool(), filled, image)


def cropped_fill(fill: Fill, image: Tensor, mask: Tensor, side: int) -> Tensor:
    """Fill each window around a group of holes (see the module docstring), image by image."""
    result = image.clone()
    for index in range(image.shape[0]):
        for window in hole_windows(mask[index, 0].bool(), side):
            rows, cols = slice(window.top, window.bottom), slice(window.left, window.right)
            part = image[index : index + 1, :, rows, cols]
            holes = mask[index : index + 1, :, rows, cols]
            filled = resized_fill(fill, part, holes, MAX_WINDOW_FACTOR * side)
            result[index : index + 1, :, rows, cols] = torch.where(holes.bool(), filled, part)
    return result


def hole_windows(holes: Tensor, side: int) -> list[Window]:
    """Windows (no two overlapping) that hold every hole of an H x W map with context."""
    height, width = holes.shape
    cell = max(1, side // CELLS_PER_SIDE)
    grid = F.max_pool2d(holes[None, None].float(), cell, ceil_mode=True)[0, 0].bool()
    windows = [grown(box, side, cell, height, width) for box in component_boxes(grid)]
    return merged(windows)


def component_boxes(grid: Tensor) -> list[Window]:
    """The bounding boxes (in grid cells) of the 8-connected groups of True cells."""
    if not grid.any():
        return []
    count = grid.numel()
    numbers = torch.arange(1, count + 1, device=grid.device).view(grid.shape)
    labels = torch.where(grid, numbers, 0)
    labels = labels.float()[None, None]
    inside = grid[None, None]
    while True:  # every cell takes the largest label of its group, one neighbour per pass
        spread = torch.where(inside, F.max_pool2d(labels, 3, stride=1, padding=1), 0.0)
        if torch.equal(spread, labels):
            break
        labels = spread
    labels = labels[0, 0].long()
    boxes = []
    for label in labels[grid].unique().tolist():
        rows, cols = (labels == label).nonzero(as_tuple=True)
        top, left, bottom, right = rows.min(), cols.min(), rows.max() + 1, cols.max() + 1
        boxes.append(Window(int(top), int(left), int(bottom), int(right)))
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


def merged(windows: list[Window]) -> list[Window]:
    """Overlapping windows joined until none overlap (each hole then has one window)."""
    windows = list(windows)
    joined = True
    while joined:
        joined = False
        for i in range(len(windows)):
            for j in range(i + 1, len(windows)):
                if windows[i].overlaps(windows[j]):
                    windows[i] = windows[i].union(windows.pop(j))
                    joined = True
                    break
            if joined:
                break
    return windows
