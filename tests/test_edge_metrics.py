"""Edge precision and recall against hand counts and EdgeConnect's conventions."""

import pytest
import torch

from inpaintlab.metrics.edges import EdgeAccuracy, edge_precision_recall

# 1 x 1 x 2 x 4 maps: predictions are soft, truth is binary
PRED = torch.tensor([[[[0.9, 0.6, 0.5, 0.1], [0.7, 0.2, 0.51, 0.0]]]])
TRUE = torch.tensor([[[[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]]]])
# predicted (> 0.5): (0,0) (0,1) (1,0) (1,2) -> 4; actual: (0,0) (0,2) (1,0) (1,1) (1,2) -> 5
# true positives: (0,0) (1,0) (1,2) -> 3


def values(metric: EdgeAccuracy) -> tuple[float, float]:
    result = metric.compute()
    return result["edge_precision"].item(), result["edge_recall"].item()


def test_functional_matches_hand_counts():
    precision, recall = edge_precision_recall(PRED, TRUE)
    assert precision.item() == pytest.approx(3 / 4)
    assert recall.item() == pytest.approx(3 / 5)


def test_metric_matches_hand_counts():
    metric = EdgeAccuracy()
    metric.update(PRED, TRUE)
    assert values(metric) == pytest.approx((3 / 4, 3 / 5))


def test_threshold_is_strict_and_configurable():
    at_half = torch.full((1, 1, 1, 2), 0.5)
    true = torch.ones(1, 1, 1, 2)
    assert edge_precision_recall(at_half, true)[1].item() == 0.0
    assert edge_precision_recall(at_half + 0.01, true)[1].item() == pytest.approx(1.0)
    metric = EdgeAccuracy(threshold=0.8)
    metric.update(PRED, TRUE)  # only 0.9 counts: 1 predicted, 1 true positive
    assert values(metric) == pytest.approx((1.0, 1 / 5))


def test_region_restricts_the_counts():
    region = torch.zeros_like(PRED)
    region[..., 1, :] = 1.0  # the second row only
    precision, recall = edge_precision_recall(PRED, TRUE, region)
    # row 1: predicted (1,0) (1,2); actual (1,0) (1,1) (1,2); true positives (1,0) (1,2)
    assert (precision.item(), recall.item()) == pytest.approx((1.0, 2 / 3))
    cropped = edge_precision_recall(PRED[..., 1:, :], TRUE[..., 1:, :])
    assert torch.allclose(torch.stack(cropped), torch.stack((precision, recall)))


def test_no_edges_anywhere_counts_as_perfect():
    empty = torch.zeros(2, 1, 4, 4)
    assert edge_precision_recall(empty, empty) == (torch.tensor(1.0), torch.tensor(1.0))
    metric = EdgeAccuracy()
    metric.update(empty, empty)
    assert values(metric) == (1.0, 1.0)


def test_edges_outside_the_region_do_not_count():
    region = torch.zeros_like(PRED)
    region[..., 0, 3] = 1.0  # a pixel with neither a predicted nor a true edge
    assert edge_precision_recall(PRED, TRUE, region) == (torch.tensor(1.0), torch.tensor(1.0))


def test_missing_or_spurious_edges_score_zero():
    empty = torch.zeros_like(TRUE)
    assert edge_precision_recall(empty, TRUE) == (torch.tensor(0.0), torch.tensor(0.0))
    assert edge_precision_recall(TRUE, empty) == (torch.tensor(0.0), torch.tensor(0.0))


def test_two_updates_equal_one_on_the_concatenation():
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(6, 1, 8, 8, generator=gen)
    true = (torch.rand(6, 1, 8, 8, generator=gen) > 0.7).float()
    region = (torch.rand(6, 1, 8, 8, generator=gen) > 0.4).float()
    split = EdgeAccuracy()
    split.update(pred[:2], true[:2], region[:2])
    split.update(pred[2:], true[2:], region[2:])
    whole = EdgeAccuracy()
    whole.update(pred, true, region)
    assert values(split) == values(whole)
    assert values(whole) == pytest.approx(
        [t.item() for t in edge_precision_recall(pred, true, region)]
    )


def test_pooling_is_over_pixels_not_a_mean_of_batch_scores():
    metric = EdgeAccuracy()
    metric.update(PRED, TRUE)  # 3 / 4 precision
    metric.update(torch.ones(1, 1, 1, 4), torch.zeros(1, 1, 1, 4))  # 0 / 4 precision
    assert values(metric)[0] == pytest.approx(3 / 8)
    metric.reset()
    metric.update(PRED, TRUE)
    assert values(metric) == pytest.approx((3 / 4, 3 / 5))
