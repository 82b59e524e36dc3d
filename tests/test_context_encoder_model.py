"""The Context Encoder LightningModule: compositing, settings, optimiser steps, learning."""

import pytest
import torch

from inpaintlab.errors import ConfigError
from inpaintlab.losses.reconstruction import context_encoder_l2
from inpaintlab.models.context_encoder import ContextEncoderModule
from inpaintlab.ops.compositing import composite
from tests.helpers import SIZE, fit, smooth_images


def make_module(setting="center", adversarial_weight=0.001, lr=2e-4) -> ContextEncoderModule:
    return ContextEncoderModule(
        generator={
            "_target_": "inpaintlab.networks.context_encoder.ContextEncoderGenerator",
            "image_size": SIZE,
            "channels": 3,
            "base_channels": 16,
            "bottleneck": 128,
        },
        discriminator={
            "_target_": "inpaintlab.networks.discriminators.DCGANDiscriminator",
            "channels": 3,
            "base_channels": 16,
        },
        optimizer={
            "_target_": "torch.optim.Adam",
            "_partial_": True,
            "lr": lr,
            "betas": [0.5, 0.999],
        },
        loss={
            "_target_": "inpaintlab.losses.reconstruction.ContextEncoderLoss",
            "reconstruction_weight": 0.999,
            "adversarial_weight": adversarial_weight,
            "overlap_weight": 10.0,
            "known_weight": 0.0,
            "adversarial": {"_target_": "inpaintlab.losses.adversarial.AdversarialLoss"},
        },
        setting=setting,
        generator_lr_scale=10.0,
    )


def center_mask(n: int) -> torch.Tensor:
    """The paper's hole: the 64 px centre patch of a 128 image minus a 4 px band, scaled."""
    mask = torch.zeros(n, 1, SIZE, SIZE)
    mask[..., 20:44, 20:44] = 1  # patch is 16..47 at 64 px, 4 px band kept known
    return mask


def test_composite_keeps_known_pixels_bit_exact():
    image = torch.rand(2, 3, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    pred = torch.rand(2, 3, 8, 8)
    out = composite(pred, image, mask)
    known = ~mask.bool().expand_as(image)
    assert torch.equal(out[known], image[known])
    assert torch.equal(out[~known], pred[~known])


@pytest.mark.parametrize("setting", ["center", "random_region"])
def test_inpaint_returns_full_image_with_known_pixels_kept(setting):
    module = make_module(setting).eval()
    image, mask = smooth_images(2), center_mask(2)
    with torch.no_grad():
        out = module(image, mask)
    assert out.shape == image.shape
    assert out.min() >= 0 and out.max() <= 1
    known = ~mask.bool().expand_as(image)
    assert torch.equal(out[known], image[known])


def test_center_setting_rejects_holes_outside_the_patch():
    module = make_module("center").eval()
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., :4, :4] = 1
    with pytest.raises(ConfigError, match="centre patch"):
        module(smooth_images(1), mask)


def test_unknown_setting_is_a_config_error():
    with pytest.raises(ConfigError, match="model.setting"):
        make_module("sideways")


def test_generator_learns_at_ten_times_the_discriminator_rate():
    opt_g, opt_d = make_module().configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(10 * opt_d.param_groups[0]["lr"])


def test_one_step_updates_both_networks():
    module = make_module()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    fit(module, {"image": smooth_images(4), "mask": center_mask(4)}, steps=1)
    after = module.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert {"generator", "discriminator"} <= changed


def test_without_adversarial_term_the_discriminator_is_not_stepped():
    module = make_module(adversarial_weight=0.0)
    before = {k: v.clone() for k, v in module.discriminator.state_dict().items()}
    fit(module, {"image": smooth_images(4), "mask": center_mask(4)}, steps=2)
    assert all(torch.equal(v, module.discriminator.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("setting", ["center", "random_region"])
def test_reconstruction_loss_falls_when_overfitting(setting):
    torch.manual_seed(0)
    module = make_module(setting, lr=2e-4)
    batch = {"image": smooth_images(4), "mask": center_mask(4)}

    def rec_loss() -> float:
        with torch.no_grad():
            pred = module.generator(batch["image"], batch["mask"])
            target, weight = module._targets(batch["image"], batch["mask"])
            return context_encoder_l2(pred, target, weight).item()

    start = rec_loss()
    fit(module, batch, steps=200)
    assert rec_loss() < 0.2 * start
