"""Masks read from a folder of images (e.g. the NVIDIA irregular mask set), with augmentation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from inpaintlab.data.io import image_suffixes_text, is_image_file
from inpaintlab.data.masks.base import MaskGenerator, as_range, randint
from inpaintlab.errors import ConfigError, DataError


def _read_mask(path: Path, white_is_hole: bool, threshold: float) -> np.ndarray:
    """Read one mask image as a bool array, True = hole."""
    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as err:
        reason = str(err).replace("\n", " ")
        raise DataError(f"cannot read mask file {path} ({reason}); fix or remove it") from err
    white = grey > threshold
    return white if white_is_hole else ~white


def _resize_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a bool mask to height x width."""
    if mask.shape == (height, width):
        return mask
    image = Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.NEAREST)
    return np.asarray(image) > 127


class FolderMask(MaskGenerator):
    """Random masks from the images under `root` (recursive png/jpg/jpeg/bmp/webp).

    Every file is read once at construction and binarised: with `hole="white"` pixels brighter
    than `threshold` (in [0, 1]) are holes, with `hole="black"` the darker ones. The first
    call at a given H x W resizes all masks with nearest neighbour and keeps them on the
    device. Each draw picks a mask uniformly, then optionally flips it (`flip`: horizontal
    and vertical, each with probability 1/2), rotates it by a random multiple of 90 degrees
    (`rotate`) plus U(-max_angle, max_angle) degrees, and dilates its holes by a random
    whole number of pixels in `dilate` (square 3x3 steps). Rotating a non-square mask by
    90 degrees crops it to the frame; uncovered pixels are known.
    """

    def __init__(
        self,
        root: str | Path,
        hole: str = "white",
        flip: bool = True,
        rotate: bool = True,
        max_angle: float = 0.0,
        dilate: Sequence[int] = (0, 0),
        threshold: float = 0.5,
        **bounds: Any,
    ):
        super().__init__(**bounds)
        if hole not in ("white", "black"):
            raise ConfigError(f"FolderMask.hole must be 'white' or 'black', got {hole!r}")
        self.root = Path(root)
        self.hole = hole
        self.flip = bool(flip)
        self.rotate = bool(rotate)
        self.max_angle = float(max_angle)
        self.dilate = as_range(dilate, "FolderMask.dilate", integer=True)
        self.threshold = float(threshold)
        files = self._list_files(self.root)
        self._masks = [_read_mask(path, hole == "white", self.threshold) for path in files]
        self._resized: dict[tuple[int, int, torch.device], Tensor] = {}

    def __len__(self) -> int:
        return len(self._masks)

    @staticmethod
    def _list_files(root: Path) -> list[Path]:
        """Sorted mask image files under `root`, with one-line errors for bad folders."""
        if not root.is_dir():
            raise DataError(
                f"mask folder {root} does not exist; set mask.root to a folder of masks"
            )
        files = sorted(p for p in root.rglob("*") if is_image_file(p))
        if not files:
            raise DataError(
                f"mask folder {root} holds no {image_suffixes_text()} files; add masks or fix "
                "mask.root"
            )
        return files

    def _stack(self, height: int, width: int, device: torch.device) -> Tensor:
        """All masks resized to height x width as an N x 1 x H x W bool tensor on `device`."""
        key = (height, width, device)
        if key not in self._resized:
            resized = np.stack([_resize_nearest(m, height, width) for m in self._masks])
            self._resized[key] = torch.from_numpy(resized).unsqueeze(1).to(device)
        return self._resized[key]

    def _sample(self, batch_size: int, height: int, width: int, generator, device) -> Tensor:
        stack = self._stack(height, width, device)
        pick = torch.randint(len(stack), (batch_size,), generator=generator, device=device)
        masks = stack[pick].float()
        if self.flip or self.rotate or self.max_angle > 0:
            masks = self._transform(masks, generator)
        if self.dilate[1] > 0:
            masks = self._dilate(masks, generator)
        return masks

    def _transform(self, masks: Tensor, generator) -> Tensor:
        """Random flips and rotations about the centre, nearest sampling, zeros outside."""
        batch, _, height, width = masks.shape
        device = masks.device
        angle = torch.zeros(batch, device=device)
        if self.rotate:
            quarter = torch.randint(4, (batch,), generator=generator, device=device)
            angle = angle + quarter * (math.pi / 2)
        if self.max_angle > 0:
            wobble = torch.rand(batch, generator=generator, device=device) * 2 - 1
            angle = angle + wobble * math.radians(self.max_angle)
        flips = torch.ones(batch, 2, device=device)
        if self.flip:
            coin = torch.rand(batch, 2, generator=generator, device=device) < 0.5
            flips = 1.0 - 2.0 * coin.float()
        cos, sin = angle.cos(), angle.sin()
        # Rotate in pixel units: convert normalised x/y with the aspect ratio.
        theta = torch.stack(
            [
                torch.stack([cos * flips[:, 0], -sin * flips[:, 1] * height / width], -1),
                torch.stack([sin * flips[:, 0] * width / height, cos * flips[:, 1]], -1),
            ],
            dim=1,
        )
        theta = torch.cat([theta, torch.zeros(batch, 2, 1, device=device)], dim=-1)
        grid = F.affine_grid(theta, list(masks.shape), align_corners=False)
        return F.grid_sample(masks, grid, mode="nearest", padding_mode="zeros", align_corners=False)

    def _dilate(self, masks: Tensor, generator) -> Tensor:
        """Grow each mask's holes by its own random number of 3x3 dilation steps."""
        steps = randint(*self.dilate, (masks.shape[0], 1, 1, 1), generator, masks.device)
        out, grown = masks, masks
        for k in range(1, self.dilate[1] + 1):
            grown = F.max_pool2d(grown, kernel_size=3, stride=1, padding=1)
            out = torch.where(steps >= k, grown, out)
        return out
