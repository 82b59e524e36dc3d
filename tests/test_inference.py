"""Inpainter: any size for every model kind, exact known pixels, channels, safe loading."""

from __future__ import annotations

import math
import os
import warnings

import pytest
import torch
import torch.nn.functional as F

from inpaintlab.errors import CheckpointError, ConfigError, DataError
from inpaintlab.inference.inpainter import (
    FullMaskWarning,
    Inpainter,
    binary_mask,
    resize_mask,
    select_device,
)
from tests.helpers import fit, smooth_images
from tests.tiny_checkpoints import (
    CE_SIZE,
    KINDS,
    save_checkpoint,
    save_tiny_checkpoints,
    tiny_model,
)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return save_tiny_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="module")
def inpainters(checkpoints):
    return {kind: Inpainter.from_checkpoint(path, "cpu") for kind, path in checkpoints.items()}


def photo(height: int, width: int, channels: int = 3, batch: int = 1, seed: int = 0):
    return torch.rand(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))


def centred_hole(height: int, width: int, batch: int = 1) -> torch.Tensor:
    """A hole well inside the centre half, so that every model kind can fill it."""
    mask = torch.zeros(batch, 1, height, width)
    mask[..., height * 3 // 8 : height * 5 // 8, width * 3 // 8 : width * 5 // 8] = 1
    return mask


def assert_known_pixels_kept(result, image, mask):
    known = ~mask.bool().expand_as(image)
    assert result.shape == image.shape and result.dtype == image.dtype
    assert torch.equal(result[known], image[known])


@pytest.mark.parametrize("kind", KINDS)
def test_odd_sizes_keep_the_size_and_the_known_pixels(inpainters, kind):
    image, mask = photo(333, 517), centred_hole(333, 517)
    result = inpainters[kind](image, mask)
    assert_known_pixels_kept(result, image, mask)
    hole = mask.bool().expand_as(image)
    assert not torch.equal(result[hole], image[hole])
    assert result.min() >= 0 and result.max() <= 1


@pytest.mark.parametrize(
    ("kind", "side"),
    [("pconv", 64), ("edgeconnect", 48), *[(k, CE_SIZE) for k in KINDS if k.startswith("ce_")]],
)
def test_at_a_native_size_the_result_is_the_models_own_composite(inpainters, kind, side):
    image, mask = photo(side, side, batch=2), centred_hole(side, side, batch=2)
    expected = inpainters[kind].model(image, mask)
    assert torch.equal(inpainters[kind](image, mask), expected)


def test_fully_convolutional_models_fill_the_reflection_padded_image(inpainters):
    """PConv (multiple 8 at depth 3): the fill at 21 x 30 is the fill of the image mirrored
    out to 24 x 32, cropped back."""
    model = inpainters["pconv"].model
    image, mask = photo(21, 30), centred_hole(21, 30)
    padded = [F.pad(t, (0, 2, 0, 3), mode="reflect") for t in (image, mask)]
    with torch.no_grad():
        fill = model.inpaint(*padded)[..., :21, :30]
    expected = torch.where(mask.bool(), fill, image)
    assert torch.allclose(inpainters["pconv"](image, mask), expected, atol=1e-6)


def slow_any_hole_resize(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Each low-resolution pixel is a hole if the full-resolution pixels it overlaps are."""
    height, width = mask.shape[-2:]
    out = torch.zeros(mask.shape[0], 1, size, size)
    for i in range(size):
        rows = range(math.floor(i * height / size), math.ceil((i + 1) * height / size))
        for j in range(size):
            cols = range(math.floor(j * width / size), math.ceil((j + 1) * width / size))
            out[..., i, j] = mask[..., rows.start : rows.stop, cols.start : cols.stop].amax(
                (-2, -1)
            )
    return out


@pytest.mark.parametrize(("height", "width"), [(70, 45), (20, 13), (32, 32)])
def test_a_low_resolution_pixel_is_a_hole_if_any_part_of_it_is(height, width):
    mask = torch.rand(2, 1, height, width, generator=torch.Generator().manual_seed(1)) > 0.97
    mask = mask.float()
    assert torch.equal(resize_mask(mask, 16), slow_any_hole_resize(mask, 16))


def test_context_encoder_fill_is_its_low_resolution_output_resized_back(inpainters):
    model = inpainters["ce_random_region"].model
    image, mask = photo(64, 96), centred_hole(64, 96)
    small_image = F.interpolate(image, size=(CE_SIZE, CE_SIZE), mode="bilinear", antialias=True)
    with torch.no_grad():
        small_fill = model.inpaint(small_image, slow_any_hole_resize(mask, CE_SIZE))
    fill = F.interpolate(small_fill, size=(64, 96), mode="bilinear")
    expected = torch.where(mask.bool(), fill, image)
    assert torch.allclose(inpainters["ce_random_region"](image, mask), expected, atol=1e-6)


def test_centre_context_encoder_refuses_holes_outside_its_centre(inpainters):
    image = photo(90, 140)
    mask = torch.zeros(1, 1, 90, 140)
    mask[..., 2:10, 2:10] = 1
    with pytest.raises(DataError, match=r"centre of the image \(rows 22-67, columns 35-105") as err:
        inpainters["ce_center"](image, mask)
    assert "\n" not in str(err.value)
    assert inpainters["ce_random_region"](image, mask).shape == image.shape


def test_centre_context_encoder_refuses_a_full_mask_without_warning_first(inpainters):
    image = photo(64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FullMaskWarning)
        with pytest.raises(DataError, match="fills only the centre"):
            inpainters["ce_center"](image, torch.ones(1, 1, 64, 64))


def test_an_empty_mask_returns_the_image_without_running_the_model(inpainters, monkeypatch):
    inpainter = inpainters["pconv"]
    monkeypatch.setattr(inpainter.pipeline, "forward", lambda *a: pytest.fail("model was run"))
    image = photo(33, 41)
    result = inpainter(image, torch.zeros(1, 1, 33, 41))
    assert torch.equal(result, image) and result is not image


def test_a_full_mask_works_and_warns(inpainters):
    image = photo(40, 40)
    with pytest.warns(FullMaskWarning, match="whole image"):
        result = inpainters["edgeconnect"](image, torch.ones(1, 1, 40, 40))
    assert result.shape == image.shape and torch.isfinite(result).all()


def test_samples_of_a_batch_are_independent(inpainters):
    image, mask = photo(40, 56, batch=3), centred_hole(40, 56, batch=3)
    mask[1] = 0
    together = inpainters["pconv"](image, mask)
    assert torch.equal(together[1], image[1])
    alone = inpainters["pconv"](image[2:], mask[2:])
    assert torch.allclose(together[2:], alone, atol=1e-6)


def test_grey_photo_with_an_rgb_model_stays_grey(inpainters):
    image, mask = photo(37, 29, channels=1), centred_hole(37, 29)
    result = inpainters["pconv"](image, mask)
    assert_known_pixels_kept(result, image, mask)


def test_rgb_photo_with_a_grey_model_gets_a_grey_fill(inpainters):
    image, mask = photo(37, 29), centred_hole(37, 29)
    result = inpainters["pconv_grey"](image, mask)
    assert_known_pixels_kept(result, image, mask)
    hole = mask[0, 0].bool()
    assert torch.equal(result[0, 0][hole], result[0, 1][hole])
    assert torch.equal(result[0, 1][hole], result[0, 2][hole])


def test_dtype_is_kept_and_the_result_is_an_ordinary_tensor(inpainters):
    image, mask = photo(24, 24).double(), centred_hole(24, 24)
    result = inpainters["pconv"](image, mask)
    assert_known_pixels_kept(result, image, mask)
    assert not result.is_inference()
    result += 0  # callers may modify it in place


def test_results_are_deterministic(inpainters):
    image, mask = photo(45, 51), centred_hole(45, 51)
    for inpainter in inpainters.values():
        assert torch.equal(inpainter(image, mask), inpainter(image, mask))


@pytest.mark.parametrize(
    ("image_shape", "mask_shape"),
    [
        ((1, 3, 20, 20), (1, 1, 20, 21)),
        ((1, 2, 20, 20), (1, 1, 20, 20)),
        ((3, 20, 20), (1, 20, 20)),
    ],
)
def test_wrong_shapes_are_one_line_errors(inpainters, image_shape, mask_shape):
    with pytest.raises(DataError) as err:
        inpainters["pconv"](torch.rand(image_shape), torch.ones(mask_shape))
    assert "\n" not in str(err.value)


def test_binary_mask_thresholds_and_dilates_a_square():
    hole_map = torch.zeros(1, 1, 9, 9)
    hole_map[..., 4, 4] = 0.6
    hole_map[..., 0, 0] = 0.4
    assert binary_mask(hole_map).sum() == 1
    assert binary_mask(hole_map, threshold=0.3).sum() == 2
    dilated = binary_mask(hole_map, dilate=2)
    expected = torch.zeros(1, 1, 9, 9)
    expected[..., 2:7, 2:7] = 1
    assert torch.equal(dilated, expected)


def test_auto_device_is_cpu_without_cuda_and_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        select_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto") == torch.device("cuda")


def test_a_trainer_checkpoint_gives_the_trained_models_output(tmp_path):
    model = tiny_model("pconv").train()
    mask = centred_hole(64, 64, batch=2)
    trainer = fit(model, {"image": smooth_images(2), "mask": mask}, steps=1)
    trainer.save_checkpoint(tmp_path / "fitted.ckpt")
    inpainter = Inpainter.from_checkpoint(tmp_path / "fitted.ckpt", "cpu")
    image = photo(64, 64, batch=2)
    assert torch.equal(inpainter(image, mask), model.eval()(image, mask))
    assert inpainter.name == "fitted.ckpt"


class Payload:
    """Unpickling this runs a shell command (the classic malicious checkpoint)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_pickle_is_refused_without_running_its_payload(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.ckpt"
    checkpoint = {"state_dict": {}, "inpaintlab": {"model": "x"}, "hyper_parameters": {}}
    torch.save({**checkpoint, "payload": Payload(marker)}, path)
    with pytest.raises(CheckpointError) as err:
        Inpainter.from_checkpoint(path, "cpu")
    assert "\n" not in str(err.value) and not marker.exists()
    # the message explains the refusal and never suggests the unsafe way round it
    assert "could run code" in str(err.value) and "weights_only" not in str(err.value)
    torch.load(path, weights_only=False)  # what an unsafe loader would have done
    assert marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "missing", "foreign"])
def test_unusable_checkpoints_are_one_line_errors(checkpoints, tmp_path, damage):
    path = tmp_path / "model.ckpt"
    if damage == "truncated":
        path.write_bytes(checkpoints["pconv"].read_bytes()[:5000])
    elif damage == "foreign":
        torch.save(tiny_model("pconv").state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        Inpainter.from_checkpoint(path, "cpu")
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_checkpoint_of_a_saved_grey_model_reports_its_channels(checkpoints, tmp_path):
    path = save_checkpoint(tiny_model("edgeconnect", channels=1), tmp_path / "grey.ckpt")
    assert Inpainter.from_checkpoint(path, "cpu").channels == 1
    assert Inpainter.from_checkpoint(checkpoints["pconv_grey"], "cpu").channels == 1
    assert Inpainter.from_checkpoint(checkpoints["edgeconnect"], "cpu").channels == 3
