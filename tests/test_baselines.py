"""Classical baselines: known pixels untouched, holes filled sensibly, grey images, edge masks."""

import pytest
import torch

from inpaintlab.errors import ConfigError
from inpaintlab.evaluation.baselines import BASELINES, ClassicalInpainter


def gradient_image(channels: int, size: int = 40) -> torch.Tensor:
    """1 x C x size x size linear ramps in different directions per channel."""
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    ramps = torch.stack([x, y, 0.25 + 0.5 * (1 - x) * 0.5 + 0.25 * y])
    return ramps[:channels].unsqueeze(0)


def box_mask(batch: int, size: int, top: int, left: int, side: int) -> torch.Tensor:
    mask = torch.zeros(batch, 1, size, size)
    mask[..., top : top + side, left : left + side] = 1
    return mask


@pytest.mark.parametrize("method", BASELINES)
@pytest.mark.parametrize("channels", [1, 3])
def test_known_pixels_are_bit_identical_and_holes_change(method, channels):
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, channels, 32, 32, generator=generator)
    mask = (torch.rand(2, 1, 32, 32, generator=generator) > 0.8).float()
    out = ClassicalInpainter(method)(image, mask)
    assert out.shape == image.shape and out.dtype == image.dtype
    known = ~mask.bool().expand_as(image)
    assert torch.equal(out[known], image[known])
    assert not torch.equal(out[~known], image[~known])
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("method", BASELINES)
@pytest.mark.parametrize("channels", [1, 3])
def test_small_hole_in_a_smooth_gradient_is_filled_close_to_the_truth(method, channels):
    image = gradient_image(channels)
    mask = box_mask(1, 40, top=16, left=18, side=6)
    out = ClassicalInpainter(method, radius=3)(image, mask)
    hole = mask.bool().expand_as(image)
    error = (out - image)[hole].abs()
    # a grey fill of the hole would be off by about 0.2 on average
    assert error.mean() < 0.02 and error.max() < 0.06


def test_biharmonic_reproduces_a_linear_ramp_almost_exactly():
    image = gradient_image(3)
    mask = box_mask(1, 40, top=10, left=10, side=8)
    out = ClassicalInpainter("biharmonic")(image, mask)
    torch.testing.assert_close(out, image, atol=1e-4, rtol=0)


def test_a_mask_without_holes_returns_the_image_and_a_full_mask_gets_grey():
    image = torch.rand(2, 3, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    mask[1] = 1
    for method in BASELINES:
        out = ClassicalInpainter(method)(image, mask)
        assert torch.equal(out[0], image[0])
        assert torch.equal(out[1], torch.full_like(image[1], 0.5))


def test_radius_changes_the_opencv_fill():
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    mask = box_mask(1, 32, top=8, left=8, side=12)
    small = ClassicalInpainter("telea", radius=1)(image, mask)
    large = ClassicalInpainter("telea", radius=9)(image, mask)
    assert not torch.equal(small, large)


def test_unknown_method_and_bad_radius_are_config_errors():
    with pytest.raises(ConfigError, match="telea, navier_stokes, biharmonic"):
        ClassicalInpainter("photoshop")
    with pytest.raises(ConfigError, match="radius"):
        ClassicalInpainter("telea", radius=0)
