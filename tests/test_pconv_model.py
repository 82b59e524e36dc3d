"""The Partial Convolution U-Net and its LightningModule: shapes, stages, learning."""

import pytest
import torch

from inpaintlab.errors import CheckpointError, DataError
from inpaintlab.models.partial_conv import PartialConvModule
from inpaintlab.networks.pconv_unet import PConvUNet
from tests.helpers import SIZE, fit, smooth_images


def make_module(adversarial_weight=0.0, depth=4, vgg_terms=True, **kwargs) -> PartialConvModule:
    return PartialConvModule(
        generator={
            "_target_": "inpaintlab.networks.pconv_unet.PConvUNet",
            "channels": 3,
            "depth": depth,
            "base_channels": 16,
        },
        discriminator={
            "_target_": "inpaintlab.networks.discriminators.PatchDiscriminator",
            "channels": 3,
            "base_channels": 8,
        },
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
        loss={
            "_target_": "inpaintlab.losses.pconv.PartialConvLoss",
            "valid": 1.0,
            "hole": 6.0,
            "perceptual": 0.05 if vgg_terms else 0.0,
            "style": 120.0 if vgg_terms else 0.0,
            "tv": 0.1,
            "vgg_weights": "none",
            "adversarial_weight": adversarial_weight,
            "adversarial": {"_target_": "inpaintlab.losses.adversarial.AdversarialLoss"},
        },
        **kwargs,
    )


def block_masks(n: int) -> torch.Tensor:
    mask = torch.zeros(n, 1, SIZE, SIZE)
    mask[..., 16:40, 20:44] = 1
    return mask


@pytest.mark.parametrize(("depth", "size", "channels"), [(7, 128, 3), (4, 48, 1), (3, 24, 3)])
def test_unet_keeps_the_image_shape(depth, size, channels):
    net = PConvUNet(channels=channels, depth=depth, base_channels=8)
    out = net(torch.rand(2, channels, size, size), torch.zeros(2, 1, size, size))
    assert out.shape == (2, channels, size, size)


def test_unet_level_widths_and_kernels_follow_the_paper():
    net = PConvUNet(depth=8)
    convs = [block.conv for block in net.encoder]
    assert [c.kernel_size[0] for c in convs] == [7, 5, 5, 3, 3, 3, 3, 3]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 512, 512, 512, 512]
    assert all(c.stride == (2, 2) for c in convs)
    last = net.decoder[0]
    assert last.conv.out_channels == 3 and last.conv.bias is not None
    assert isinstance(last.norm, torch.nn.Identity)


def test_unet_rejects_sizes_not_divisible_by_two_to_the_depth():
    with pytest.raises(DataError, match="divisible by 16"):
        PConvUNet(depth=4, base_channels=8)(torch.rand(1, 3, 40, 40), torch.zeros(1, 1, 40, 40))


def test_hole_pixels_do_not_change_the_prediction():
    net = PConvUNet(depth=4, base_channels=8).eval()
    image, mask = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    mask[..., 8:20, 10:24] = 1
    altered = torch.where(mask.bool(), torch.rand_like(image), image)
    with torch.no_grad():
        assert torch.allclose(net(image, mask), net(altered, mask), atol=1e-6)


def test_frozen_encoder_batchnorm_stays_fixed_while_the_decoder_trains():
    net = PConvUNet(depth=4, base_channels=8, freeze_encoder_bn=True).train()
    encoder_bn = [m for m in net.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    decoder_bn = [m for m in net.decoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [bn.running_mean.clone() for bn in encoder_bn + decoder_bn]
    net(torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32))
    after = [bn.running_mean for bn in encoder_bn + decoder_bn]
    n = len(encoder_bn)
    assert all(torch.equal(b, a) for b, a in zip(before[:n], after[:n], strict=True))
    assert not any(torch.equal(b, a) for b, a in zip(before[n:], after[n:], strict=True))
    assert all(not bn.training and not bn.weight.requires_grad for bn in encoder_bn)


def test_paper_setting_builds_no_discriminator():
    module = make_module(adversarial_weight=0.0)
    assert module.discriminator is None
    assert len(module.configure_optimizers()) == 1


def test_adversarial_weight_adds_a_stepped_discriminator():
    module = make_module(adversarial_weight=0.1)
    before = {k: v.clone() for k, v in module.discriminator.state_dict().items()}
    fit(module, {"image": smooth_images(2), "mask": block_masks(2)}, steps=1)
    after = module.discriminator.state_dict()
    assert any(not torch.equal(v, after[k]) for k, v in before.items())


def test_hole_l1_falls_when_overfitting():
    # the VGG terms are checked in test_perceptual_losses.py; without them 150 steps take
    # seconds instead of minutes on a CPU
    torch.manual_seed(0)
    module = make_module(vgg_terms=False)
    batch = {"image": smooth_images(4), "mask": block_masks(4)}

    def hole_l1() -> float:
        with torch.no_grad():
            module.eval()
            out = module.inpaint(batch["image"], batch["mask"])
            module.train()
        return ((out - batch["image"]).abs() * batch["mask"]).sum().item() / batch[
            "mask"
        ].sum().item()

    start = hole_l1()
    fit(module, batch, steps=150)
    assert hole_l1() < 0.3 * start


def test_bf16_mixed_training_stays_finite():
    module = make_module(adversarial_weight=0.1)
    fit(
        module, {"image": smooth_images(2), "mask": block_masks(2)}, steps=3, precision="bf16-mixed"
    )
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_init_from_loads_generator_weights(tmp_path):
    source = make_module()
    trainer = fit(source, {"image": smooth_images(2), "mask": block_masks(2)}, steps=1)
    path = tmp_path / "stage1.ckpt"
    trainer.save_checkpoint(path)
    target = make_module(init_from=str(path), freeze_encoder_bn=True)
    target.load_network_weights(str(path), ["generator"], ["discriminator"])
    for key, value in source.generator.state_dict().items():
        assert torch.equal(value, target.generator.state_dict()[key])


def test_init_from_an_incompatible_checkpoint_is_a_clear_error(tmp_path):
    trainer = fit(make_module(depth=3), {"image": smooth_images(2), "mask": block_masks(2)}, 1)
    path = tmp_path / "other.ckpt"
    trainer.save_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not fit"):
        make_module(depth=4).load_network_weights(str(path), ["generator"])


def test_evaluation_needs_no_vgg_weights(tmp_path):
    trainer = fit(make_module(), {"image": smooth_images(2), "mask": block_masks(2)}, steps=1)
    path = tmp_path / "trained.ckpt"
    trainer.save_checkpoint(path)
    from inpaintlab.models.checkpoint import read_checkpoint
    from inpaintlab.models.loading import model_from_checkpoint

    checkpoint = read_checkpoint(path)
    checkpoint["hyper_parameters"]["loss"]["vgg_weights"] = str(tmp_path / "missing.pth")
    model = model_from_checkpoint(checkpoint)
    out = model(smooth_images(1), block_masks(1))
    assert out.shape == (1, 3, SIZE, SIZE) and model.criterion is None
