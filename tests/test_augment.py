"""On-device augmentation: the geometry of crops and rotations read back from images whose
pixels say where they came from, the exact flip, colour jitter's ranges, the probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from inpaintlab.data.augment import Augmentation

SIZE = 48


def _coordinate_batch(batch: int = 8, height: int = SIZE, width: int = SIZE) -> torch.Tensor:
    """Channel 0 is x in -1..1 at pixel centres, channel 1 is y: each pixel says where it is."""
    ys = (torch.arange(height) + 0.5) / height * 2 - 1
    xs = (torch.arange(width) + 0.5) / width * 2 - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    image = torch.stack([grid_x, grid_y, torch.zeros_like(grid_x)])
    return image.expand(batch, -1, -1, -1).clone()


def _affine_fit(out: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares A (2 x 3) with source = A [x y 1] over the kept output pixels of one
    image, and the largest residual."""
    target = _coordinate_batch(1, *out.shape[-2:])[0]
    design = torch.stack([target[0][keep], target[1][keep], torch.ones(int(keep.sum()))], 1)
    source = torch.stack([out[0][keep], out[1][keep]], 1)
    solution = torch.linalg.lstsq(design.double(), source.double()).solution
    residual = (design.double() @ solution - source.double()).abs().max()
    return solution.T.float(), residual


@pytest.mark.parametrize(("height", "width"), [(SIZE, SIZE), (32, 64)])
def test_a_resized_crop_is_an_axis_aligned_window_within_the_scale_and_ratio(height, width):
    torch.manual_seed(0)
    image = _coordinate_batch(16, height, width)
    out = Augmentation(crop_p=1.0, crop_scale=(0.3, 0.6), flip_p=0.0)(image)
    assert out.shape == image.shape
    # half a pixel beyond the outer pixel centres, bilinear sampling meets the reflection
    inner = torch.zeros(height, width, dtype=torch.bool)
    inner[1:-1, 1:-1] = True
    for sample in out:
        matrix, residual = _affine_fit(sample, inner)
        assert residual < 1e-4
        assert abs(matrix[0, 1]) < 1e-4 and abs(matrix[1, 0]) < 1e-4  # no rotation or shear
        crop_w, crop_h = matrix[0, 0].item(), matrix[1, 1].item()  # fractions of the sides
        assert 0.3 - 1e-4 <= crop_w * crop_h <= 0.6 + 1e-4
        assert 0.75 - 1e-3 <= (crop_w * width) / (crop_h * height) <= 4 / 3 + 1e-3
        # the window lies inside the image
        assert sample[:2].min() >= -1 and sample[:2].max() <= 1


def test_a_rotation_turns_the_image_about_its_centre_within_the_angle():
    torch.manual_seed(0)
    image = _coordinate_batch(16, 32, 64)
    out = Augmentation(crop_p=0.0, flip_p=0.0, rotation_p=1.0, rotation_degrees=30.0)(image)
    target = _coordinate_batch(1, 32, 64)[0]
    # pixels within a quarter of the height of the centre never reach a border when turned
    pixels_x, pixels_y = target[0] * 32, target[1] * 16
    inner = pixels_x**2 + pixels_y**2 < 8**2
    angles = []
    for sample in out:
        matrix, residual = _affine_fit(sample, inner)
        assert residual < 1e-4
        assert matrix[:, 2].abs().max() < 1e-4  # about the centre
        # in pixel units the linear part is a rotation
        linear = torch.diag(torch.tensor([32.0, 16.0])) @ matrix[:, :2]
        linear = linear @ torch.diag(torch.tensor([1 / 32, 1 / 16]))
        torch.testing.assert_close(linear @ linear.T, torch.eye(2), atol=1e-4, rtol=0)
        angles.append(math.degrees(math.atan2(linear[1, 0], linear[0, 0])))
    assert max(abs(angle) for angle in angles) <= 30.0 + 1e-3
    assert min(angles) < -5 and max(angles) > 5  # both directions occur


def test_reflection_fills_the_corners_a_rotation_uncovers():
    torch.manual_seed(0)
    image = torch.rand(4, 3, SIZE, SIZE) * 0.5 + 0.5  # no black anywhere
    out = Augmentation(crop_p=0.0, flip_p=0.0, rotation_p=1.0, rotation_degrees=30.0)(image)
    assert out.min() >= 0.5 - 1e-6


def test_horizontal_flip_matches_reference():
    image = torch.rand(3, 2, 5, 7)
    assert torch.equal(Augmentation(crop_p=0.0, flip_p=1.0)(image), image.flip(-1))


def test_everything_off_is_identity():
    image = torch.rand(2, 3, 16, 16)
    augment = Augmentation(crop_p=0.0, flip_p=0.0, rotation_p=0.0, jitter_p=0.0)
    assert augment(image) is image


@pytest.mark.parametrize("probability", [0.25, 0.5])
def test_each_transform_picks_images_with_its_probability(probability):
    torch.manual_seed(0)
    image = torch.rand(2000, 1, 4, 6)
    flipped = Augmentation(crop_p=0.0, flip_p=probability)(image)
    picked = (flipped != image).flatten(1).any(1).float().mean().item()
    assert abs(picked - probability) < 0.04


def test_colour_jitter_with_zero_strengths_changes_nothing():
    torch.manual_seed(0)
    image = torch.rand(4, 3, 16, 16)
    augment = Augmentation(
        crop_p=0.0, flip_p=0.0, jitter_p=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0
    )
    torch.testing.assert_close(augment(image), image, atol=1e-5, rtol=0)


def test_brightness_scales_each_image_by_one_factor_in_its_range():
    torch.manual_seed(0)
    image = torch.rand(16, 1, 8, 8) * 0.5 + 0.1  # never clipped at 0.5 strength
    augment = Augmentation(crop_p=0.0, flip_p=0.0, jitter_p=1.0, brightness=0.5, contrast=0.0)
    factor = (augment(image) / image).flatten(1)
    torch.testing.assert_close(factor.amax(1), factor.amin(1), atol=1e-5, rtol=0)
    assert factor.min() >= 0.5 - 1e-5 and factor.max() <= 1.5 + 1e-5
    assert factor.std(0).max() > 0  # each image draws its own


@pytest.mark.parametrize("channels", [1, 3])
def test_colour_jitter_stays_within_the_pixel_range(channels):
    torch.manual_seed(0)
    image = torch.rand(8, channels, 16, 16)
    augment = Augmentation(crop_p=0.0, flip_p=0.0, jitter_p=1.0, brightness=0.5, contrast=0.5)
    out = augment(image)
    assert out.shape == image.shape and not torch.allclose(out, image)
    assert out.min() >= 0 and out.max() <= 1


def test_one_module_serves_every_channel_count_and_size():
    torch.manual_seed(0)
    augment = Augmentation(rotation_p=1.0, jitter_p=1.0)
    for channels, size in ((1, 24), (3, 24), (3, 40)):
        image = torch.rand(2, channels, size, size)
        assert augment(image).shape == image.shape
