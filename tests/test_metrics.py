"""Per-image metrics against numpy/skimage references; hole-ratio bins; binned aggregation."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from inpaintlab.metrics.bins import BIN_EDGES, BIN_NAMES, bin_index
from inpaintlab.metrics.image import (
    BinnedMetrics,
    hole_l1_per_image,
    psnr_per_image,
    ssim_per_image,
)


def smooth_images(batch: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """Random images with structure at several scales, in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, channels, size // 8, size // 8, generator=gen)
    fine = torch.rand(batch, channels, size, size, generator=gen)
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (0.8 * smooth + 0.2 * fine).clamp(0, 1)


def test_psnr_matches_numpy():
    target = smooth_images(3, 3, 16, seed=0)
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    a, b = pred.double().numpy(), target.double().numpy()
    expected = [10 * math.log10(1.0 / np.mean((a[i] - b[i]) ** 2)) for i in range(3)]
    np.testing.assert_allclose(psnr_per_image(pred, target).numpy(), expected, rtol=1e-5)
    halved = psnr_per_image(pred / 2, target / 2, data_range=0.5)
    torch.testing.assert_close(halved, psnr_per_image(pred, target))


def test_psnr_of_identical_images_is_capped():
    image = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(psnr_per_image(image, image), torch.full((2,), 100.0))


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_skimage(channels):
    target = smooth_images(3, channels, 48, seed=1)
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    ours = ssim_per_image(pred, target)
    for i in range(3):
        reference = structural_similarity(
            target[i].double().numpy(),
            pred[i].double().numpy(),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=0,
        )
        assert ours[i].item() == pytest.approx(reference, abs=1e-5)
    assert ours.shape == (3,)
    torch.testing.assert_close(ssim_per_image(target, target), torch.ones(3))


def test_hole_l1_matches_loop_and_is_nan_without_hole():
    torch.manual_seed(0)
    pred, target = torch.rand(3, 3, 6, 6), torch.rand(3, 3, 6, 6)
    mask = (torch.rand(3, 1, 6, 6) > 0.6).float()
    mask[2] = 0
    ours = hole_l1_per_image(pred, target, mask)
    for b in range(2):
        errors = [
            abs(pred[b, c, i, j].item() - target[b, c, i, j].item())
            for c in range(3)
            for i in range(6)
            for j in range(6)
            if mask[b, 0, i, j]
        ]
        assert ours[b].item() == pytest.approx(sum(errors) / len(errors), rel=1e-5)
    assert math.isnan(ours[2].item())


def test_bin_edges_and_names_agree():
    assert len(BIN_NAMES) == len(BIN_EDGES) - 1
    assert BIN_EDGES[0] == 0.0 and BIN_EDGES[-1] == 1.0


def test_bin_index_edges():
    ratios = torch.tensor([0.0, 0.05, 0.0999, 0.1, 0.15, 0.2, 0.3, 0.45, 0.59, 0.6, 0.99, 1.0])
    expected = [0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 6, 6]
    assert bin_index(ratios).tolist() == expected
    assert bin_index(ratios).dtype == torch.long


def masks_with_ratios(ratios: list[float], size: int) -> torch.Tensor:
    """B x 1 x size x size masks whose first round(r * size^2) pixels (row-major) are holes."""
    flat = torch.zeros(len(ratios), size * size)
    for i, ratio in enumerate(ratios):
        flat[i, : round(ratio * size * size)] = 1
    return flat.view(-1, 1, size, size)


def test_binned_metrics_per_bin_means():
    size = 20
    ratios = [0.0, 0.05, 0.25, 0.25, 0.7]
    errors = [0.1, 0.2, 0.3, 0.5, 0.4]
    target = torch.zeros(5, 3, size, size)
    pred = torch.tensor(errors).view(5, 1, 1, 1).expand(5, 3, size, size).contiguous()
    mask = masks_with_ratios(ratios, size)
    metric = BinnedMetrics()
    metric.update(pred[:2], target[:2], mask[:2])
    metric.update(pred[2:], target[2:], mask[2:])
    results = metric.compute()

    psnr = [-20 * math.log10(e) for e in errors]
    ssim = ssim_per_image(pred, target).tolist()
    groups = {"all": [0, 1, 2, 3, 4], "0-10": [0, 1], "20-30": [2, 3], "60+": [4]}
    expected = {}
    for group, members in groups.items():
        expected[f"count/{group}"] = len(members)
        expected[f"psnr/{group}"] = np.mean([psnr[i] for i in members])
        expected[f"ssim/{group}"] = np.mean([ssim[i] for i in members])
        holes = [100 * errors[i] for i in members if ratios[i] > 0]
        expected[f"hole_l1x100/{group}"] = np.mean(holes)
    assert results.keys() == expected.keys()
    for key, value in expected.items():
        assert results[key] == pytest.approx(value, rel=1e-5), key


def test_binned_metrics_omits_mean_without_any_hole_and_resets():
    metric = BinnedMetrics()
    image = torch.rand(2, 3, 16, 16)
    metric.update(image, image.flip(-1), torch.zeros(2, 1, 16, 16))
    results = metric.compute()
    assert results["count/0-10"] == 2
    assert "hole_l1x100/0-10" not in results and "psnr/0-10" in results
    metric.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert metric.compute() == {}


def test_per_image_records():
    metric = BinnedMetrics()
    target = smooth_images(3, 3, 16, seed=2)
    mask = masks_with_ratios([0.0, 0.5, 1.0], 16)
    metric.update(target.flip(-2), target, mask)
    records = metric.per_image_records()
    assert [r["bin"] for r in records] == ["0-10", "50-60", "60+"]
    assert [r["hole_ratio"] for r in records] == [0.0, 0.5, 1.0]
    psnr = psnr_per_image(target.flip(-2), target).tolist()
    assert [r["psnr"] for r in records] == pytest.approx(psnr)
    assert set(records[0]) == {"psnr", "ssim", "hole_l1x100", "hole_ratio", "bin"}
