"""Edge precision and recall, with EdgeConnect's convention for maps without edges; edge maps
are thresholded in fp32 with autocast off."""

import torch
from torch import Tensor
from torchmetrics import Metric

from inpaintlab.ops.precision import full_precision

EPS = 1e-8


@full_precision
def edge_counts(
    pred: Tensor, true: Tensor, region: Tensor | None = None, threshold: float = 0.5
) -> Tensor:
    """Integer counts (true positives, predicted, actual) over `region` (1 = counted)."""
    predicted = pred.detach() > threshold
    actual = true.detach() > threshold
    if region is not None:
        counted = region.detach() > 0.5
        predicted, actual = predicted & counted, actual & counted
    return torch.stack([(predicted & actual).sum(), predicted.sum(), actual.sum()])


def precision_recall(counts: Tensor) -> tuple[Tensor, Tensor]:
    """Precision and recall from summed counts; both 1 when there are no edges at all."""
    true_pos, predicted, actual = counts.float()
    no_edges = (predicted == 0) & (actual == 0)
    precision = torch.where(no_edges, 1.0, true_pos / (predicted + EPS))
    recall = torch.where(no_edges, 1.0, true_pos / (actual + EPS))
    return precision, recall


def edge_precision_recall(
    pred: Tensor, true: Tensor, region: Tensor | None = None, threshold: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Precision and recall of edge maps `pred` against `true`, both binarised at `threshold`."""
    return precision_recall(edge_counts(pred, true, region, threshold))


class EdgeAccuracy(Metric):
    """Edge precision and recall pooled over all updates (and processes under DDP).

    EdgeConnect evaluates inside the holes: pass the hole mask as `region`. `compute()`
    returns {"edge_precision": ..., "edge_recall": ...}. Counts are kept as integers, so they
    stay exact past float32's 2**24 pixels.
    """

    full_state_update = False

    def __init__(self, threshold: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        self.add_state("counts", default=torch.zeros(3, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred_edges: Tensor, true_edges: Tensor, region: Tensor | None = None) -> None:
        """Add a batch of predicted and true B x 1 x H x W edge maps."""
        self.counts += edge_counts(pred_edges, true_edges, region, self.threshold)

    def compute(self) -> dict[str, Tensor]:
        """Pooled precision and recall."""
        precision, recall = precision_recall(self.counts)
        return {"edge_precision": precision, "edge_recall": recall}
