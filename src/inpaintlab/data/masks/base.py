"""Mask generator base class: device handling, hole-ratio bounds and shared sampling helpers.

Every generator returns float32 masks of shape B x 1 x H x W with values exactly 0. or 1.,
where 1 marks a hole. All randomness is drawn from the ``torch.Generator`` passed to the call
(on the same device as the masks), so a seed fixes the masks.

Hole-ratio bounds: every generator accepts ``min_ratio``, ``max_ratio`` and ``max_tries``.
Samples whose hole ratio falls outside ``[min_ratio, max_ratio]`` are redrawn, up to
``max_tries`` rounds. Samples still out of bounds after that are replaced by a single
axis-aligned box at a random position holding exactly the number of hole pixels nearest to
the sample's own ratio inside the bounds, so every returned mask satisfies the bounds.
Checking the bounds needs one host synchronisation per round; with the default bounds
(0, 1) no check is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from inpaintlab.errors import ConfigError, require_numbers

Device = torch.device | str | None


def hole_ratio(mask: Tensor) -> Tensor:
    """Fraction of hole pixels of each mask in a B x 1 x H x W batch (shape B)."""
    return mask.flatten(1).float().mean(dim=1)


def as_range(
    value: Sequence[float] | float, name: str, minimum: float = 0.0, integer: bool = False
) -> tuple[float, float]:
    """Validate a `[low, high]` config range (a single number means low == high)."""
    pair = (value, value) if isinstance(value, int | float) else tuple(value)
    cast = int if integer else float
    if (
        len(pair) != 2
        or not minimum <= pair[0] <= pair[1]
        or (integer and pair != tuple(map(int, pair)))
    ):
        kind = "whole numbers" if integer else "numbers"
        raise ConfigError(
            f"{name} must be [low, high], {kind} with {minimum} <= low <= high, got {value}"
        )
    return cast(pair[0]), cast(pair[1])


def uniform(low: float, high: float, shape: tuple[int, ...], generator, device) -> Tensor:
    """Uniform samples in [low, high) drawn from `generator`."""
    return low + (high - low) * torch.rand(shape, generator=generator, device=device)


def randint(low: int, high: int, shape: tuple[int, ...], generator, device) -> Tensor:
    """Integer samples in [low, high] inclusive drawn from `generator`."""
    return torch.randint(low, high + 1, shape, generator=generator, device=device)


def area_boxes(counts: Tensor, height: int, width: int, generator, device) -> Tensor:
    """Boxes at random positions with exactly `counts[i]` hole pixels (last row may be partial)."""
    counts = counts.long()
    box_w = torch.ceil(torch.sqrt(counts.double() * width / height)).long().clamp(1, width)
    box_h = (counts + box_w - 1) // box_w
    top = (
        torch.rand(counts.shape, generator=generator, device=device) * (height - box_h + 1)
    ).long()
    left = (
        torch.rand(counts.shape, generator=generator, device=device) * (width - box_w + 1)
    ).long()
    ys = torch.arange(height, device=device).view(1, -1, 1) - top.view(-1, 1, 1)
    xs = torch.arange(width, device=device).view(1, 1, -1) - left.view(-1, 1, 1)
    width_b = box_w.view(-1, 1, 1)
    inside = (xs >= 0) & (xs < width_b) & (ys >= 0) & (ys * width_b + xs < counts.view(-1, 1, 1))
    return inside.unsqueeze(1).float()


class MaskGenerator:
    """Base class: subclasses implement `_sample`; `__call__` adds device and ratio bounds."""

    def __init__(self, min_ratio: float = 0.0, max_ratio: float = 1.0, max_tries: int = 10):
        require_numbers(float, **{"mask.min_ratio": min_ratio, "mask.max_ratio": max_ratio})
        require_numbers(int, **{"mask.max_tries": max_tries})
        if not 0.0 <= min_ratio <= max_ratio <= 1.0:
            raise ConfigError(
                f"mask ratio bounds need 0 <= min_ratio <= max_ratio <= 1, "
                f"got min_ratio={min_ratio}, max_ratio={max_ratio}"
            )
        if max_tries < 0:
            raise ConfigError(f"max_tries must be >= 0, got {max_tries}")
        self.min_ratio = float(min_ratio)
        self.max_ratio = float(max_ratio)
        self.max_tries = int(max_tries)

    def __call__(
        self,
        batch_size: int,
        height: int,
        width: int,
        *,
        generator: torch.Generator | None = None,
        device: Device = None,
    ) -> Tensor:
        """Draw `batch_size` masks of `height` x `width` (float32 B x 1 x H x W, 1 = hole)."""
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        device = torch.device(device)
        masks = self._sample(batch_size, height, width, generator, device)
        if self.min_ratio > 0.0 or self.max_ratio < 1.0:
            masks = self._enforce_bounds(masks, generator)
        return masks

    def _sample(
        self, batch_size: int, height: int, width: int, generator, device: torch.device
    ) -> Tensor:
        """Draw masks without ratio bounds; subclasses implement this."""
        raise NotImplementedError

    def _count_bounds(self, height: int, width: int) -> tuple[int, int]:
        """Allowed hole-pixel counts for an image of `height` x `width`."""
        pixels = height * width
        low = math.ceil(self.min_ratio * pixels - 1e-6)
        high = math.floor(self.max_ratio * pixels + 1e-6)
        if low > high:
            raise ConfigError(
                f"no {height}x{width} mask has a hole ratio in "
                f"[{self.min_ratio}, {self.max_ratio}]; widen min_ratio/max_ratio"
            )
        return low, high

    def _enforce_bounds(self, masks: Tensor, generator) -> Tensor:
        """Redraw out-of-bounds samples, then fall back to exact-area boxes."""
        batch, _, height, width = masks.shape
        low, high = self._count_bounds(height, width)
        for _ in range(self.max_tries):
            bad = self._out_of_bounds(masks, low, high)
            if bad.numel() == 0:
                return masks
            masks[bad] = self._sample(bad.numel(), height, width, generator, masks.device)
        bad = self._out_of_bounds(masks, low, high)
        if bad.numel() > 0:
            counts = masks[bad].flatten(1).sum(1).clamp(low, high)
            masks[bad] = area_boxes(counts, height, width, generator, masks.device)
        return masks

    @staticmethod
    def _out_of_bounds(masks: Tensor, low: int, high: int) -> Tensor:
        """Indices of masks whose hole-pixel count is outside [low, high]."""
        counts = masks.flatten(1).sum(1)
        return ((counts < low) | (counts > high)).nonzero().squeeze(1)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
