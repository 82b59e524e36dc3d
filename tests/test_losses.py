"""Adversarial and reconstruction losses against hand computations and slow loops, and the
one protocol every variant's loss config builds."""

import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from inpaintlab.conf import CONFIG_DIR
from inpaintlab.errors import ConfigError
from inpaintlab.losses.adversarial import AdversarialLoss
from inpaintlab.losses.generator_loss import GeneratorLoss
from inpaintlab.losses.reconstruction import (
    NORMS,
    ContextEncoderLoss,
    context_encoder_l2,
    overlap_weight_map,
)
from inpaintlab.networks.context_encoder import crop_center_patch

REAL = torch.tensor([2.0, -1.0])
FAKE = torch.tensor([0.5, -3.0])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


@pytest.mark.parametrize(
    ("kind", "d_loss", "g_loss"),
    [
        (
            "nsgan",
            0.5 * ((softplus(-2) + softplus(1)) / 2 + (softplus(0.5) + softplus(-3)) / 2),
            (softplus(-0.5) + softplus(3)) / 2,
        ),
        ("hinge", 0.5 * ((0 + 2) / 2 + (1.5 + 0) / 2), -(0.5 - 3) / 2),
        ("lsgan", 0.5 * ((1 + 4) / 2 + (0.25 + 9) / 2), (0.25 + 16) / 2),
    ],
)
def test_adversarial_losses_match_hand_values(kind, d_loss, g_loss):
    loss = AdversarialLoss(kind)
    assert loss.discriminator_loss(REAL, FAKE).item() == pytest.approx(d_loss, rel=1e-6)
    assert loss.generator_loss(FAKE).item() == pytest.approx(g_loss, rel=1e-6)


def test_nsgan_is_stable_and_non_saturating_for_extreme_logits():
    loss = AdversarialLoss("nsgan")
    fake = torch.tensor([-1000.0, 1000.0], requires_grad=True)
    d_value = loss.discriminator_loss(torch.tensor([1000.0]), fake)
    assert d_value.item() == pytest.approx(0.5 * 1000 / 2)
    g_value = loss.generator_loss(fake)
    assert g_value.item() == pytest.approx(1000 / 2)
    g_value.backward()
    torch.testing.assert_close(fake.grad, torch.tensor([-0.5, 0.0]))


def test_unknown_adversarial_kind_raises():
    with pytest.raises(ConfigError):
        AdversarialLoss("wgan")


@pytest.mark.parametrize(("norm", "power"), [("l2", 2), ("l1", 1)])
def test_the_context_encoders_weighted_errors_match_a_loop(norm, power):
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 5, 4), torch.rand(2, 3, 5, 4)
    weight = torch.rand(2, 1, 5, 4)
    total = 0.0
    for b, c, i, j in torch.cartesian_prod(*map(torch.arange, pred.shape)).tolist():
        error = abs((pred[b, c, i, j] - target[b, c, i, j]).item())
        total += weight[b, 0, i, j].item() * error**power
    expected = total / pred.numel()
    assert NORMS[norm](pred, target, weight).item() == pytest.approx(expected, rel=1e-5)


def test_overlap_weight_is_exactly_the_4px_band_of_the_centre_patch():
    mask = torch.zeros(1, 1, 128, 128)
    mask[..., 36:92, 36:92] = 1  # centre hole: size 0.5, inset 4
    weight = overlap_weight_map(crop_center_patch(mask), overlap_weight=10.0)
    assert weight.shape == (1, 1, 64, 64)
    for i in range(64):
        for j in range(64):
            in_band = min(i, j) < 4 or max(i, j) >= 60
            assert weight[0, 0, i, j].item() == (10.0 if in_band else 1.0)


def test_full_image_weight_defaults_to_the_hole():
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    assert torch.equal(overlap_weight_map(mask, overlap_weight=0.0), mask)
    torch.testing.assert_close(overlap_weight_map(mask, 0.1), mask + 0.1 * (1 - mask))


@pytest.mark.parametrize("setting", ["center", "random_region"])
def test_context_encoder_loss_weighs_known_pixels_by_its_setting(setting):
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    loss = ContextEncoderLoss(setting, reconstruction_weight=0.5, known_weight=0.25)
    known_weight = 10.0 if setting == "center" else 0.25  # overlap_weight's default is 10
    expected = context_encoder_l2(pred, target, mask + known_weight * (1 - mask))
    terms = loss(pred, target, mask)
    torch.testing.assert_close(terms["reconstruction"], expected)
    torch.testing.assert_close(terms["total"], 0.5 * expected)
    with pytest.raises(ConfigError, match="model.setting"):
        ContextEncoderLoss("everywhere")


def test_the_context_encoder_loss_takes_the_absolute_error_when_told():
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    terms = ContextEncoderLoss("random_region", reconstruction_weight=1.0, norm="l1")(
        pred, target, mask
    )
    torch.testing.assert_close(terms["reconstruction"], ((pred - target).abs() * mask).mean())
    with pytest.raises(ConfigError, match="loss.norm='l3'"):
        ContextEncoderLoss(norm="l3")


def test_with_adversarial_adds_the_weighted_generator_term():
    terms = {"l1": torch.tensor(0.2), "total": torch.tensor(0.2)}
    loss = GeneratorLoss(AdversarialLoss("lsgan"), adversarial_weight=0.1)
    added = loss.with_adversarial(terms, FAKE)
    expected = AdversarialLoss("lsgan").generator_loss(FAKE)
    torch.testing.assert_close(added["adversarial"], expected)
    torch.testing.assert_close(added["total"], 0.2 + 0.1 * expected)
    assert added["l1"] is terms["l1"] and "adversarial" not in terms  # a new dict
    d_loss = AdversarialLoss("lsgan").discriminator_loss(REAL, FAKE)
    torch.testing.assert_close(loss.discriminator_loss(REAL, FAKE), d_loss)


# each variant's loss config: the criteria it builds (EdgeConnect: one per generator)
LOSS_CONFIGS = {
    "context_encoder": [[]],
    "pconv": [[]],
    "edgeconnect": [["edge"], ["inpaint"]],
}


@pytest.mark.parametrize("name", LOSS_CONFIGS)
def test_every_loss_config_builds_the_one_protocol(name):
    overrides = [f"+loss={name}", "loss.adversarial.kind=hinge"]
    if name != "context_encoder":
        overrides.append("loss.vgg_weights=none")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        config = compose(overrides=overrides).loss
    for path in LOSS_CONFIGS[name]:
        node = config
        for key in path:
            node = node[key]
        criterion = instantiate(node)
        assert isinstance(criterion, GeneratorLoss)
        assert criterion.adversarial.kind == "hinge"  # EdgeConnect's pair shares one setting
        assert criterion.adversarial_weight == node.adversarial_weight
