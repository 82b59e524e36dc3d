"""EdgeConnect losses: feature matching and the inpainting loss against slow hand computations."""

from __future__ import annotations

import doctest
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlab.errors import ConfigError
from inpaintlab.losses import edgeconnect
from inpaintlab.losses.edgeconnect import EdgeConnectInpaintLoss, feature_matching_loss

PERCEPTUAL = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE = ("relu2_2", "relu3_4", "relu4_4", "relu5_2")
DECOYS = ("relu1_2", "relu3_2")  # returned by the stand-in, never to be used
B, C, S = 2, 3, 8


def loop_gram(features: Tensor) -> Tensor:
    """Gram matrices entry by entry, divided by C * H * W."""
    batch, channels, height, width = features.shape
    gram = torch.zeros(batch, channels, channels)
    for b, i, j in itertools.product(range(batch), range(channels), range(channels)):
        gram[b, i, j] = (features[b, i] * features[b, j]).sum() / (channels * height * width)
    return gram


def mean_l1(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).abs().sum() / a.numel()


class StandInFeatures(nn.Module):
    """A different cheap map per layer name; records (batch size, builds a graph) per call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, bool]] = []

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        self.calls.append((images.shape[0], torch.is_grad_enabled()))
        names = PERCEPTUAL + STYLE + DECOYS
        return {
            name: F.avg_pool2d((images * (i + 1)).sin(), 1 + i % 2) for i, name in enumerate(names)
        }


def random_mask(batch: int = B, seed: int = 0) -> Tensor:
    """B x 1 x S x S mask of 0s and 1s, about a third holes."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 1, S, S, generator=generator) < 0.3).float()


def reference_terms(output: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Each term computed separately, one feature call per image batch."""
    stand_in = StandInFeatures()
    f_out, f_gt = stand_in(output), stand_in(target)
    s_out, s_gt = stand_in(output * mask), stand_in(target * mask)
    hole_fraction = mask.sum() / mask.numel()
    return {
        "l1": mean_l1(output, target) / hole_fraction,
        "perceptual": sum(mean_l1(f_out[k], f_gt[k]) for k in PERCEPTUAL),
        "style": sum(mean_l1(loop_gram(s_out[k]), loop_gram(s_gt[k])) for k in STYLE),
    }


def test_feature_matching_by_hand():
    fake = [torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[[1.0, -1.0]], [[3.0, 0.0]]])]
    real = [torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[[0.0, 0.0]], [[0.0, 0.0]]])]
    # layer 1: (1 + 0 + 2) / 3 = 1; layer 2: (1 + 1 + 3 + 0) / 4 = 1.25
    torch.testing.assert_close(feature_matching_loss(fake, real), torch.tensor(2.25))


def test_feature_matching_detaches_the_real_side():
    fake_leaf = torch.tensor([0.0, 3.0], requires_grad=True)
    real_leaf = torch.tensor([1.0, 1.0], requires_grad=True)
    loss = feature_matching_loss([fake_leaf * 2, fake_leaf + 1], [real_leaf * 2, real_leaf + 1])
    loss.backward()
    assert real_leaf.grad is None
    # d/dx of mean|2x - 2| + mean|x + 1 - 2| at x = (0, 3): (-1 - 0.5, 1 + 0.5)
    torch.testing.assert_close(fake_leaf.grad, torch.tensor([-1.5, 1.5]))


def test_feature_matching_needs_matching_layer_counts():
    with pytest.raises(ValueError):
        feature_matching_loss([torch.ones(2)], [torch.ones(2), torch.ones(2)])


def test_inpaint_loss_terms_and_total_by_hand():
    output, target, mask = torch.rand(B, C, S, S), torch.rand(B, C, S, S), random_mask()
    stand_in = StandInFeatures()
    weights = dict(l1=2.0, perceptual=3.0, style=5.0)
    terms = EdgeConnectInpaintLoss(**weights, features=stand_in)(output, target, mask)
    expected = reference_terms(output, target, mask)
    assert set(terms) == {*expected, "total"}
    for name, value in expected.items():
        torch.testing.assert_close(terms[name], value, msg=name)
    total = sum(weights[name] * value for name, value in expected.items())
    torch.testing.assert_close(terms["total"], total)
    # the two targets without a graph, then the two outputs
    assert stand_in.calls == [(2 * B, False), (2 * B, True)]


def test_l1_is_divided_by_the_hole_fraction():
    output, target = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 0, :] = 1  # a quarter of the pixels
    loss = EdgeConnectInpaintLoss(perceptual=0.0, style=0.0)
    torch.testing.assert_close(loss(output, target, mask)["l1"], torch.tensor(4.0))


def test_l1_without_holes_is_the_plain_mean():
    output = torch.rand(B, C, S, S, requires_grad=True)
    target = torch.rand(B, C, S, S)
    loss = EdgeConnectInpaintLoss(perceptual=0.0, style=0.0)
    value = loss(output, target, torch.zeros(B, 1, S, S))["l1"]
    torch.testing.assert_close(value, (output - target).abs().mean())
    value.backward()
    assert torch.isfinite(output.grad).all()


def test_style_only_sees_the_holes():
    output, target, mask = torch.rand(B, C, S, S), torch.rand(B, C, S, S), random_mask()
    loss = EdgeConnectInpaintLoss(l1=0.0, perceptual=0.0, features=StandInFeatures())
    changed = torch.where(mask.bool(), output, torch.rand_like(output))
    assert torch.equal(loss(output, target, mask)["style"], loss(changed, target, mask)["style"])


@pytest.mark.parametrize(
    ("zeroed", "kept", "batch_sizes"),
    [
        ({"perceptual": 0.0}, {"l1", "style"}, [B, B]),
        ({"style": 0.0}, {"l1", "perceptual"}, [B, B]),
        ({"l1": 0.0}, {"perceptual", "style"}, [2 * B, 2 * B]),
        ({"perceptual": 0.0, "style": 0.0}, {"l1"}, []),
    ],
)
def test_zero_weights_skip_their_terms(zeroed, kept, batch_sizes):
    output, target, mask = torch.rand(B, C, S, S), torch.rand(B, C, S, S), random_mask()
    stand_in = StandInFeatures()
    loss = EdgeConnectInpaintLoss(**zeroed, features=stand_in)
    terms = loss(output, target, mask)
    assert set(terms) == {*kept, "total"}
    assert [size for size, _ in stand_in.calls] == batch_sizes
    assert (loss.features is None) == (not batch_sizes)
    expected = reference_terms(output, target, mask)
    for name in kept:
        torch.testing.assert_close(terms[name], expected[name], msg=name)
    defaults = dict(l1=1.0, perceptual=0.1, style=250.0)
    torch.testing.assert_close(terms["total"], sum(defaults[k] * expected[k] for k in kept))


def test_no_vgg_is_loaded_when_perceptual_and_style_are_off(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("INPAINTLAB_OFFLINE", "1")
    EdgeConnectInpaintLoss(perceptual=0.0, style=0.0, vgg_weights="imagenet")
    with pytest.raises(ConfigError, match="vgg19 ImageNet weights"):
        EdgeConnectInpaintLoss(perceptual=0.0, style=250.0, vgg_weights="imagenet")


@pytest.mark.parametrize("channels", [3, 1])
def test_with_random_vgg19_gradients_reach_the_output(channels):
    loss = EdgeConnectInpaintLoss(vgg_weights="none")
    output = torch.rand(B, channels, 32, 32, requires_grad=True)
    terms = loss(output, torch.rand(B, channels, 32, 32), random_mask().repeat(1, 1, 4, 4))
    assert set(terms) == {"l1", "perceptual", "style", "total"}
    assert all(torch.isfinite(value) and value > 0 for value in terms.values())
    terms["total"].backward()
    assert output.grad.abs().sum() > 0
    assert list(loss.state_dict()) == []


def test_docstring_examples():
    assert doctest.testmod(edgeconnect).failed == 0
