"""Everything that is not a learned layer computes the same values under bf16 autocast as in
fp32: metrics, Canny, masks, augmentation, compositing, loss statistics and weight averages."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from skimage import data as skimage_data
from torch.utils.data import DataLoader

from inpaintlab.data.augment import Augmentation
from inpaintlab.data.edges import EdgeDetector
from inpaintlab.data.masks import FreeFormMask, ScratchMask
from inpaintlab.evaluation.methods import build_methods
from inpaintlab.losses.perceptual import gram_matrix
from inpaintlab.losses.total_variation import total_variation
from inpaintlab.metrics.edges import edge_precision_recall
from inpaintlab.metrics.image import BinnedMetrics, image_scores, ssim_per_image
from inpaintlab.models.ema import WeightAverage
from inpaintlab.ops.compositing import composite
from tests.tiny_checkpoints import save_checkpoint, tiny_model

BF16 = {"device_type": "cpu", "dtype": torch.bfloat16}


def under_autocast(fn, *args, **kwargs):
    with torch.autocast(**BF16):
        return fn(*args, **kwargs)


def astronaut_with_a_hole() -> tuple[torch.Tensor, torch.Tensor]:
    """A 128 px crop of skimage's astronaut and the same crop with a 40 x 40 hole filled
    with its mean colour (the case where bf16 SSIM collapsed to -0.09)."""
    crop = skimage_data.astronaut()[:256:2, 128:384:2].astype(np.float32) / 255
    target = torch.from_numpy(crop).permute(2, 0, 1)[None].contiguous()
    pred = target.clone()
    pred[..., 44:84, 44:84] = target.mean((2, 3), keepdim=True)
    return pred, target


def test_ssim_of_the_astronaut_case_ignores_autocast():
    pred, target = astronaut_with_a_hole()
    expected = ssim_per_image(pred, target)
    assert 0.8 < float(expected) < 0.95
    assert torch.allclose(under_autocast(ssim_per_image, pred, target), expected, atol=1e-6)
    bf16_inputs = (pred.bfloat16(), target.bfloat16())
    assert torch.allclose(under_autocast(ssim_per_image, *bf16_inputs), expected, atol=5e-3)


def test_every_image_score_ignores_autocast():
    pred, target = astronaut_with_a_hole()
    mask = torch.zeros(1, 1, 128, 128)
    mask[..., 44:84, 44:84] = 1
    expected = image_scores(pred, target, mask)
    for name, value in under_autocast(image_scores, pred, target, mask).items():
        assert value.dtype == torch.float32
        assert torch.allclose(value, expected[name], atol=1e-6), name


def test_canny_and_edge_accuracy_ignore_autocast():
    image, _ = astronaut_with_a_hole()
    detector = EdgeDetector(sigma=2.0)
    expected = detector(image)
    edges = under_autocast(detector, image)
    assert edges.dtype == torch.float32
    assert torch.equal(edges, expected)
    assert expected.sum() > 100  # the photo has edges to lose
    flipped = expected.flip(-1)
    assert under_autocast(edge_precision_recall, flipped, expected) == edge_precision_recall(
        flipped, expected
    )


@pytest.mark.parametrize("generator", [FreeFormMask(), ScratchMask()])
def test_mask_generators_ignore_autocast(generator):
    expected = generator(4, 64, 64, generator=torch.Generator().manual_seed(0))
    masks = under_autocast(generator, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(masks, expected)


def test_augmentation_ignores_autocast():
    image, _ = astronaut_with_a_hole()
    augment = Augmentation(rotation_p=1.0, jitter_p=1.0)
    torch.manual_seed(0)
    expected = augment(image)
    torch.manual_seed(0)
    augmented = under_autocast(augment, image)
    assert torch.allclose(augmented.float(), expected, atol=1e-6)


def test_compositing_keeps_known_pixels_of_a_half_precision_prediction_exact():
    image, _ = astronaut_with_a_hole()
    mask = torch.zeros(1, 1, 128, 128)
    mask[..., :10, :10] = 1
    out = under_autocast(composite, torch.rand_like(image).bfloat16(), image, mask)
    assert out.dtype == torch.float32
    assert torch.equal(out[..., 20:, 20:], image[..., 20:, 20:])


def test_loss_statistics_run_in_fp32():
    # bf16 activations as a network under autocast returns them; sums of their products or
    # differences must not be rounded to bf16 again
    features = (torch.rand(2, 8, 16, 16) + 10).bfloat16()
    gram = under_autocast(gram_matrix, features)
    assert gram.dtype == torch.float32
    assert torch.allclose(gram, gram_matrix(features.float()), rtol=1e-6)
    image = astronaut_with_a_hole()[0].bfloat16()
    tv = under_autocast(total_variation, image)
    assert tv.dtype == torch.float32
    assert torch.allclose(tv, total_variation(image.float()), rtol=1e-6)


def test_weight_averages_ignore_autocast():
    net = torch.nn.Linear(4, 4)
    reference = WeightAverage({"net": net}, decay=0.9)
    averaged = WeightAverage({"net": net}, decay=0.9)
    with torch.no_grad():
        net.weight.add_(1.0)
    reference.update({"net": net})
    under_autocast(averaged.update, {"net": net})
    for mine, theirs in zip(averaged.parameters(), reference.parameters(), strict=True):
        assert torch.equal(mine, theirs)


def test_a_bf16_validation_epoch_logs_what_the_evaluation_scores(tmp_path):
    """val/ssim/all of a bf16-mixed validation epoch equals the fp32 evaluation of the same
    checkpoint (up to the network's own bf16 rounding)."""
    model = tiny_model("pconv")
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(4, 3, 8, 8, generator=g)
    image = torch.nn.functional.interpolate(coarse, size=64, mode="bicubic").clamp(0, 1)
    mask = FreeFormMask()(4, 64, 64, generator=g)
    trainer = pl.Trainer(
        precision="bf16-mixed",
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.validate(model, DataLoader([{"image": image, "mask": mask}], batch_size=None))
    logged = trainer.callback_metrics
    path = save_checkpoint(model, tmp_path / "pconv.ckpt")
    (method,) = build_methods([f"ckpt:{path}"], torch.device("cpu")).values()
    evaluated = BinnedMetrics()
    evaluated.update(method(image, mask), image, mask)
    expected = evaluated.compute()
    assert abs(float(logged["val/ssim/all"]) - expected["ssim/all"]) < 2e-3
    assert abs(float(logged["val/psnr/all"]) - expected["psnr/all"]) < 0.05
