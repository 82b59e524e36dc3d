"""The SSIM loss term: against a window-by-window reference and the evaluation's metric, where
its gradient goes, precision, and that it is wired into the Context Encoder's and
EdgeConnect's losses only when weighted."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

from inpaintlab.losses.edgeconnect import EdgeConnectInpaintLoss
from inpaintlab.losses.reconstruction import ContextEncoderLoss
from inpaintlab.losses.structural import ssim_map, structural_loss
from inpaintlab.metrics.image import ssim_per_image


def loop_ssim_map(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM at each 11 x 11 window inside the image, from its Gaussian-weighted moments."""
    offsets = torch.arange(-5, 6, dtype=torch.float64)
    g = torch.exp(-(offsets**2) / (2 * 1.5**2))
    window = torch.outer(g, g) / torch.outer(g, g).sum()
    batch, channels, height, width = pred.shape
    out = torch.zeros(batch, channels, height - 10, width - 10, dtype=torch.float64)
    for b, c, i, j in itertools.product(
        range(batch), range(channels), range(height - 10), range(width - 10)
    ):
        x = pred[b, c, i : i + 11, j : j + 11].double()
        y = target[b, c, i : i + 11, j : j + 11].double()
        mx, my = (window * x).sum(), (window * y).sum()
        vx = (window * x * x).sum() - mx**2
        vy = (window * y * y).sum() - my**2
        cov = (window * x * y).sum() - mx * my
        c1, c2 = 0.01**2, 0.03**2
        out[b, c, i, j] = (
            (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        )
    return out


def noisy_pair(shape: tuple[int, ...], seed: int = 0) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=generator)
    pred = (target + 0.2 * torch.randn(shape, generator=generator)).clamp(0, 1)
    return pred, target


@pytest.mark.parametrize("shape", [(2, 3, 16, 17), (1, 1, 13, 21)])
def test_ssim_map_matches_a_window_by_window_reference(shape):
    pred, target = noisy_pair(shape)
    assert torch.allclose(ssim_map(pred, target).double(), loop_ssim_map(pred, target), atol=1e-5)


def test_the_mean_of_the_ssim_map_is_the_evaluations_ssim():
    pred, target = noisy_pair((3, 3, 40, 33), seed=1)
    assert torch.allclose(
        ssim_map(pred, target).mean((1, 2, 3)), ssim_per_image(pred, target), atol=1e-5
    )


def test_the_term_is_zero_when_the_holes_are_right_whatever_lies_outside():
    pred, target = noisy_pair((2, 3, 24, 24), seed=2)
    mask = torch.zeros(2, 1, 24, 24)
    mask[..., 6:14, 8:20] = 1
    output = target * mask + pred * (1 - mask)
    assert structural_loss(output, target, mask) == 0
    assert structural_loss(pred, target, mask) > 0.05


def test_the_gradient_reaches_the_hole_pixels_only():
    pred, target = noisy_pair((1, 3, 24, 24), seed=3)
    mask = torch.zeros(1, 1, 24, 24)
    mask[..., 8:16, 8:16] = 1
    output = pred.clone().requires_grad_()
    structural_loss(output, target, mask).backward()
    assert output.grad[..., 8:16, 8:16].abs().min() > 0
    assert (output.grad * (1 - mask)).abs().max() == 0


def test_the_term_runs_in_fp32_under_bf16_autocast():
    pred, target = noisy_pair((2, 3, 32, 32), seed=4)
    mask = torch.ones(2, 1, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = structural_loss(pred.bfloat16(), target, mask)
    assert mixed.dtype == torch.float32
    assert math.isclose(mixed, structural_loss(pred.bfloat16().float(), target, mask), rel_tol=1e-6)


def test_descending_the_term_raises_the_evaluations_ssim():
    _, target = noisy_pair((1, 3, 32, 32), seed=5)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    fill = target.mean((2, 3), keepdim=True).expand_as(target).clone().requires_grad_()
    optimizer = torch.optim.Adam([fill], lr=0.02)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = structural_loss(fill, target, mask)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    composite = fill.detach() * mask + target * (1 - mask)
    before = target.mean((2, 3), keepdim=True) * mask + target * (1 - mask)
    assert losses[-1] < 0.5 * losses[0]
    assert ssim_per_image(composite, target) > ssim_per_image(before, target) + 0.1


def test_edgeconnect_adds_the_weighted_term_only_when_asked():
    pred, target = noisy_pair((2, 3, 16, 16), seed=6)
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    plain = EdgeConnectInpaintLoss(perceptual=0.0, style=0.0)(pred, target, mask)
    weighted = EdgeConnectInpaintLoss(perceptual=0.0, style=0.0, ssim=0.5)(pred, target, mask)
    assert "ssim" not in plain
    assert torch.equal(weighted["ssim"], structural_loss(pred, target, mask))
    assert torch.allclose(weighted["total"], plain["total"] + 0.5 * weighted["ssim"])


@pytest.mark.parametrize("setting", ["center", "random_region"])
def test_the_context_encoder_adds_the_weighted_term_only_when_asked(setting):
    pred, target = noisy_pair((2, 3, 16, 16), seed=7)
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 2:14, 2:14] = 1
    plain = ContextEncoderLoss(setting)(pred, target, mask)
    weighted = ContextEncoderLoss(setting, ssim=2.0)(pred, target, mask)
    assert "ssim" not in plain
    assert torch.equal(weighted["ssim"], structural_loss(pred, target, mask))
    assert torch.allclose(weighted["total"], plain["total"] + 2.0 * weighted["ssim"])
