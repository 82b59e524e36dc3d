"""A structural-similarity term for the generators' losses (an extension, not in the papers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from inpaintlab.metrics.image import SSIM_BORDER, SSIM_SIGMA
from inpaintlab.ops.precision import full_precision

C1 = 0.01**2  # (K1 * data range)^2 with K1 = 0.01 and data range 1
C2 = 0.03**2


def gaussian_window(sigma: float = SSIM_SIGMA, radius: int = SSIM_BORDER) -> Tensor:
    """The normalised 1-D Gaussian of 2 * radius + 1 taps that SSIM smooths with."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    window = torch.exp(-(offsets**2) / (2 * sigma**2))
    return window / window.sum()


def _smooth(maps: Tensor, window: Tensor) -> Tensor:
    """Each channel of `maps` blurred by `window` along both axes, without padding."""
    channels = maps.shape[1]
    rows = window.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    maps = F.conv2d(maps, rows, groups=channels)
    return F.conv2d(maps, rows.transpose(2, 3), groups=channels)


@full_precision
def ssim_map(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM at every window position inside the image (images in [0, 1]); B x C x H-10 x W-10.

    Separable Gaussian blurs of the five moments, so training pays a fraction of the
    metric's cost; its mean over an image equals `metrics.image.ssim_per_image`.
    """
    window = gaussian_window().to(pred.device)
    moments = _smooth(
        torch.cat([pred, target, pred * pred, target * target, pred * target], 1), window
    )
    mu_p, mu_t, pp, tt, pt = moments.chunk(5, dim=1)
    var_p, var_t, cov = pp - mu_p**2, tt - mu_t**2, pt - mu_p * mu_t
    luminance = (2 * mu_p * mu_t + C1) / (mu_p**2 + mu_t**2 + C1)
    return luminance * (2 * cov + C2) / (var_p + var_t + C2)


def structural_loss(output: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """1 - the mean SSIM of the composites (output in the holes, target elsewhere).

    The SSIM the evaluation scores (Gaussian window 11, sigma 1.5, fp32 under autocast), so
    the term rewards what the per-bin SSIM counts: local contrast and structure carried
    across the hole's border, which an absolute error leaves to chance.

    Example:
        >>> image = torch.rand(1, 3, 16, 16)
        >>> structural_loss(image.flip(-1), image, torch.zeros(1, 1, 16, 16))
        tensor(0.)
    """
    composite = output * mask + target * (1 - mask)
    return 1 - ssim_map(composite, target).mean()
