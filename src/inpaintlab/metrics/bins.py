"""Hole-ratio bins used by every reported metric: 0-10 %, ..., 50-60 %, and 60 % and above."""

import torch
from torch import Tensor

BIN_EDGES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0)
BIN_NAMES = ("0-10", "10-20", "20-30", "30-40", "40-50", "50-60", "60+")


def bin_index(ratio: Tensor) -> Tensor:
    """Bin of each hole ratio: bins are [lo, hi) except the last, which includes 1.0."""
    inner_edges = torch.tensor(BIN_EDGES[1:-1], dtype=ratio.dtype, device=ratio.device)
    return torch.bucketize(ratio, inner_edges, right=True)
