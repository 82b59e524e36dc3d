"""Total variation of an image, optionally restricted to a region such as dilated holes."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from inpaintlab.ops.precision import full_precision


@full_precision
def total_variation(image: Tensor, region: Tensor | None = None) -> Tensor:
    """Partial Convolution's L_tv: sum of |differences| of adjacent pixels over B*C*H*W.

    Horizontal and vertical neighbour pairs both count; with `region` (B x 1 x H x W, 1 =
    included) only pairs whose two pixels lie in the region do. Like the paper's other L1 terms
    the sum is divided by the image's element count, not by the number of pairs, so the gradient
    per pixel does not grow as the region shrinks, and an empty region gives 0. Without a region
    this is close to mean |dx| + mean |dy|, the whole-image variant of some ports. Computed in
    fp32 with autocast off.

    Example:
        >>> import torch
        >>> total_variation(torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]]))
        tensor(0.5000)
    """
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs()
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs()
    if region is not None:
        dx = dx * (region[..., :, 1:] * region[..., :, :-1])
        dy = dy * (region[..., 1:, :] * region[..., :-1, :])
    return (dx.sum() + dy.sum()) / image.numel()


def dilate_holes(mask: Tensor, pixels: int = 1) -> Tensor:
    """Grow the holes (1s) of a B x 1 x H x W mask by `pixels` in every direction, diagonals too.

    Example:
        >>> import torch
        >>> mask = torch.zeros(1, 1, 3, 3)
        >>> mask[..., 1, 1] = 1
        >>> int(dilate_holes(mask).sum())
        9
    """
    if pixels < 0:
        raise ValueError(f"pixels must be >= 0, got {pixels}")
    return F.max_pool2d(mask, kernel_size=2 * pixels + 1, stride=1, padding=pixels)
