"""On-device training augmentation in plain torch: one warp per batch, no host synchronisation.

Rotation and random resized crop are composed into one affine map per image and resampled in
a single `grid_sample` pass; the horizontal flip moves pixels exactly; colour jitter scales
brightness, contrast and saturation and rotates the hue. Every random draw is a tensor on the
batch's device (torch's global generator there), so nothing waits for the device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from kornia.color import hsv_to_rgb, rgb_to_grayscale, rgb_to_hsv
from torch import Tensor, nn

from inpaintlab.ops.precision import full_precision


def _uniform(low: float, high: float, size: int, like: Tensor) -> Tensor:
    """`size` draws from U(low, high) on `like`'s device, fp32."""
    return torch.rand(size, device=like.device) * (high - low) + low


def _chosen(probability: float, size: int, like: Tensor) -> Tensor:
    """True for each of `size` samples with `probability`, on `like`'s device."""
    return torch.rand(size, device=like.device) < probability


class Augmentation(nn.Module):
    """Random rotation, resized crop, horizontal flip and colour jitter of a B x C x H x W batch.

    Each transform is applied to a sample with its probability (0 switches it off). A resized
    crop covers a fraction `crop_scale` of the image's area with a width-to-height ratio in
    `crop_ratio` (log-uniform, shrunk to fit the image) and is resampled bilinearly to the
    input's size; a rotation turns the image about its centre by up to `rotation_degrees`,
    reflecting it at the borders instead of leaving black corners. For C = 1 colour jitter
    changes brightness and contrast only. Masks are drawn after augmentation (the datamodule),
    so only images pass through here.

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

    @full_precision
    def forward(self, image: Tensor) -> Tensor:
        """The augmented batch (the input itself when every transform is off); fp32 with
        autocast off."""
        if self.rotation_p > 0 or self.crop_p > 0:
            image = self._warped(image)
        if self.flip_p > 0:
            flip = _chosen(self.flip_p, image.shape[0], image).view(-1, 1, 1, 1)
            image = torch.where(flip, image.flip(-1), image)
        if self.jitter_p > 0:
            image = self._jittered(image)
        return image

    def _warped(self, image: Tensor) -> Tensor:
        """Rotation and resized crop as one bilinear resampling (reflection at the borders)."""
        batch, _, height, width = image.shape
        theta = self._crop_matrix(batch, height, width, image)
        if self.rotation_p > 0:
            theta = self._rotation_matrix(batch, height, width, image) @ theta
        grid = F.affine_grid(theta[:, :2], list(image.shape), align_corners=False)
        return F.grid_sample(
            image, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )

    def _crop_matrix(self, batch: int, height: int, width: int, like: Tensor) -> Tensor:
        """B x 3 x 3 maps from output to input coordinates (-1..1) of the random crops;
        the identity for images the crop does not pick."""
        area = _uniform(*self.crop_scale, batch, like)
        log_ratio = _uniform(
            math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]), batch, like
        )
        ratio = log_ratio.exp()
        # crop sides as fractions of the image's: w h = area, (w W) / (h H) = ratio
        crop_w = (area * ratio * height / width).sqrt().clamp(max=1.0)
        crop_h = (area / ratio * width / height).sqrt().clamp(max=1.0)
        centre_x = (torch.rand(batch, device=like.device) * 2 - 1) * (1 - crop_w)
        centre_y = (torch.rand(batch, device=like.device) * 2 - 1) * (1 - crop_h)
        picked = _chosen(self.crop_p, batch, like)
        theta = torch.eye(3, device=like.device).repeat(batch, 1, 1)
        theta[:, 0, 0] = torch.where(picked, crop_w, 1.0)
        theta[:, 1, 1] = torch.where(picked, crop_h, 1.0)
        theta[:, 0, 2] = torch.where(picked, centre_x, 0.0)
        theta[:, 1, 2] = torch.where(picked, centre_y, 0.0)
        return theta

    def _rotation_matrix(self, batch: int, height: int, width: int, like: Tensor) -> Tensor:
        """B x 3 x 3 rotations about the image centre in -1..1 coordinates (a rotation in pixels,
        so non-square images are not sheared); angle 0 for images rotation does not pick."""
        degrees = _uniform(-self.rotation_degrees, self.rotation_degrees, batch, like)
        angle = torch.where(_chosen(self.rotation_p, batch, like), degrees.deg2rad(), 0.0)
        cos, sin = angle.cos(), angle.sin()
        theta = torch.eye(3, device=like.device).repeat(batch, 1, 1)
        theta[:, 0, 0], theta[:, 1, 1] = cos, cos
        theta[:, 0, 1] = -sin * height / width
        theta[:, 1, 0] = sin * width / height
        return theta

    def _jittered(self, image: Tensor) -> Tensor:
        """Brightness, contrast, saturation and hue changes, in that order, each by a random
        factor per image, for the images jitter picks; the result is clipped to [0, 1]."""
        batch, channels = image.shape[:2]
        out = image * _uniform(1 - self.brightness, 1 + self.brightness, batch, image).view(
            -1, 1, 1, 1
        )
        out = out.clamp(0, 1)
        grey_mean = _grey(out).mean((1, 2, 3), keepdim=True)
        contrast = _uniform(1 - self.contrast, 1 + self.contrast, batch, image).view(-1, 1, 1, 1)
        out = ((out - grey_mean) * contrast + grey_mean).clamp(0, 1)
        if channels == 3:
            out = self._coloured(out, batch)
        picked = _chosen(self.jitter_p, batch, image).view(-1, 1, 1, 1)
        return torch.where(picked, out, image)

    def _coloured(self, rgb: Tensor, batch: int) -> Tensor:
        """Saturation blended towards grey or away from it, then the hue turned."""
        saturation = _uniform(1 - self.saturation, 1 + self.saturation, batch, rgb)
        grey = _grey(rgb)
        rgb = ((rgb - grey) * saturation.view(-1, 1, 1, 1) + grey).clamp(0, 1)
        hue_turn = _uniform(-self.hue, self.hue, batch, rgb).view(-1, 1, 1) * 2 * math.pi
        hsv = rgb_to_hsv(rgb)
        hue = torch.remainder(hsv[:, 0] + hue_turn, 2 * math.pi)
        return hsv_to_rgb(torch.cat([hue.unsqueeze(1), hsv[:, 1:]], 1)).clamp(0, 1)


def _grey(image: Tensor) -> Tensor:
    """B x 1 x H x W luminance (the image itself when it has one channel)."""
    return image if image.shape[1] == 1 else rgb_to_grayscale(image)
