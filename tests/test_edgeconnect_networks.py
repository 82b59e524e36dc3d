"""EdgeConnect generators: paper inputs, layout, spectral norm, norms, init, sizes, outputs."""

import doctest

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from inpaintlab.errors import DataError
from inpaintlab.networks import edgeconnect
from inpaintlab.networks.edgeconnect import (
    EdgeGenerator,
    InpaintGenerator,
    ResidualBlock,
    composite_edges,
    edge_generator_input,
    inpaint_generator_input,
)

B, H, W = 2, 16, 24
SMALL = dict(residual_blocks=2, base_channels=8)
CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def random_mask(batch: int = B, seed: int = 0) -> Tensor:
    """B x 1 x H x W mask of 0s and 1s, about a third holes."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 1, H, W, generator=generator) < 0.3).float()


def convs_of(module: nn.Module) -> list[nn.Module]:
    """Every conv and transposed conv in forward order."""
    return [m for m in module.modules() if isinstance(m, CONVS)]


def test_edge_generator_input_is_the_papers():
    grey, edges, mask = torch.rand(B, 1, H, W), torch.rand(B, 1, H, W), random_mask()
    x = edge_generator_input(grey, edges, mask)
    holes = mask[:, 0].bool()
    assert x.shape == (B, 3, H, W)
    assert torch.all(x[:, 0][holes] == 1) and torch.equal(x[:, 0][~holes], grey[:, 0][~holes])
    assert torch.all(x[:, 1][holes] == 0) and torch.equal(x[:, 1][~holes], edges[:, 0][~holes])
    assert torch.equal(x[:, 2:], mask)


@pytest.mark.parametrize("channels", [3, 1])
def test_inpaint_generator_input_is_the_papers(channels):
    image, edges, mask = torch.rand(B, channels, H, W), torch.rand(B, 1, H, W), random_mask()
    x = inpaint_generator_input(image, edges, mask)
    holes = mask.expand_as(image).bool()
    assert x.shape == (B, channels + 1, H, W)
    rgb = x[:, :channels]
    assert torch.all(rgb[holes] == 1) and torch.equal(rgb[~holes], image[~holes])
    assert torch.equal(x[:, channels:], edges)  # edges are given in the holes too


def test_composite_edges_takes_predictions_in_holes_only():
    predicted, true, mask = torch.rand(B, 1, H, W), torch.rand(B, 1, H, W), random_mask()
    holes = mask.bool()
    composite = composite_edges(predicted, true, mask)
    assert torch.equal(composite[holes], predicted[holes])
    assert torch.equal(composite[~holes], true[~holes])


def test_generators_apply_their_output_activation_to_the_body():
    torch.manual_seed(0)
    g1, g2 = EdgeGenerator(**SMALL), InpaintGenerator(**SMALL)
    grey, edges, image, mask = (
        torch.rand(B, 1, H, W),
        torch.rand(B, 1, H, W),
        torch.rand(B, 3, H, W),
        random_mask(),
    )
    g1.eval()  # spectral norm's power iteration runs in training mode only
    with torch.no_grad():
        edge_raw = g1.body(edge_generator_input(grey, edges, mask))
        image_raw = g2.body(inpaint_generator_input(image, edges, mask))
        edge_out, image_out = g1(grey, edges, mask), g2(image, edges, mask)
    assert edge_out.shape == (B, 1, H, W) and image_out.shape == (B, 3, H, W)
    torch.testing.assert_close(edge_out, torch.sigmoid(edge_raw))
    torch.testing.assert_close(image_out, (torch.tanh(image_raw) + 1) / 2)
    assert edge_raw.min() < 0 < edge_raw.max() and image_raw.min() < 0 < image_raw.max()
    for out in (edge_out, image_out):
        assert out.min() >= 0 and out.max() <= 1


def test_grey_inpaint_generator_maps_one_channel_to_one():
    g2 = InpaintGenerator(channels=1, **SMALL)
    out = g2(torch.rand(B, 1, H, W), torch.rand(B, 1, H, W), random_mask())
    assert out.shape == (B, 1, H, W)
    assert convs_of(g2)[0].in_channels == 2


@pytest.mark.parametrize(
    "make", [lambda: EdgeGenerator(**SMALL), lambda: InpaintGenerator(**SMALL)]
)
def test_layer_layout_follows_the_paper(make):
    generator = make()
    convs = convs_of(generator)
    widths = [c.out_channels for c in convs]
    blocks = 2 * SMALL["residual_blocks"]
    assert widths == [8, 16, 32] + [32] * blocks + [16, 8, convs[-1].out_channels]
    assert [c.kernel_size[0] for c in convs] == [7, 4, 4] + [3] * blocks + [4, 4, 7]
    assert [c.stride[0] for c in convs] == [1, 2, 2] + [1] * blocks + [2, 2, 1]
    assert [isinstance(c, nn.ConvTranspose2d) for c in convs] == [False] * (3 + blocks) + [
        True,
        True,
        False,
    ]
    pads = [m.padding[0] for m in generator.modules() if isinstance(m, nn.ReflectionPad2d)]
    assert pads == [3] + [2, 1] * SMALL["residual_blocks"] + [3]


def test_residual_blocks_use_dilation_2_then_1():
    generator = InpaintGenerator(**SMALL)
    blocks = [m for m in generator.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == SMALL["residual_blocks"]
    for block in blocks:
        assert [c.dilation for c in convs_of(block)] == [(2, 2), (1, 1)]
    assert all(c.dilation == (1, 1) for c in convs_of(generator.body.encoder))


def test_residual_block_matches_functional_reference():
    torch.manual_seed(0)
    block = ResidualBlock(4)
    first, second = convs_of(block)
    x = torch.randn(2, 4, 7, 9)
    h = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), first.weight, dilation=2)
    h = F.relu(F.instance_norm(h))
    h = F.instance_norm(F.conv2d(F.pad(h, (1, 1, 1, 1), mode="reflect"), second.weight))
    torch.testing.assert_close(block(x), x + h)


def is_normalised(conv: nn.Module) -> bool:
    return parametrize.is_parametrized(conv, "weight")


def test_spectral_norm_on_every_edge_generator_conv_but_the_last():
    convs = convs_of(EdgeGenerator(**SMALL))
    assert len(convs) == 3 + 2 * SMALL["residual_blocks"] + 3
    assert [is_normalised(c) for c in convs] == [True] * (len(convs) - 1) + [False]


@pytest.mark.parametrize(
    "make",
    [lambda: EdgeGenerator(spectral_norm=False, **SMALL), lambda: InpaintGenerator(**SMALL)],
)
def test_no_spectral_norm_where_not_asked(make):
    assert not any(is_normalised(c) for c in convs_of(make()))


def test_only_the_last_conv_has_a_bias():
    # every other conv feeds an InstanceNorm, whose mean subtraction cancels any bias
    for generator in (EdgeGenerator(**SMALL), InpaintGenerator(**SMALL)):
        convs = convs_of(generator)
        assert [c.bias is not None for c in convs] == [False] * (len(convs) - 1) + [True]


def test_instance_norms_have_no_running_stats_nor_affine():
    generator = InpaintGenerator(**SMALL)
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    assert len(norms) == len(convs_of(generator)) - 1
    assert all(isinstance(n, nn.InstanceNorm2d) for n in norms)
    assert all(not n.track_running_stats and not n.affine for n in norms)
    assert list(generator.buffers()) == []
    image, edges, mask = torch.rand(B, 3, H, W), torch.rand(B, 1, H, W), random_mask()
    with torch.no_grad():
        train_out = generator.train()(image, edges, mask)
        assert torch.equal(generator.eval()(image, edges, mask), train_out)


def test_weights_start_normal_with_std_002_and_zero_bias():
    torch.manual_seed(0)
    g1 = EdgeGenerator(residual_blocks=1)
    g2 = InpaintGenerator(residual_blocks=1)
    raw_g1 = convs_of(g1.body.middle)[0].parametrizations.weight.original
    for weight in (raw_g1, convs_of(g2.body.middle)[0].weight):
        assert weight.numel() == 256 * 256 * 9
        assert abs(weight.mean().item()) < 1e-3
        assert weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert torch.all(convs_of(g2)[-1].bias == 0)


def test_hole_pixels_of_the_input_do_not_affect_the_outputs():
    torch.manual_seed(0)
    g1, g2 = EdgeGenerator(**SMALL).eval(), InpaintGenerator(**SMALL)
    image, grey, edges, mask = (
        torch.rand(B, 3, H, W),
        torch.rand(B, 1, H, W),
        torch.rand(B, 1, H, W),
        random_mask(),
    )

    def scribbled(x: Tensor) -> Tensor:
        return torch.where(mask.bool(), 100 * torch.randn_like(x), x)

    with torch.no_grad():
        assert torch.equal(g2(image, edges, mask), g2(scribbled(image), edges, mask))
        assert torch.equal(g1(grey, edges, mask), g1(scribbled(grey), scribbled(edges), mask))
        # known pixels and G2's edges in the holes do matter
        assert not torch.equal(g2(image, edges, mask), g2(image, scribbled(edges), mask))
        assert not torch.equal(g2(image, edges, mask), g2(image.flip(-1), edges, mask))


@pytest.mark.parametrize(("height", "width"), [(18, 16), (16, 18), (8, 8), (8, 16)])
def test_unusable_sizes_are_data_errors(height, width):
    g1, g2 = EdgeGenerator(**SMALL), InpaintGenerator(**SMALL)
    one = torch.rand(1, 1, height, width)
    with pytest.raises(DataError, match="multiples of 4"):
        g1(one, one, one)
    with pytest.raises(DataError, match=f"{height}x{width}"):
        g2(torch.rand(1, 3, height, width), one, one)


def test_smallest_usable_size_runs():
    g2 = InpaintGenerator(**SMALL)
    assert g2(
        torch.rand(1, 3, 12, 12), torch.rand(1, 1, 12, 12), torch.ones(1, 1, 12, 12)
    ).shape == (1, 3, 12, 12)


def test_edge_generator_gradients_reach_the_raw_weights():
    g1 = EdgeGenerator(**SMALL)
    g1(torch.rand(B, 1, H, W), torch.rand(B, 1, H, W), random_mask()).mean().backward()
    raw = [p for name, p in g1.named_parameters() if name.endswith("original")]
    assert len(raw) == len(convs_of(g1)) - 1
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g1.parameters())


def test_docstring_examples():
    assert doctest.testmod(edgeconnect).failed == 0
