"""On-device augmentation: masks follow the image geometry, colour jitter touches the image only."""

from __future__ import annotations

import pytest
import torch

from inpaintlab.data.augment import Augmentation

SIZE = 48


def _coordinate_batch(batch: int = 8, size: int = SIZE) -> torch.Tensor:
    """Channel 0 is x / (W - 1), channel 1 is y / (H - 1): every pixel says where it came from."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    image = torch.stack([xs / (size - 1), ys / (size - 1), torch.full_like(xs, 0.5, dtype=float)])
    return image.float().expand(batch, -1, -1, -1).clone()


def _region_score(image: torch.Tensor) -> torch.Tensor:
    """A function of the source coordinates; the mask is the region where it is negative."""
    return image[:, 0:1] + 2 * image[:, 1:2] - 1.3


def _mask_of(image: torch.Tensor) -> torch.Tensor:
    return (_region_score(image) < 0).float()


@pytest.mark.parametrize(
    "options",
    [
        {"crop_p": 1.0, "crop_scale": (0.3, 0.6), "flip_p": 0.0},
        {"crop_p": 0.0, "flip_p": 1.0},
        {"crop_p": 0.0, "flip_p": 0.0, "rotation_p": 1.0, "rotation_degrees": 30.0},
        {"crop_p": 1.0, "flip_p": 0.5, "rotation_p": 1.0, "jitter_p": 0.0},
    ],
)
def test_mask_stays_aligned_with_image_content(options):
    torch.manual_seed(0)
    image = _coordinate_batch()
    out_image, out_mask = Augmentation(**options)(image, _mask_of(image))
    assert out_image.shape == image.shape and out_mask.shape == (8, 1, SIZE, SIZE)
    assert set(out_mask.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(out_image, image)  # the transform did something
    # the mask must still be the same function of the (moved) content; only pixels whose
    # content lies within about two source pixels of the region's edge may disagree, as the
    # image is resampled bilinearly and the mask by nearest neighbour
    disagree = out_mask != _mask_of(out_image)
    edge_distance = _region_score(out_image).abs()
    assert disagree.float().mean() < 0.03
    assert torch.all(edge_distance[disagree] < 2 * 3 / (SIZE - 1))


def test_horizontal_flip_matches_reference():
    image = torch.rand(3, 2, 5, 7)
    mask = (torch.rand(3, 1, 5, 7) > 0.5).float()
    out_image, out_mask = Augmentation(crop_p=0.0, flip_p=1.0)(image, mask)
    assert torch.equal(out_image, image.flip(-1)) and torch.equal(out_mask, mask.flip(-1))


def test_everything_off_is_identity():
    image = torch.rand(2, 3, 16, 16)
    mask = (torch.rand(2, 1, 16, 16) > 0.5).float()
    augment = Augmentation(crop_p=0.0, flip_p=0.0, rotation_p=0.0, jitter_p=0.0)
    out_image, out_mask = augment(image, mask)
    assert out_image is image and out_mask is mask
    assert augment(image) is image


@pytest.mark.parametrize("channels", [1, 3])
def test_colour_jitter_changes_image_but_not_mask(channels):
    torch.manual_seed(0)
    image = torch.rand(4, channels, 16, 16) * 0.5 + 0.25
    mask = (torch.rand(4, 1, 16, 16) > 0.5).float()
    augment = Augmentation(crop_p=0.0, flip_p=0.0, jitter_p=1.0, brightness=0.5, contrast=0.5)
    out_image, out_mask = augment(image, mask)
    assert out_image.shape == image.shape
    assert not torch.allclose(out_image, image) and torch.equal(out_mask, mask)
    assert out_image.min() >= 0 and out_image.max() <= 1


def test_one_channel_and_image_only_calls():
    torch.manual_seed(0)
    augment = Augmentation(rotation_p=1.0, jitter_p=1.0)
    for channels in (1, 3):  # one module serves both channel counts
        image = torch.rand(2, channels, 24, 24)
        assert augment(image).shape == image.shape
