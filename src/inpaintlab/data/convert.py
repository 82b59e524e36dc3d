"""Photos and masks as a user holds them (PIL images, numpy arrays, image files, tensors),
turned into the 1 x C x H x W batches a model takes, and results given back in the photo's
own type.

Photos: a PIL image (L is grey, RGB colour; other modes are converted to RGB, 16-bit grey to
L), an H x W or H x W x (1 | 3) array (uint8, uint16, or float in [0, 1]), or an image file
(read like `inpaintlab inpaint` reads it: grey when it has no colour). Masks (hole = 1): a
PIL image or an image file by the command line's rule (opacity where the image has
transparent pixels, else the brightest channel), an H x W or H x W x 1 array (bool, integers
above half their range, floats above 0.5), or an H x W, 1 x H x W or 1 x 1 x H x W tensor.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps
from torch import Tensor

from inpaintlab.data.io import load_image, pil_to_tensor, to_uint8
from inpaintlab.errors import DataError

PhotoLike = Tensor | np.ndarray | Image.Image | str | os.PathLike
_GREY_MODES = frozenset({"L", "I;16", "I;16B", "I;16L", "I;16N", "I", "F"})


def read_photo(path: Path) -> Tensor:
    """A photo file as a 1 x C x H x W float tensor in [0, 1]: C = 1 if it has no colour."""
    rgb = load_image(path, channels=3)
    colourless = torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2])
    return _unit_batch(rgb[:1] if colourless else rgb)


def read_alpha(path: Path) -> Tensor:
    """A photo's alpha channel as a 1 x 1 x H x W map in [0, 1] (0 = transparent), upright."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if not _has_alpha(image):
                raise DataError(f"{path} has no alpha channel: pass a mask file with --mask")
            return _alpha_map(image)
    except OSError as error:
        raise DataError(f"cannot read the alpha channel of {path} ({error})") from error


def has_transparency(path: Path) -> bool:
    """Whether an image file has an alpha channel with at least one pixel not fully opaque."""
    try:
        with Image.open(path) as image:
            return _is_partly_transparent(image)
    except OSError as error:
        raise DataError(f"cannot decode {path} ({error}): pass a mask image") from error


def mask_file_holes(path: Path, mask_hole: str = "white") -> Tensor:
    """A mask file's holes, 1 x 1 x H x W in [0, 1]. The rule: a mask with transparent pixels
    marks its holes by opacity (what a paint tool's layer holds: painted = hole), whatever
    their colour; any other mask by its brightest channel, so that a red or green stroke
    counts like a white one (`mask_hole` black: the darkest pixels are the holes)."""
    if has_transparency(path):
        return read_alpha(path)
    brightest = _brightest_map(load_image(path, channels=3))
    return brightest if mask_hole == "white" else 1 - brightest


def _unit_batch(pixels: Tensor) -> Tensor:
    """A uint8 C x H x W image as a 1 x C x H x W float batch in [0, 1]."""
    return pixels.unsqueeze(0).float() / 255


def _alpha_map(image: Image.Image) -> Tensor:
    """An image's opacity as a 1 x 1 x H x W map in [0, 1] (0 = transparent)."""
    return _unit_batch(TF.pil_to_tensor(image.convert("RGBA").getchannel("A")))


def _brightest_map(rgb: Tensor) -> Tensor:
    """The brightest channel of a uint8 3 x H x W image as a 1 x 1 x H x W map in [0, 1]."""
    return _unit_batch(rgb.amax(0, keepdim=True))


def _has_alpha(image: Image.Image) -> bool:
    return "A" in image.getbands() or "transparency" in image.info


def _is_partly_transparent(image: Image.Image) -> bool:
    if not _has_alpha(image):
        return False
    return image.convert("RGBA").getchannel("A").getextrema()[0] < 255


def photo_batch(photo: PhotoLike) -> Tensor:
    """A photo that is not a tensor as a 1 x C x H x W float batch in [0, 1]."""
    if isinstance(photo, (str, os.PathLike)):
        return read_photo(Path(photo))
    if isinstance(photo, Image.Image):
        return _unit_batch(pil_to_tensor(photo, 1 if photo.mode in _GREY_MODES else 3))
    if isinstance(photo, np.ndarray):
        return _array_batch(photo)
    raise DataError(
        f"cannot inpaint a {type(photo).__name__}: pass a PIL image, a numpy array, an image "
        "file's path or a B x C x H x W tensor"
    )


def _array_batch(array: np.ndarray) -> Tensor:
    """An H x W or H x W x (1 | 3) photo array as a 1 x C x H x W float batch in [0, 1]."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise DataError(
            f"a photo array must be H x W or H x W x 1|3, got shape {array.shape}: drop an "
            "alpha channel with array[..., :3]"
        )
    values = torch.from_numpy(_as_unit_range(array, "photo")).permute(2, 0, 1)
    return values.unsqueeze(0).float()


def _as_unit_range(array: np.ndarray, what: str) -> np.ndarray:
    """An integer or float array as floats in [0, 1] (integers over their type's range)."""
    if np.issubdtype(array.dtype, np.integer) and array.dtype in (np.uint8, np.uint16):
        return array.astype(np.float32) / np.iinfo(array.dtype).max
    if np.issubdtype(array.dtype, np.floating):
        if array.size and not (np.isfinite(array).all() and 0 <= array.min() <= array.max() <= 1):
            raise DataError(f"a float {what} array must hold values in [0, 1]: divide by 255?")
        return array.astype(np.float32)
    raise DataError(f"a {what} array of {array.dtype} cannot be read: use uint8, uint16 or float")


def mask_batch(mask: PhotoLike, height: int, width: int) -> Tensor:
    """A mask of any accepted kind as a 1 x 1 x H x W map of how much each pixel is a hole,
    checked against the photo's size."""
    holes = _mask_map(mask)
    if tuple(holes.shape[-2:]) != (height, width):
        found = "x".join(map(str, holes.shape[-2:]))
        raise DataError(
            f"the mask is {found} but the photo is {height}x{width} (height x width): pass a "
            "mask of the photo's size"
        )
    return holes


def _mask_map(mask: PhotoLike) -> Tensor:
    if isinstance(mask, (str, os.PathLike)):
        return mask_file_holes(Path(mask))
    if isinstance(mask, Image.Image):
        if _is_partly_transparent(mask):
            return _alpha_map(mask)
        return _brightest_map(pil_to_tensor(mask, 3))
    if isinstance(mask, np.ndarray):
        array = mask[..., 0] if mask.ndim == 3 and mask.shape[-1] == 1 else mask
        if array.ndim != 2:
            raise DataError(f"a mask array must be H x W or H x W x 1, got shape {mask.shape}")
        if array.dtype == bool:
            return torch.from_numpy(array).float()[None, None]
        return torch.from_numpy(_as_unit_range(array, "mask"))[None, None]
    if isinstance(mask, Tensor) and mask.dim() in (2, 3, 4) and mask.shape[:-2].numel() == 1:
        return mask.reshape(1, 1, *mask.shape[-2:]).float()
    raise DataError(
        "a mask must be a PIL image, an H x W array, an image file's path or an H x W tensor"
    )


def given_back(result: Tensor, photo: PhotoLike, holes: Tensor) -> np.ndarray | Image.Image:
    """A 1 x C x H x W result in the type the photo came in: an array of its shape and dtype
    (known pixels, `holes` 0, the array's own values bit for bit), else a PIL image."""
    if not isinstance(photo, np.ndarray):
        quantised = to_uint8(result[0]).permute(1, 2, 0).numpy()
        return Image.fromarray(quantised[..., 0] if quantised.shape[-1] == 1 else quantised)
    pixels = result[0].permute(1, 2, 0).numpy()
    if np.issubdtype(photo.dtype, np.integer):
        top = np.iinfo(photo.dtype).max
        out = (pixels * top).round().clip(0, top).astype(photo.dtype)
    else:
        out = pixels.astype(photo.dtype)
    hole = holes[0, 0].bool().numpy()
    hole = hole if photo.ndim == 2 else hole[..., None]
    return np.where(hole, out.reshape(photo.shape), photo)
