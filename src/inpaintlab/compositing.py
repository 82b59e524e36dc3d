"""How predictions meet images: the one compositing rule (predicted pixels inside the holes,
known pixels everywhere else) and padding to the side multiple a network needs."""

import torch
import torch.nn.functional as F
from torch import Tensor


def composite(pred: Tensor, image: Tensor, mask: Tensor) -> Tensor:
    """Keep known pixels exactly and take the prediction inside the hole (mask 1 = hole)."""
    return torch.where(mask.bool(), pred.to(image.dtype), image)


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
