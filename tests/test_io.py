"""Image decoding: every pixel format to uint8 C x H x W, EXIF orientation, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from inpaintlab.data.io import load_image, save_image
from inpaintlab.errors import DataError


def _rgb_array(height: int = 6, width: int = 10) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_rgb_png_round_trips_exactly(tmp_path):
    array = _rgb_array()
    Image.fromarray(array).save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    assert image.dtype == torch.uint8 and image.shape == (3, 6, 10)
    assert torch.equal(image, torch.from_numpy(array).permute(2, 0, 1))


def test_greyscale_is_replicated_to_three_channels(tmp_path):
    grey = _rgb_array()[:, :, 0]
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    image = load_image(tmp_path / "g.png", channels=3)
    assert image.shape == (3, 6, 10)
    for channel in image:
        assert torch.equal(channel, torch.from_numpy(grey))
    assert torch.equal(load_image(tmp_path / "g.png", channels=1)[0], torch.from_numpy(grey))


def test_one_channel_is_luminance(tmp_path):
    array = np.zeros((2, 3, 3), dtype=np.uint8)
    array[..., 0] = 200  # pure red: ITU-R 601 luma is 0.299 * 200
    Image.fromarray(array).save(tmp_path / "red.png")
    image = load_image(tmp_path / "red.png", channels=1)
    assert image.shape == (1, 2, 3)
    assert torch.all((image.float() - 0.299 * 200).abs() <= 1)


def test_rgba_drops_alpha(tmp_path):
    array = _rgb_array()
    alpha = np.zeros(array.shape[:2], dtype=np.uint8)  # fully transparent: colours must survive
    Image.fromarray(np.dstack([array, alpha]), mode="RGBA").save(tmp_path / "a.png")
    assert torch.equal(load_image(tmp_path / "a.png"), torch.from_numpy(array).permute(2, 0, 1))


def test_palette_image_uses_palette_colours(tmp_path):
    palette_image = Image.new("P", (4, 2))
    palette_image.putpalette([0, 0, 0, 10, 200, 30] + [0] * (256 * 3 - 6))
    palette_image.putpixel((1, 0), 1)
    palette_image.save(tmp_path / "p.png")
    image = load_image(tmp_path / "p.png")
    assert image[:, 0, 1].tolist() == [10, 200, 30]
    assert image[:, 1, 1].tolist() == [0, 0, 0]


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    image = load_image(tmp_path / "deep.png", channels=1)
    assert image.dtype == torch.uint8
    assert image[0, 0].tolist() == [0, 1, 128, 255]
    assert load_image(tmp_path / "deep.png").shape == (3, 1, 4)


def test_float_image_is_scaled(tmp_path):
    values = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    Image.fromarray(values, mode="F").save(tmp_path / "f.tif")
    assert load_image(tmp_path / "f.tif", channels=1)[0, 0].tolist() == [0, 128, 255]
    Image.fromarray(values * 1000 + 10, mode="F").save(tmp_path / "wide.tif")
    assert load_image(tmp_path / "wide.tif", channels=1)[0, 0].tolist() == [0, 128, 255]


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((4, 8, 3), dtype=np.uint8)
    array[0, 0] = 255  # a bright top-left corner, to follow through the rotation
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(array).save(tmp_path / "r.jpg", exif=exif, quality=100)
    image = load_image(tmp_path / "r.jpg")
    assert image.shape == (3, 8, 4)
    # the stored top-left corner ends up top-right once the image is upright
    assert image[:, 0, -1].float().mean() > 200 and image[:, 0, 0].float().mean() < 50


def test_cmyk_is_converted(tmp_path):
    Image.new("CMYK", (3, 2), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    image = load_image(tmp_path / "c.jpg")
    assert image.shape == (3, 2, 3)
    assert image[0].float().mean() > 200 and image[1:].float().mean() < 60


def test_min_size_keeps_jpeg_large_enough(tmp_path):
    Image.fromarray(np.full((400, 300, 3), 128, dtype=np.uint8)).save(tmp_path / "big.jpg")
    image = load_image(tmp_path / "big.jpg", min_size=64)
    assert min(image.shape[-2:]) >= 64 and image.shape[-2] < 400


def _assert_one_line_data_error(path, match: str):
    with pytest.raises(DataError, match=match) as info:
        load_image(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_corrupt_file_raises_one_line_data_error(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"this is not an image at all")
    _assert_one_line_data_error(path, "cannot decode .*remove or replace it")


def test_truncated_file_raises_one_line_data_error(tmp_path):
    full = tmp_path / "full.jpg"
    Image.fromarray(_rgb_array(64, 64)).save(full, quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    _assert_one_line_data_error(truncated, "truncated")


def test_missing_file_raises_data_error(tmp_path):
    _assert_one_line_data_error(tmp_path / "nowhere.png", "does not exist")


@pytest.mark.parametrize("channels", [1, 3])
def test_save_image_round_trips_uint8_and_float(tmp_path, channels):
    image = torch.randint(0, 256, (channels, 5, 7), dtype=torch.uint8)
    assert torch.equal(load_image(save_image(image, tmp_path / "u.png"), channels), image)
    as_float = image.float() / 255
    assert torch.equal(load_image(save_image(as_float, tmp_path / "sub/f.png"), channels), image)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["f.png", "sub", "u.png"]
