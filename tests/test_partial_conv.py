"""PartialConv2d against a slow per-window reference, its gradients and precision."""

import copy
import doctest
import itertools
import pickle

import pytest
import torch
from torch import nn
from torch.func import functional_call

from inpaintlab.data.masks import CenterBoxMask
from inpaintlab.networks import partial_conv
from inpaintlab.networks.partial_conv import PartialConv2d
from tests.helpers import mask_from_config

B, C_IN, C_OUT, H, W = 4, 3, 2, 7, 9


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine every OpenMP region of
    a tiny convolution can wait a whole time slice for its second thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reference(layer: PartialConv2d, x: torch.Tensor, mask: torch.Tensor):
    """The paper's formula verbatim, one output window at a time (differentiable)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
        layer.kernel_size,
        layer.stride,
        layer.padding,
        layer.dilation,
    )
    bias = layer.bias if layer.bias is not None else torch.zeros(layer.out_channels, dtype=x.dtype)
    pad = (pw, pw, ph, ph)
    xm = nn.functional.pad(x * mask, pad)
    mp = nn.functional.pad(mask, pad)
    window_size = mask.shape[1] * kh * kw
    rows = (x.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    cols = (x.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = torch.zeros(x.shape[0], layer.out_channels, rows, cols, dtype=x.dtype)
    new_mask = torch.zeros(x.shape[0], 1, rows, cols, dtype=x.dtype)
    for i, j in itertools.product(range(rows), range(cols)):
        r = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
        c = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
        conv = torch.einsum("bchw,ochw->bo", xm[:, :, r, c], layer.weight) + bias
        sum_m = mp[:, :, r, c].sum((1, 2, 3))
        valid = sum_m.clamp(0, 1)
        ratio = window_size / (sum_m + layer.eps) * valid
        out[:, :, i, j] = ((conv - bias) * ratio[:, None] + bias) * valid[:, None]
        new_mask[:, 0, i, j] = valid
    return out, new_mask


def mask_patterns(channels: int, seed: int = 0) -> torch.Tensor:
    """A batch of four masks (1 = valid): random, all valid, all hole, a block hole."""
    g = torch.Generator().manual_seed(seed)
    random = (torch.rand(channels, H, W, generator=g) > 0.5).double()
    block = torch.ones(channels, H, W, dtype=torch.float64)
    block[:, 1:6, 2:8] = 0
    return torch.stack([random, torch.ones_like(block), torch.zeros_like(block), block])


def make_layer(kernel, stride=1, padding=0, dilation=1, bias=True, multi_channel=False, seed=0):
    """A float64 PartialConv2d with seeded weights and a nonzero bias."""
    torch.manual_seed(seed)
    layer = PartialConv2d(
        C_IN, C_OUT, kernel, stride, padding, dilation, bias=bias, multi_channel=multi_channel
    ).double()
    if bias:
        nn.init.uniform_(layer.bias, 0.5, 1.0)
    return layer


def fits(kernel: int, padding: int, dilation: int) -> bool:
    """Whether the dilated kernel fits in the padded 7 x 9 input."""
    return dilation * (kernel - 1) + 1 <= H + 2 * padding


GEOMETRIES = [
    g for g in itertools.product([3, 5, 7], [1, 2], [0, 1, 3], [1, 2]) if fits(g[0], g[2], g[3])
]


@pytest.mark.parametrize("multi_channel", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation"), GEOMETRIES)
def test_matches_slow_reference(kernel, stride, padding, dilation, bias, multi_channel):
    layer = make_layer(kernel, stride, padding, dilation, bias, multi_channel)
    mask = mask_patterns(C_IN if multi_channel else 1)
    x = torch.randn(B, C_IN, H, W, dtype=torch.float64)
    out, new_mask = layer(x, mask)
    ref_out, ref_mask = reference(layer, x, mask)
    assert out.shape == ref_out.shape and new_mask.shape == ref_mask.shape
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0)
    torch.testing.assert_close(new_mask, ref_mask, atol=1e-5, rtol=0)


def test_all_valid_without_padding_is_a_plain_conv():
    torch.manual_seed(0)
    layer = PartialConv2d(3, 5, 3)
    plain = nn.Conv2d(3, 5, 3)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(2, 3, 10, 12)
    out, new_mask = layer(x, torch.ones(2, 1, 10, 12))
    torch.testing.assert_close(out, plain(x), atol=1e-6, rtol=0)
    assert torch.equal(new_mask, torch.ones(2, 1, 8, 10))


def test_all_valid_with_padding_renormalises_the_border():
    torch.manual_seed(0)
    layer = PartialConv2d(3, 5, 3, padding=1)
    plain = nn.Conv2d(3, 5, 3, padding=1)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(2, 3, 10, 12)
    out, _ = layer(x, torch.ones(2, 1, 10, 12))
    expected = plain(x)
    torch.testing.assert_close(out[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1])
    # Top-left corner: 4 of the 9 taps are inside the image, so the sum is scaled by 9 / 4.
    w, b = layer.weight.detach(), layer.bias.detach()
    corner = (w[:, :, 1:, 1:] * x[0, :, :2, :2]).sum((1, 2, 3)) * 9 / 4 + b
    torch.testing.assert_close(out[0, :, 0, 0], corner)
    # A top-edge window away from the corners: 6 of 9 taps.
    edge = (w[:, :, 1:, :] * x[0, :, :2, 4:7]).sum((1, 2, 3)) * 9 / 6 + b
    torch.testing.assert_close(out[0, :, 0, 5], edge)


@pytest.mark.parametrize("multi_channel", [False, True])
def test_hole_pixels_do_not_influence_the_output(multi_channel):
    layer = make_layer(3, padding=1, multi_channel=multi_channel)
    mask = mask_patterns(C_IN if multi_channel else 1)
    x = torch.randn(B, C_IN, H, W, dtype=torch.float64)
    scribbled = torch.where(mask > 0, x, 1e3 * torch.randn_like(x))
    assert not torch.equal(scribbled, x)
    assert torch.equal(layer(x, mask)[0], layer(scribbled, mask)[0])


def test_window_without_valid_pixel_outputs_zero_and_stays_a_hole():
    layer = make_layer(3, padding=1)
    mask = torch.ones(1, 1, H, W, dtype=torch.float64)
    mask[..., 1:6, 1:8] = 0
    out, new_mask = layer(torch.randn(1, C_IN, H, W, dtype=torch.float64), mask)
    assert torch.all(out[..., 2:5, 2:7] == 0) and torch.all(new_mask[..., 2:5, 2:7] == 0)
    # The ring around that interior sees some valid pixels: bias and renormalised sums.
    ring = torch.ones(H, W, dtype=torch.bool)
    ring[2:5, 2:7] = False
    assert torch.all(new_mask[0, 0][ring] == 1) and torch.all(out[0][:, ring] != 0)


def test_gradcheck_in_float64():
    layer = make_layer(3, stride=2, padding=1)
    mask = mask_patterns(1)[:1]
    x = torch.randn(1, C_IN, H, W, dtype=torch.float64, requires_grad=True)
    weight = layer.weight.detach().clone().requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()

    def run(x, weight, bias):
        return functional_call(layer, {"weight": weight, "bias": bias}, (x, mask))[0]

    assert torch.autograd.gradcheck(run, (x, weight, bias))


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation", "multi_channel"),
    [(3, 2, 1, 1, True), (5, 1, 3, 2, False)],
)
def test_gradients_match_the_reference(kernel, stride, padding, dilation, multi_channel):
    layer = make_layer(kernel, stride, padding, dilation, multi_channel=multi_channel)
    mask = mask_patterns(C_IN if multi_channel else 1)
    x = torch.randn(B, C_IN, H, W, dtype=torch.float64, requires_grad=True)
    grads = []
    for forward in (layer, lambda x, m: reference(layer, x, m)):
        out, _ = forward(x, mask)
        weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        grads.append(torch.autograd.grad((out * weights).sum(), (x, layer.weight, layer.bias)))
    for ours, ref in zip(*grads, strict=True):
        torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-8)


def test_pickle_and_deepcopy_after_a_forward():
    layer = make_layer(3, padding=1)
    mask = mask_patterns(1)
    x = torch.randn(B, C_IN, H, W, dtype=torch.float64)
    expected, _ = layer(x, mask)
    for clone in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert torch.equal(clone(x, mask)[0], expected)


def test_bf16_autocast_is_finite_and_close_to_fp32():
    layer = make_layer(5, stride=2, padding=2).float()
    mask = mask_patterns(1).float()
    x = torch.randn(B, C_IN, H, W)
    out32, new32 = layer(x, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out16, new16 = layer(x, mask)
    assert out16.dtype == torch.bfloat16 and torch.isfinite(out16).all()
    assert torch.equal(new16, new32) and new16.dtype == torch.float32
    torch.testing.assert_close(out16.float(), out32, atol=0.05, rtol=0.02)


def test_mixed_precision_uses_its_own_eps():
    # One soft mask value m = 1e-6 and a 1 x 1 kernel: out = m * m / (m + eps), so eps shows.
    layer = PartialConv2d(1, 1, 1, bias=False)
    nn.init.ones_(layer.weight)
    m = 1e-6
    mask = torch.full((1, 1, 1, 1), m)
    x = torch.full((1, 1, 1, 1), 1 / m)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = layer(x, mask)[0].float().item()
    assert layer(x, mask)[0].item() == pytest.approx(m * m / (m + 1e-8), rel=1e-4)
    assert mixed == pytest.approx(m * m / (m + 1e-6), rel=1e-2)


@pytest.mark.parametrize(
    "holes",
    [mask_from_config("irregular_thick"), CenterBoxMask(0.75)],
    ids=["irregular_thick", "center_box"],
)
def test_encoder_closes_every_hole(holes):
    # The U-Net's encoder at 256: 7x7/2, 5x5/2, 5x5/2, then 3x3/2 down to 2 x 2 (7 levels).
    levels = [(7, 3), (5, 2), (5, 2)] + [(3, 1)] * 4
    holes = holes(4, 256, 256, generator=torch.Generator().manual_seed(0))
    valid = 1 - holes
    x = torch.zeros_like(valid)
    remaining = []
    for kernel, padding in levels:
        x, valid = PartialConv2d(1, 1, kernel, 2, padding)(x, valid)
        remaining.append((valid < 1).sum().item())
    assert (holes > 0).any() and remaining[0] > 0
    assert valid.shape[-2:] == (2, 2) and torch.all(valid == 1), remaining


@pytest.mark.parametrize(("multi_channel", "mask_channels"), [(False, C_IN), (True, 1)])
def test_mask_of_the_wrong_shape_is_refused(multi_channel, mask_channels):
    layer = PartialConv2d(C_IN, C_OUT, 3, multi_channel=multi_channel)
    with pytest.raises(ValueError, match="multi_channel"):
        layer(torch.rand(2, C_IN, 8, 8), torch.ones(2, mask_channels, 8, 8))
    with pytest.raises(ValueError, match="multi_channel"):
        layer(torch.rand(2, C_IN, 8, 8), torch.ones(2, C_IN if multi_channel else 1, 8, 7))


def test_docstring_example():
    result = doctest.testmod(partial_conv)
    assert result.attempted > 0 and result.failed == 0
