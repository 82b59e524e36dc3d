"""Context Encoder generator, channel-wise FC, DCGAN discriminator and initialisation."""

import pytest
import torch
from torch import nn

from inpaintlab.errors import ConfigError, DataError
from inpaintlab.networks.context_encoder import (
    ChannelWiseFC,
    ContextEncoderGenerator,
    center_patch_box,
    crop_center_patch,
    paste_center_patch,
)
from inpaintlab.networks.discriminators import DCGANDiscriminator
from inpaintlab.networks.init import init_dcgan_weights

SMALL = {"base_channels": 8, "bottleneck": 16}


def conv_params(c_in: int, c_out: int, kernel: int = 4, bias: bool = False) -> int:
    return c_in * c_out * kernel * kernel + (c_out if bias else 0)


def bn_params(channels: int) -> int:
    return 2 * channels


def centre_mask(batch: int, size: int) -> torch.Tensor:
    """The paper's centre hole: the centre half minus a 4 px band (at 128: rows/cols 36..91)."""
    mask = torch.zeros(batch, 1, size, size)
    top, _, patch = center_patch_box(size)
    mask[..., top + 4 : top + patch - 4, top + 4 : top + patch - 4] = 1
    return mask


@pytest.fixture(scope="module")
def paper_generator() -> ContextEncoderGenerator:
    torch.manual_seed(0)
    return ContextEncoderGenerator()


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("output", ["center", "full"])
@pytest.mark.parametrize("bottleneck_type", ["conv", "channel_fc"])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_shape_and_range(size, output, bottleneck_type, channels):
    torch.manual_seed(0)
    net = ContextEncoderGenerator(
        image_size=size, channels=channels, output=output, bottleneck_type=bottleneck_type, **SMALL
    )
    out = net(torch.rand(2, channels, size, size), centre_mask(2, size))
    side = size // 2 if output == "center" else size
    assert out.shape == (2, channels, side, side)
    assert out.min() >= 0 and out.max() <= 1
    assert out.std() > 0


def test_center_patch_box():
    assert center_patch_box(128) == (32, 32, 64)
    assert center_patch_box(64) == (16, 16, 32)


def test_crop_and_paste_center_patch():
    image = torch.rand(2, 3, 128, 128)
    patch = crop_center_patch(image)
    assert torch.equal(patch, image[..., 32:96, 32:96])
    pasted = paste_center_patch(torch.zeros(1, 1, 128, 128), torch.ones(1, 1, 64, 64))
    rows, cols = pasted[0, 0].nonzero().unbind(1)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (32, 95, 32, 95)
    assert pasted.sum() == 64 * 64
    assert torch.equal(paste_center_patch(image, patch), image)


@pytest.mark.parametrize("bottleneck_type", ["conv", "channel_fc"])
def test_hole_pixels_are_ignored_known_pixels_are_used(bottleneck_type):
    torch.manual_seed(0)
    net = ContextEncoderGenerator(image_size=64, bottleneck_type=bottleneck_type, **SMALL)
    image, mask = torch.rand(2, 3, 64, 64), centre_mask(2, 64)
    other_hole = torch.where(mask.bool(), torch.rand_like(image), image)
    other_known = torch.where(mask.bool(), image, torch.rand_like(image))
    with torch.no_grad():
        reference = net(image, mask)
        assert torch.equal(net(other_hole, mask), reference)
        assert (net(other_known, mask) - reference).abs().max() > 1e-3


@pytest.mark.parametrize("channels", [1, 3])
def test_hole_is_filled_with_the_mean_colour(channels):
    net = ContextEncoderGenerator(image_size=32, channels=channels, **SMALL)
    seen = []
    net.encoder[0].register_forward_pre_hook(lambda _module, args: seen.append(args[0]))
    mask = centre_mask(2, 32)
    net(torch.rand(2, channels, 32, 32), mask)
    expected = torch.tensor([117 / 255, 104 / 255, 123 / 255])
    expected = expected.mean(0, keepdim=True) if channels == 1 else expected
    hole_values = seen[0][0][:, mask[0, 0].bool()]
    torch.testing.assert_close(hole_values, (2 * expected - 1)[:, None].expand_as(hole_values))


def test_channel_wise_fc_matches_loop_reference():
    torch.manual_seed(0)
    layer = ChannelWiseFC(channels=5, spatial_size=4)
    nn.init.normal_(layer.bias)
    x = torch.randn(2, 5, 4, 4)
    expected = torch.empty(2, 5, 16)
    for b in range(2):
        for c in range(5):
            expected[b, c] = layer.weight[c] @ x[b, c].flatten() + layer.bias[c]
    torch.testing.assert_close(layer(x), expected.view(2, 5, 4, 4))


def test_channel_fc_does_not_mix_channels():
    torch.manual_seed(0)
    net = ContextEncoderGenerator(image_size=64, bottleneck_type="channel_fc", **SMALL)
    layer = net.bottleneck[0]
    assert isinstance(layer, ChannelWiseFC)
    x = torch.randn(2, layer.weight.shape[0], 4, 4)
    perturbed = x.clone()
    perturbed[:, 3] += torch.randn(2, 4, 4)
    changed = (layer(perturbed) - layer(x)).abs().amax((0, 2, 3)) > 0
    assert changed.nonzero().flatten().tolist() == [3]


def test_paper_generator_parameter_count(paper_generator):
    encoder = (
        conv_params(3, 64, bias=True)
        + sum(conv_params(a, b) + bn_params(b) for a, b in [(64, 64), (64, 128), (128, 256)])
        + conv_params(256, 512)
        + bn_params(512)
    )
    bottleneck = conv_params(512, 4000) + bn_params(4000) + conv_params(4000, 512) + bn_params(512)
    decoder = sum(
        conv_params(a, b) + bn_params(b) for a, b in [(512, 256), (256, 128), (128, 64)]
    ) + conv_params(64, 3, bias=True)
    total = sum(p.numel() for p in paper_generator.parameters())
    assert total == encoder + bottleneck + decoder


def test_channel_fc_parameter_count():
    conv = ContextEncoderGenerator(image_size=32, **SMALL)
    fc = ContextEncoderGenerator(image_size=32, bottleneck_type="channel_fc", **SMALL)
    width = 16  # widths at 32 px: 8, 8, 16
    conv_bottleneck = 2 * conv_params(width, 16) + bn_params(16) + bn_params(width)
    fc_bottleneck = width * 16 * 16 + width * 16 + conv_params(width, width, 1) + bn_params(width)
    difference = sum(p.numel() for p in conv.parameters()) - sum(p.numel() for p in fc.parameters())
    assert difference == conv_bottleneck - fc_bottleneck


def test_dcgan_init_statistics(paper_generator):
    big_conv = paper_generator.bottleneck[0].weight
    assert abs(big_conv.mean().item()) < 1e-3
    assert big_conv.std().item() == pytest.approx(0.02, rel=0.01)
    norms = [m for m in paper_generator.modules() if isinstance(m, nn.BatchNorm2d)]
    scales = torch.cat([m.weight.detach() for m in norms])
    assert scales.mean().item() == pytest.approx(1.0, abs=2e-3)
    assert scales.std().item() == pytest.approx(0.02, rel=0.1)
    assert all(m.bias.abs().sum() == 0 for m in norms)
    assert paper_generator.decoder[-2].bias.abs().sum() == 0


def test_init_dcgan_weights_on_plain_layers():
    torch.manual_seed(0)
    layers = nn.Sequential(nn.Linear(500, 400), nn.BatchNorm1d(4000), nn.ReLU())
    init_dcgan_weights(layers)
    assert layers[0].weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert layers[1].weight.mean().item() == pytest.approx(1.0, abs=2e-3)
    assert layers[0].bias.abs().sum() == 0 and layers[1].bias.abs().sum() == 0


@pytest.mark.parametrize(
    ("size", "widths"), [(64, [64, 128, 256, 512]), (128, [64, 128, 256, 512, 512])]
)
@pytest.mark.parametrize("channels", [1, 3])
def test_discriminator_shape_and_widths(size, widths, channels):
    net = DCGANDiscriminator(input_size=size, channels=channels)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [*widths, 1]
    assert [m.stride[0] for m in convs] == [2] * len(widths) + [1]
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert norms == len(widths) - 1
    logits = net(torch.rand(3, channels, size, size))
    assert logits.shape == (3,)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    gen = ContextEncoderGenerator(image_size=64, **SMALL)
    disc = DCGANDiscriminator(input_size=32, base_channels=8)
    image, mask = torch.rand(2, 3, 64, 64), centre_mask(2, 64)
    disc(gen(image, mask)).square().sum().backward()
    for name, param in [*gen.named_parameters(), *disc.named_parameters()]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name
        assert torch.isfinite(param.grad).all(), name


def test_bad_configuration_raises():
    with pytest.raises(ConfigError):
        ContextEncoderGenerator(image_size=100)
    with pytest.raises(ConfigError):
        ContextEncoderGenerator(image_size=16)
    with pytest.raises(ConfigError):
        ContextEncoderGenerator(image_size=64, bottleneck_type="dense", **SMALL)
    with pytest.raises(ConfigError):
        ContextEncoderGenerator(image_size=64, output="patch", **SMALL)
    with pytest.raises(ConfigError):
        ContextEncoderGenerator(image_size=64, channels=2, **SMALL)
    with pytest.raises(ConfigError):
        DCGANDiscriminator(input_size=48)


def test_wrong_input_size_raises():
    net = ContextEncoderGenerator(image_size=64, **SMALL)
    with pytest.raises(DataError):
        net(torch.rand(1, 3, 128, 128), torch.zeros(1, 1, 128, 128))


def full_generator(**switches) -> ContextEncoderGenerator:
    """A small full-output generator in training mode (BatchNorm on the batch's statistics)."""
    torch.manual_seed(0)
    return ContextEncoderGenerator(image_size=64, output="full", **SMALL, **switches)


def test_mask_input_lets_the_encoder_see_holes_the_fill_hides():
    # an image of the fill colour: any mask gives the encoder the same picture
    image = torch.tensor([117 / 255, 104 / 255, 123 / 255]).reshape(1, 3, 1, 1).expand(2, 3, 64, 64)
    one, other = centre_mask(2, 64), torch.zeros(2, 1, 64, 64)
    other[..., :20, :20] = 1
    with torch.no_grad():
        blind, seeing = full_generator(), full_generator(mask_input=True)
        assert torch.equal(blind(image, one), blind(image, other))
        assert (seeing(image, one) - seeing(image, other)).abs().max() > 1e-3


@pytest.mark.parametrize("skips", [False, True])
def test_skips_carry_the_input_around_the_bottleneck(skips):
    net = full_generator(skips=skips)
    net.bottleneck.register_forward_hook(lambda _module, _args, out: torch.zeros_like(out))
    mask = centre_mask(2, 64)
    with torch.no_grad():
        change = (net(torch.rand(2, 3, 64, 64), mask) - net(torch.rand(2, 3, 64, 64), mask)).abs()
    assert (change.max() > 1e-3) == skips


@pytest.mark.parametrize("size", [32, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_switched_generator_shapes_gradients_and_residual_start(size, channels):
    torch.manual_seed(0)
    net = ContextEncoderGenerator(
        image_size=size,
        channels=channels,
        output="full",
        prefill="blended",
        residual=True,
        mask_input=True,
        skips=True,
        **SMALL,
    )
    image, mask = torch.rand(2, channels, size, size), centre_mask(2, size)
    out = net(image, mask)
    assert out.shape == image.shape
    torch.testing.assert_close(out, net.prefill(image, mask), rtol=0, atol=0)
    # the zero head blocks every gradient but its own at step 0: give it weights first
    nn.init.normal_(net.decoder[-1].weight, 0, 0.02)
    net(image, mask).square().sum().backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_skips_need_the_full_output():
    with pytest.raises(ConfigError, match="random_region"):
        ContextEncoderGenerator(image_size=64, skips=True, **SMALL)
