"""Canny edge maps: where edges fall, sigma handling, batching and masking."""

import math

import kornia
import pytest
import torch
import torch.nn.functional as F

from inpaintlab.data import edges as edges_module
from inpaintlab.data.edges import EdgeDetector, greyscale, hysteresis, mask_edges
from inpaintlab.errors import ConfigError, DataError
from inpaintlab.ops.growth import neighbourhood_max

SIZE = 48
LOW, HIGH = 16, 32  # the bright square spans rows and columns [LOW, HIGH)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def square_image(channels: int = 3) -> torch.Tensor:
    """A bright square on a dark background, 1 x C x SIZE x SIZE."""
    image = torch.full((1, channels, SIZE, SIZE), 0.1)
    image[..., LOW:HIGH, LOW:HIGH] = 0.8
    return image


def noise_images(n: int, size: int = 40, seed: int = 0) -> torch.Tensor:
    """Random colour blocks (8 x 8 of them) plus fine noise: edges at every scale."""
    gen = torch.Generator().manual_seed(seed)
    blocks = F.interpolate(torch.rand(n, 3, 8, 8, generator=gen), size=size, mode="nearest")
    return 0.8 * blocks + 0.2 * torch.rand(n, 3, size, size, generator=gen)


def reference_edges(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """kornia's own Canny with hysteresis, kernel 2 * ceil(4 sigma) + 1."""
    size = 2 * math.ceil(4 * sigma) + 1
    return kornia.filters.canny(greyscale(image), 0.1, 0.2, size, (sigma, sigma))[1]


def square_band(width: int) -> torch.Tensor:
    """Pixels within `width` px (chessboard distance) of the square's border."""
    outer = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    outer[LOW - width : HIGH + width, LOW - width : HIGH + width] = True
    inner = torch.zeros_like(outer)
    inner[LOW + width : HIGH - width, LOW + width : HIGH - width] = True
    return outer & ~inner


def test_square_edges_trace_its_border_and_nothing_else():
    edges = EdgeDetector(sigma=2.0)(square_image())[0, 0].bool()
    assert not (edges & ~square_band(2)).any()
    sides = LOW + 3, HIGH - 3  # each side's rows or columns away from the rounded corners
    top = edges[LOW - 2 : LOW + 2, sides[0] : sides[1]].any(0)
    bottom = edges[HIGH - 2 : HIGH + 2, sides[0] : sides[1]].any(0)
    left = edges[sides[0] : sides[1], LOW - 2 : LOW + 2].any(1)
    right = edges[sides[0] : sides[1], HIGH - 2 : HIGH + 2].any(1)
    assert top.all() and bottom.all() and left.all() and right.all()


@pytest.mark.parametrize("device", DEVICES)
def test_output_is_binary_float_on_the_input_device(device):
    image = noise_images(3).to(device)
    edges = EdgeDetector(sigma=0)(image, torch.Generator(device).manual_seed(0))
    assert edges.shape == (3, 1, 40, 40)
    assert edges.dtype == torch.float32 and edges.device.type == device
    assert set(edges.unique().tolist()) == {0.0, 1.0}


def test_grey_rgb_and_single_channel_give_the_same_edges():
    grey = noise_images(2)[:, :1]
    detector = EdgeDetector(sigma=1.0)
    assert torch.equal(detector(grey.expand(-1, 3, -1, -1)), detector(grey))


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_matches_kornia_canny_with_its_own_hysteresis(sigma):
    images = noise_images(4, size=64)
    assert torch.equal(EdgeDetector(sigma=sigma)(images), reference_edges(images, sigma))


def test_hysteresis_keeps_weak_chains_touching_a_strong_pixel_only():
    candidates = torch.zeros(1, 1, 5, 40)
    candidates[..., 1, :] = 0.5  # a long weak chain joined to a strong pixel at its end
    candidates[..., 1, 39] = 1.0
    candidates[..., 3, 5:30] = 0.5  # a weak chain with no strong pixel
    expected = torch.zeros_like(candidates)
    expected[..., 1, :] = 1.0
    assert torch.equal(hysteresis(candidates), expected)


def test_larger_sigma_finds_fewer_edges_in_noise():
    image = noise_images(1, size=64)
    counts = [EdgeDetector(sigma=s)(image).sum().item() for s in (1.0, 2.0, 3.0, 4.0)]
    assert counts == sorted(counts, reverse=True) and len(set(counts)) == 4


def test_random_sigma_is_reproducible_from_the_generator():
    images = noise_images(8)
    detector = EdgeDetector(sigma=0)
    first = detector(images, torch.Generator().manual_seed(3))
    again = detector(images, torch.Generator().manual_seed(3))
    other = detector(images, torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_random_sigma_batch_equals_each_image_alone_at_one_of_the_four_sigmas():
    images = noise_images(12)
    batch = EdgeDetector(sigma=0)(images, torch.Generator().manual_seed(0))
    used = []
    for image, edges in zip(images, batch, strict=True):
        alone = [reference_edges(image[None], s)[0] for s in (1.0, 2.0, 3.0, 4.0)]
        matches = [s for s, ref in zip((1, 2, 3, 4), alone, strict=True) if torch.equal(edges, ref)]
        assert len(matches) == 1
        used += matches
    assert len(set(used)) >= 3


def test_random_sigma_makes_at_most_four_canny_calls(monkeypatch):
    sizes = []

    def counting_canny(*args, **kwargs):
        sizes.append(args[3])
        return kornia.filters.canny(*args, **kwargs)

    monkeypatch.setattr(edges_module, "canny", counting_canny)
    EdgeDetector(sigma=0)(noise_images(16, size=16), torch.Generator().manual_seed(0))
    assert len(sizes) <= 4
    assert set(sizes) <= {9, 17, 25, 31}  # 2 * ceil(4 sigma) + 1, capped at 2 * 16 - 1


def test_kernel_size_can_be_fixed(monkeypatch):
    sizes = []

    def recording_canny(*args, **kwargs):
        sizes.append(args[3])
        return kornia.filters.canny(*args, **kwargs)

    monkeypatch.setattr(edges_module, "canny", recording_canny)
    EdgeDetector(sigma=3.0, kernel_size=7)(noise_images(1))
    EdgeDetector(sigma=3.0)(noise_images(1))
    assert sizes == [7, 25]


def test_images_smaller_than_the_kernel_work():
    edges = EdgeDetector(sigma=4.0)(noise_images(2, size=8))
    assert edges.shape == (2, 1, 8, 8)


def test_mask_edges_removes_edges_in_holes_only():
    edges = EdgeDetector(sigma=2.0)(square_image())
    mask = torch.zeros_like(edges)
    mask[..., :, : SIZE // 2] = 1.0
    masked = mask_edges(edges, mask)
    assert masked[mask == 1].sum() == 0
    assert torch.equal(masked[mask == 0], edges[mask == 0])
    assert masked.sum() > 0 and edges[mask == 1].sum() > 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sigma": -1.0},
        {"low_threshold": 0.3, "high_threshold": 0.2},
        {"low_threshold": 0.0},
        {"kernel_size": 4},
    ],
)
def test_bad_settings_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        EdgeDetector(**kwargs)


def test_four_channel_images_raise_data_error():
    with pytest.raises(DataError):
        EdgeDetector()(torch.rand(1, 4, 8, 8))


def test_greyscale_weights_rgb_by_luminance():
    image = torch.rand(2, 3, 4, 4)
    expected = 0.299 * image[:, :1] + 0.587 * image[:, 1:2] + 0.114 * image[:, 2:]
    assert torch.allclose(greyscale(image), expected, atol=1e-6)
    assert torch.equal(greyscale(image[:, :1]), image[:, :1])


@pytest.mark.parametrize("shape", [(2, 1, 1, 1), (2, 3, 1, 7), (1, 1, 6, 1), (3, 2, 37, 53)])
def test_neighbourhood_max_is_the_3x3_max_pooling(shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    assert torch.equal(neighbourhood_max(x), F.max_pool2d(x, 3, stride=1, padding=1))
