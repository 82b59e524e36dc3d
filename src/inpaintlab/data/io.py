"""Decode image files into uint8 tensors (and write tensors back), whatever their pixel format."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from inpaintlab.errors import DataError, flat_message

# the photo and mask files inpaintlab reads, by suffix (PIL decodes each of them)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
# what PIL raises for a file it cannot open or decode
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
# Pixel formats with more than 8 bits per sample, and the range each one is scaled from.
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_UINT16_MAX = 65535.0
# where a JPEG's compressed data ends early, libjpeg fills the missing blocks with this grey
_JPEG_GREY_FILL = 128


def is_image_file(path: Path) -> bool:
    """An image file by its suffix (any case), unless hidden: ".name" files such as the "._name"
    copies macOS leaves on shared drives are not images."""
    return (
        path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()
    )


def image_suffixes_text() -> str:
    """The readable suffixes for an error message: "bmp/jpeg/jpg/png/tif/tiff/webp"."""
    return "/".join(sorted(suffix[1:] for suffix in IMAGE_SUFFIXES))


def load_image(
    path: str | os.PathLike, channels: int = 3, min_size: int | None = None
) -> torch.Tensor:
    """Read an image file as a uint8 C x H x W tensor (C = 1 luminance or 3 RGB), EXIF-upright.

    `min_size` lets JPEG decoding skip resolution the caller will throw away: the decoded
    image keeps both sides at least `min_size` pixels.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            refuse_animation(image, path)
            if min_size is not None and image.format == "JPEG":
                image.draft(None, (min_size, min_size))
            image.load()
            refuse_cut_short_jpeg(image, path)
            return pil_to_tensor(ImageOps.exif_transpose(image), channels)
    except FileNotFoundError as error:
        raise DataError(f"image file {path} does not exist: check the data folder") from error
    except DECODE_ERRORS as error:
        reason = flat_message(error)
        raise DataError(f"cannot decode {path} ({reason}): remove or replace it") from error


def refuse_animation(image: Image.Image, path: Path) -> None:
    """Raise for a file of several frames or pages (an animated GIF or WebP, a multi-page
    TIFF): which one to use is the user's choice, not the first by default."""
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        raise DataError(
            f"{path} holds {frames} frames or pages: save the one you mean as a PNG and pass that"
        )


def refuse_cut_short_jpeg(image: Image.Image, path: Path) -> None:
    """Raise for a JPEG whose data ended early (cut short, or an end marker too soon): the
    decoder then fills the rest with mid-grey instead of failing, so the image's last row is
    grey 128 in every channel. A heuristic: a complete JPEG whose bottom row is exactly that
    grey, unlike the rest of the picture, is refused too."""
    if image.format != "JPEG" or image.mode not in ("L", "RGB"):
        return
    width, height = image.size
    last_row = image.crop((0, height - 1, width, height))
    grey = (_JPEG_GREY_FILL, _JPEG_GREY_FILL)
    row_is_grey = all(extrema == grey for extrema in _band_extrema(last_row))
    if row_is_grey and not all(extrema == grey for extrema in _band_extrema(image)):
        raise DataError(
            f"{path} ends in flat grey rows, as a JPEG whose data stops early does: copy it "
            "again from its source or re-export it"
        )


def _band_extrema(image: Image.Image) -> list[tuple[int, int]]:
    """(min, max) of each band of an 8-bit image."""
    extrema = image.getextrema()
    return [extrema] if image.mode == "L" else list(extrema)


def pil_to_tensor(image: Image.Image, channels: int = 3) -> torch.Tensor:
    """Convert a PIL image of any mode to a uint8 C x H x W tensor with 1 or 3 channels."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        array = _high_depth_to_uint8(image)
        tensor = torch.from_numpy(array).unsqueeze(0)
        return tensor.expand(channels, -1, -1).contiguous()
    if image.mode == "P":
        # a palette may carry transparency; go through RGBA so Pillow handles it, then drop alpha
        image = image.convert("RGBA")
    image = image.convert("L" if channels == 1 else "RGB")
    array = np.asarray(image, dtype=np.uint8).reshape(image.height, image.width, channels)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def _high_depth_to_uint8(image: Image.Image) -> np.ndarray:
    """Scale a 16-bit or 32-bit integer (0..65535) or float greyscale image to uint8 H x W."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        low, high = float(values.min()), float(values.max())
        # floats already in [0, 1] keep their meaning; any other range is stretched to [0, 1]
        if low < 0.0 or high > 1.0:
            values = (values - low) / max(high - low, 1e-12)
    else:
        values = np.clip(values, 0.0, _UINT16_MAX) / _UINT16_MAX
    return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """A float image in [0, 1] as uint8 (clamped, rounded to the nearest level); uint8 as is."""
    if image.dtype == torch.uint8:
        return image
    return (image.detach().float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def save_image(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write a C x H x W image (uint8, or float in [0, 1]; C = 1 or 3) to `path` atomically."""
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected a C x H x W image with C = 1 or 3, got {tuple(image.shape)}")
    array = to_uint8(image).cpu().permute(1, 2, 0).numpy()
    pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_in_one_go(path) as partial:
        pil.save(partial, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    return path


@contextmanager
def written_in_one_go(path: Path) -> Iterator[Path]:
    """A name beside `path` for the block to write to, renamed to `path` when the block ends
    without an error and removed otherwise: no reader ever sees half a file at `path`. The
    name is hidden and keeps no suffix, so that a file left by a killed writer is never taken
    for a result (a checkpoint, an image)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def check_writable(folder: Path) -> None:
    """Raise unless files can be created in `folder` (or in its nearest existing parent, where
    the missing folders would be made): checked before any long work whose result goes there."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(f"cannot write into {folder}: {existing} is a file; choose another --out")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise DataError(f"cannot write into {existing} ({reason}): choose another --out") from error
