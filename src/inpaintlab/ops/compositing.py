"""How predictions meet images: the one compositing rule (predicted pixels inside the holes,
known pixels everywhere else), padding to the side multiple a network needs, and resizing an
image and its mask to the size a model works at."""

import torch
import torch.nn.functional as F
from torch import Tensor


def composite(pred: Tensor, image: Tensor, mask: Tensor) -> Tensor:
    """Keep known pixels exactly and take the prediction inside the hole (mask 1 = hole)."""
    return torch.where(mask.bool(), pred.to(image.dtype), image)


def holes_outside(mask: Tensor, box: tuple[int, int, int]) -> bool:
    """Whether `mask` (1 = hole) has a hole outside the square `box` (top, left, side)."""
    top, left, side = box
    outside = mask != 0  # a new tensor, whatever the mask's dtype
    outside[..., top : top + side, left : left + side] = False
    return bool(outside.any())


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Reflection-pad the bottom and right of `x` so its sides are multiples of `multiple`,
    reflecting again where a side is shorter than its padding (a 1 px side is repeated)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    while pad_h or pad_w:
        step_h, step_w = min(pad_h, x.shape[-2] - 1), min(pad_w, x.shape[-1] - 1)
        if not (step_h or step_w):
            return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h, pad_w = pad_h - step_h, pad_w - step_w
    return x


def resize_image(image: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bilinear (antialiased when shrinking) resize to `size` (a side, or height and width);
    a no-op at that size."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(image, size=size, mode="bilinear", antialias=True)


def resize_mask(mask: Tensor, size: int | tuple[int, int]) -> Tensor:
    """The mask at `size`: a pixel is a hole if any full-size pixel under it is one.

    Example:
        >>> resize_mask(torch.tensor([[[[0.0, 0.0, 1.0, 0.0, 0.0]]]]), (1, 2))
        tensor([[[[1., 1.]]]])
    """
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    return _window_max(_window_max(mask, 2, height), 3, width)


def _window_max(x: Tensor, dim: int, size: int) -> Tensor:
    """adaptive_max_pool2d along dimension `dim` of `x` (2 or 3) to `size`: output i is the
    maximum of inputs floor(i n / size) to ceil((i + 1) n / size) - 1, gathered by index
    (ONNX has no adaptive max pooling for sizes that do not divide)."""
    length = x.shape[dim]
    starts = [i * length // size for i in range(size)]
    ends = [-(-(i + 1) * length // size) for i in range(size)]
    width = max(end - start for start, end in zip(starts, ends, strict=True))
    index = [
        min(start + k, end - 1)
        for start, end in zip(starts, ends, strict=True)
        for k in range(width)
    ]
    picked = x.index_select(dim, torch.tensor(index, device=x.device))
    return picked.unflatten(dim, (size, width)).amax(dim + 1)
