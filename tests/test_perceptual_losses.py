"""Gram, perceptual, style and total variation losses, and the Partial Convolution total loss."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlab.errors import ConfigError
from inpaintlab.losses.pconv import PartialConvLoss
from inpaintlab.losses.perceptual import features_of, gram_matrix, perceptual_loss, style_loss
from inpaintlab.losses.total_variation import dilate_holes, total_variation


def loop_gram(features: Tensor) -> Tensor:
    """Gram matrices entry by entry."""
    batch, channels, height, width = features.shape
    gram = torch.zeros(batch, channels, channels)
    for b, i, j in itertools.product(range(batch), range(channels), range(channels)):
        gram[b, i, j] = (features[b, i] * features[b, j]).sum() / (channels * height * width)
    return gram


def loop_tv(image: Tensor, region: Tensor | None = None) -> Tensor:
    """Sum of |neighbour differences| over pairs inside `region`, divided by the element count."""
    batch, channels, height, width = image.shape
    inside = torch.ones(batch, height, width) if region is None else region[:, 0]
    total = 0.0
    for b, c, i, j in itertools.product(range(batch), range(channels), range(height), range(width)):
        for di, dj in ((0, 1), (1, 0)):
            if i + di < height and j + dj < width and inside[b, i, j] and inside[b, i + di, j + dj]:
                total += abs(float(image[b, c, i + di, j + dj] - image[b, c, i, j]))
    return torch.tensor(total / image.numel())


def loop_dilate(mask: Tensor, pixels: int) -> Tensor:
    """1 wherever a hole lies within `pixels` rows and columns (chessboard distance)."""
    batch, _, height, width = mask.shape
    out = torch.zeros_like(mask)
    for b, i, j in itertools.product(range(batch), range(height), range(width)):
        rows = slice(max(i - pixels, 0), i + pixels + 1)
        cols = slice(max(j - pixels, 0), j + pixels + 1)
        out[b, 0, i, j] = mask[b, 0, rows, cols].max()
    return out


def random_mask(batch: int, size: int, seed: int = 0) -> Tensor:
    """B x 1 x size x size mask of 0s and 1s, about a third holes."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 1, size, size, generator=generator) < 0.3).float()


class StandInFeatures(nn.Module):
    """Two 'layers' (sin, 2x2 average pool); records (batch size, builds a graph) per call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, bool]] = []

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        self.calls.append((images.shape[0], torch.is_grad_enabled()))
        return {"full": images.sin(), "half": F.avg_pool2d(images, 2)}


def test_gram_matrix_matches_a_loop():
    features = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(gram_matrix(features), loop_gram(features))


def test_gram_matrix_stays_float32_under_bf16_autocast():
    features = torch.randn(2, 8, 6, 6).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = gram_matrix(features)
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, loop_gram(features.float()))


def test_perceptual_and_style_losses_by_hand():
    feats_a = {"x": torch.tensor([[[[1.0, 2.0]]]]), "y": torch.tensor([[[[3.0]], [[-1.0]]]])}
    feats_b = {"x": torch.zeros(1, 1, 1, 2), "y": torch.tensor([[[[1.0]], [[1.0]]]])}
    # x: |1| and |2| -> 1.5; y: |2| and |-2| -> 2
    assert perceptual_loss(feats_a, feats_b, ["x", "y"]).item() == pytest.approx(3.5)
    assert perceptual_loss(feats_a, feats_b, ["y"]).item() == pytest.approx(2.0)
    # gram x: (1 + 4) / 2 = 2.5 against 0; gram y: [[9, -3], [-3, 1]] / 2 against all 0.5
    # -> |4.5 - .5| + 2 |-1.5 - .5| + |.5 - .5| = 8 over 4 entries = 2
    assert style_loss(feats_a, feats_b, ["x"]).item() == pytest.approx(2.5)
    assert style_loss(feats_a, feats_b, ["x", "y"]).item() == pytest.approx(4.5)


@pytest.mark.parametrize("with_region", [False, True])
def test_total_variation_matches_a_loop(with_region):
    image = torch.rand(2, 3, 6, 7)
    region = random_mask(2, 7)[..., :6, :] if with_region else None
    torch.testing.assert_close(total_variation(image, region), loop_tv(image, region))


def test_total_variation_of_an_empty_region_is_zero_with_finite_gradients():
    image = torch.rand(1, 3, 5, 5, requires_grad=True)
    loss = total_variation(image, torch.zeros(1, 1, 5, 5))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(image.grad).all()


def test_total_variation_ignores_pairs_leaving_the_region():
    image = torch.zeros(1, 1, 3, 3)
    image[..., 1, 1] = 1.0
    region = torch.zeros(1, 1, 3, 3)
    region[..., 1, :] = 1.0  # the middle row: two horizontal pairs touch the bright pixel
    assert total_variation(image, region).item() == pytest.approx(2 / 9)
    assert total_variation(image).item() == pytest.approx(4 / 9)


@pytest.mark.parametrize("pixels", [0, 1, 2])
def test_dilate_holes_matches_a_loop(pixels):
    mask = random_mask(2, 9, seed=pixels)
    assert torch.equal(dilate_holes(mask, pixels), loop_dilate(mask, pixels))


def test_dilate_holes_grows_by_exactly_one_pixel():
    mask = torch.zeros(1, 1, 7, 7)
    mask[..., 3, 3] = 1.0
    mask[..., 0, 6] = 1.0
    dilated = dilate_holes(mask)
    expected = torch.zeros(1, 1, 7, 7)
    expected[..., 2:5, 2:5] = 1.0
    expected[..., 0:2, 5:7] = 1.0
    assert torch.equal(dilated, expected)
    with pytest.raises(ValueError, match="pixels"):
        dilate_holes(mask, -1)


WEIGHTS = {"valid": 2.0, "hole": 3.0, "perceptual": 5.0, "style": 7.0, "tv": 11.0}


def reference_terms(output: Tensor, target: Tensor, mask: Tensor, tv_region: str) -> dict:
    """Each PartialConvLoss term computed separately and slowly."""
    holes = mask.expand_as(output).bool()
    composite = torch.where(holes, output, target)
    error = (output - target).abs()
    stand_in = StandInFeatures()
    f_out, f_comp, f_gt = stand_in(output), stand_in(composite), stand_in(target)

    def mean_l1(a: Tensor, b: Tensor) -> Tensor:
        return (a - b).abs().sum() / a.numel()

    def style(feats: dict) -> Tensor:
        return sum(mean_l1(loop_gram(feats[k]), loop_gram(f_gt[k])) for k in f_gt)

    region = loop_dilate(mask, 1) if tv_region == "dilated_hole" else None
    return {
        "valid": error[~holes].sum() / error.numel(),
        "hole": error[holes].sum() / error.numel(),
        "perceptual": sum(mean_l1(f_out[k], f_gt[k]) + mean_l1(f_comp[k], f_gt[k]) for k in f_gt),
        "style_out": style(f_out),
        "style_comp": style(f_comp),
        "tv": loop_tv(composite, region),
    }


@pytest.mark.parametrize("tv_region", ["dilated_hole", "image"])
def test_partial_conv_loss_terms_and_total_by_hand(tv_region):
    output, target, mask = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 6, 6), random_mask(2, 6)
    stand_in = StandInFeatures()
    loss = PartialConvLoss(**WEIGHTS, tv_region=tv_region, features=stand_in)
    terms = loss(output, target, mask)
    expected = reference_terms(output, target, mask, tv_region)
    assert set(terms) == {*expected, "total"}
    for name, value in expected.items():
        torch.testing.assert_close(terms[name], value.float(), msg=name)
    total = sum(WEIGHTS[name] * expected[name] for name in ("valid", "hole", "perceptual", "tv"))
    total += WEIGHTS["style"] * (expected["style_out"] + expected["style_comp"])
    torch.testing.assert_close(terms["total"], total.float())
    # the target alone without a graph, then output and composite together
    assert stand_in.calls == [(2, False), (4, True)]


def test_zero_weights_skip_their_terms_and_the_feature_network():
    stand_in = StandInFeatures()
    loss = PartialConvLoss(hole=0.0, perceptual=0.0, style=0.0, features=stand_in)
    output, target, mask = torch.rand(1, 3, 6, 6), torch.rand(1, 3, 6, 6), random_mask(1, 6)
    terms = loss(output, target, mask)
    assert set(terms) == {"valid", "tv", "total"}
    assert stand_in.calls == []
    assert loss.features is None
    torch.testing.assert_close(terms["total"], terms["valid"] + 0.1 * terms["tv"])


def test_style_alone_still_runs_the_features_once_per_side():
    stand_in = StandInFeatures()
    loss = PartialConvLoss(perceptual=0.0, tv=0.0, features=stand_in)
    terms = loss(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4), random_mask(2, 4))
    assert set(terms) == {"valid", "hole", "style_out", "style_comp", "total"}
    assert stand_in.calls == [(2, False), (4, True)]


def test_no_vgg_is_loaded_when_perceptual_and_style_are_off(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("INPAINTLAB_OFFLINE", "1")
    PartialConvLoss(perceptual=0.0, style=0.0, vgg_weights="imagenet")
    with pytest.raises(ConfigError, match="ImageNet weights"):
        PartialConvLoss(perceptual=0.05, style=0.0, vgg_weights="imagenet")


@pytest.mark.parametrize("channels", [3, 1])
def test_with_random_vgg16_gradients_reach_the_output(channels):
    loss = PartialConvLoss(vgg_weights="none")
    output = torch.rand(2, channels, 32, 32, requires_grad=True)
    terms = loss(output, torch.rand(2, channels, 32, 32), random_mask(2, 32))
    assert set(terms) == {"valid", "hole", "perceptual", "style_out", "style_comp", "tv", "total"}
    assert all(torch.isfinite(value) and value > 0 for value in terms.values())
    terms["total"].backward()
    assert output.grad.abs().sum() > 0
    assert list(loss.state_dict()) == []


def test_unknown_tv_region_is_a_config_error():
    with pytest.raises(ConfigError, match="tv_region"):
        PartialConvLoss(tv_region="holes", features=StandInFeatures())


def test_features_of_matches_one_joint_pass_and_leaves_the_reals_without_a_graph():
    torch.manual_seed(0)
    net = nn.Conv2d(3, 4, 3, padding=1)

    def layers(images: Tensor) -> dict[str, Tensor]:
        return {"conv": net(images), "pool": F.avg_pool2d(net(images), 2)}

    fakes = [torch.rand(2, 3, 8, 8, requires_grad=True) for _ in range(2)]
    reals = [torch.rand(2, 3, 8, 8) for _ in range(2)]
    (fake_a, fake_b), (real_a, real_b) = features_of(layers, fakes, reals)
    joint = {k: v.chunk(4) for k, v in layers(torch.cat([*fakes, *reals])).items()}
    for i, got in enumerate([fake_a, fake_b, real_a, real_b]):
        for name, maps in got.items():
            torch.testing.assert_close(maps, joint[name][i])
    assert not any(maps.requires_grad for maps in [*real_a.values(), *real_b.values()])
    split_grad = torch.autograd.grad(perceptual_loss(fake_a, real_a, ["conv", "pool"]), fakes[0])
    joint_fake = {k: v[0] for k, v in joint.items()}
    joint_real = {k: v[2].detach() for k, v in joint.items()}
    joint_grad = torch.autograd.grad(
        perceptual_loss(joint_fake, joint_real, ["conv", "pool"]), fakes[0]
    )
    torch.testing.assert_close(split_grad, joint_grad)
