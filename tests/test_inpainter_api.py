"""`from inpaintlab import Inpainter` on the images users hold: PIL images, numpy arrays, image
files and tensors, each given back in its own type with its known pixels unchanged."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from inpaintlab import Inpainter
from inpaintlab.errors import DataError
from tests.tiny_checkpoints import tiny_model

HEIGHT, WIDTH = 30, 44


@pytest.fixture(scope="module")
def inpainter() -> Inpainter:
    return Inpainter(tiny_model("pconv"), "tiny", torch.device("cpu"))


def photo(channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (HEIGHT, WIDTH, channels) if channels > 1 else (HEIGHT, WIDTH)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def holes() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[8:20, 10:30] = True
    return mask


def assert_known_pixels_kept(result: np.ndarray, original: np.ndarray) -> None:
    known = ~holes()
    assert np.array_equal(result[known], original[known])
    assert not np.array_equal(result[~known], original[~known])


@pytest.mark.parametrize("channels", [1, 3])
def test_a_uint8_array_comes_back_as_a_uint8_array_of_its_shape(inpainter, channels):
    image = photo(channels)
    result = inpainter(image, holes())
    assert isinstance(result, np.ndarray)
    assert result.shape == image.shape and result.dtype == np.uint8
    assert_known_pixels_kept(result, image)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_arrays_keep_their_dtype_and_known_values_bit_for_bit(inpainter, dtype):
    image = photo().astype(dtype) / 255
    result = inpainter(image, holes().astype(np.float32))
    assert result.dtype == dtype and result.shape == image.shape
    assert_known_pixels_kept(result, image)
    assert result.min() >= 0 and result.max() <= 1


def test_pil_images_and_files_come_back_as_pil_images(inpainter, tmp_path):
    image, mask = Image.fromarray(photo()), Image.fromarray(holes().astype(np.uint8) * 255)
    from_pil = inpainter(image, mask)
    image.save(tmp_path / "photo.png")
    mask.save(tmp_path / "mask.png")
    from_files = inpainter(tmp_path / "photo.png", str(tmp_path / "mask.png"))
    for result in (from_pil, from_files):
        assert isinstance(result, Image.Image)
        assert result.mode == "RGB" and result.size == (WIDTH, HEIGHT)
        assert_known_pixels_kept(np.asarray(result), photo())
    assert np.array_equal(np.asarray(from_pil), np.asarray(from_files))
    # the same fill whichever way the photo came
    assert np.array_equal(np.asarray(from_pil), inpainter(photo(), holes()))


def test_a_grey_pil_image_stays_grey(inpainter):
    result = inpainter(Image.fromarray(photo(1)), holes())
    assert result.mode == "L" and result.size == (WIDTH, HEIGHT)


def test_a_tensor_takes_a_mask_of_any_kind(inpainter):
    image = torch.from_numpy(photo()).permute(2, 0, 1)[None].float() / 255
    from_tensor_mask = inpainter(image, torch.from_numpy(holes())[None, None].float())
    from_array_mask = inpainter(image, holes())
    assert isinstance(from_array_mask, torch.Tensor)
    assert torch.equal(from_tensor_mask, from_array_mask)


@pytest.mark.parametrize(
    ("image", "mask", "message"),
    [
        (photo().astype(np.float32), holes(), "values in \\[0, 1\\]: divide by 255"),
        (photo(4), holes(), "H x W or H x W x 1\\|3"),
        (photo(), holes()[:-1], "the mask is 29x44 but the photo is 30x44"),
        ([[0, 1]], holes(), "cannot inpaint a list"),
        (photo().astype(np.int64), holes(), "int64 cannot be read"),
        (photo(), np.zeros((HEIGHT, WIDTH, 3)), "H x W or H x W x 1"),
    ],
)
def test_what_cannot_be_read_is_one_clear_error(inpainter, image, mask, message):
    with pytest.raises(DataError, match=message):
        inpainter(image, mask)


def test_importing_the_package_does_not_load_lightning():
    code = "import inpaintlab, sys; print('pytorch_lightning' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
