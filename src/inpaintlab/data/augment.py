"""On-device training augmentation with Kornia: geometric transforms shared by image and mask."""

from __future__ import annotations

from collections.abc import Sequence

import kornia.augmentation as K
import torch
from torch import nn

from inpaintlab.precision import full_precision


class Augmentation(nn.Module):
    """Random rotation, resized crop, horizontal flip and colour jitter of a B x C x H x W batch.

    Each transform is applied to a sample with its probability (0 switches it off). The
    geometric ones move a mask given alongside exactly as the image (nearest resampling, so it
    stays binary); colour jitter touches the image only, and for C = 1 changes brightness and
    contrast only. The output has the input's size. Rotation reflects the image at its borders
    instead of filling corners with black.

    Example:
        >>> augment = Augmentation(flip_p=1.0, crop_p=0.0)
        >>> image = torch.rand(2, 3, 8, 8)
        >>> torch.equal(augment(image), image.flip(-1))
        True
    """

    def __init__(
        self,
        crop_p: float = 1.0,
        crop_scale: Sequence[float] = (0.6, 1.0),
        crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        rotation_p: float = 0.0,
        rotation_degrees: float = 10.0,
        jitter_p: float = 0.0,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
        hue: float = 0.02,
    ):
        super().__init__()
        self.crop_p = crop_p
        self.crop_scale = tuple(crop_scale)
        self.crop_ratio = tuple(crop_ratio)
        self.flip_p = flip_p
        self.rotation_p = rotation_p
        self.rotation_degrees = rotation_degrees
        self.jitter_p = jitter_p
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.hue = hue
        # built on first use for each (channels, height, width): the crop needs the output size
        self._pipelines: dict[tuple[int, int, int], K.AugmentationSequential | None] = {}

    def _build(self, channels: int, height: int, width: int) -> K.AugmentationSequential | None:
        """The Kornia pipeline for one input shape, or None when every transform is off."""
        steps: list[nn.Module] = []
        if self.rotation_p > 0:
            steps.append(
                K.RandomAffine(self.rotation_degrees, padding_mode="reflection", p=self.rotation_p)
            )
        if self.crop_p > 0:
            steps.append(
                K.RandomResizedCrop(
                    (height, width), scale=self.crop_scale, ratio=self.crop_ratio, p=self.crop_p
                )
            )
        if self.flip_p > 0:
            steps.append(K.RandomHorizontalFlip(p=self.flip_p))
        if self.jitter_p > 0:
            colour = channels == 3  # saturation and hue need RGB
            steps.append(
                K.ColorJitter(
                    self.brightness,
                    self.contrast,
                    self.saturation if colour else 0.0,
                    self.hue if colour else 0.0,
                    p=self.jitter_p,
                )
            )
        return K.AugmentationSequential(*steps) if steps else None

    @full_precision
    def forward(
        self, image: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Augment `image` (and `mask` with the same geometry); return what was given. The
        warps and colour changes run in fp32 with autocast off."""
        key = tuple(image.shape[1:])
        if key not in self._pipelines:
            self._pipelines[key] = self._build(*key)
        pipeline = self._pipelines[key]
        if pipeline is None:
            return image if mask is None else (image, mask)
        if mask is None:
            return pipeline(image)
        out_image, out_mask = pipeline(image, mask, data_keys=["input", "mask"])
        return out_image, out_mask
