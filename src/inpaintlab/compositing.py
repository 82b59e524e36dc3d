"""The one compositing rule: predicted pixels inside the holes, known pixels everywhere else."""

import torch
from torch import Tensor


def composite(pred: Tensor, image: Tensor, mask: Tensor) -> Tensor:
    """Keep known pixels exactly and take the prediction inside the hole (mask 1 = hole)."""
    return torch.where(mask.bool(), pred.to(image.dtype), image)
