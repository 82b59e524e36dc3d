"""Inpaint images of any size with a trained checkpoint, safely loaded.

Fully convolutional models (PConv U-Net, EdgeConnect) run at the image's own size, reflection
padded to their side multiple and cropped back. A model built for one size (the Context
Encoder) runs at that size: image and mask are resized to it (a low-resolution pixel is a
hole if any part of it is), and its fill is resized back and composited at full resolution.
Known pixels are always returned bit for bit.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlab.data.convert import PhotoLike, given_back, mask_batch, photo_batch
from inpaintlab.data.edges import greyscale
from inpaintlab.errors import ConfigError, DataError
from inpaintlab.inference.strategies import chosen_strategy, filled_by
from inpaintlab.models.base import InpaintingModule
from inpaintlab.models.checkpoint import read_checkpoint
from inpaintlab.models.loading import model_from_checkpoint
from inpaintlab.models.release import REGISTRY, load_any
from inpaintlab.ops.compositing import (
    composite,
    holes_outside,
    pad_to_multiple,
    resize_image,
    resize_mask,
)

DEFAULT_SIDE = 256  # the working size of a model whose training size is not recorded
FULL_MASK_MESSAGE = "the mask covers the whole image: the result is the model's guess alone"


class FullMaskWarning(UserWarning):
    """The mask leaves no known pixel: the result is the model's guess from nothing."""


def select_device(name: str | torch.device = "auto") -> torch.device:
    """`auto` -> cuda when available, else cpu; `cpu`, `cuda`, `cuda:1`, ... as given."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu or cuda") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA is not available on this machine: use --device cpu or auto")
    return device


class InpaintingPipeline(nn.Module):
    """(image, mask) -> composite for a model, at any size, in the model's channel count.

    Pure tensor code (no checks that branch on pixel values), so that it can be exported.
    """

    def __init__(self, model: InpaintingModule) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        """Composite of `image` (B x C x H x W, C = model channels) and the model's fill."""
        height, width = image.shape[-2:]
        size = self.model.fixed_size
        if size is None:
            multiple = self.model.size_multiple
            padded = self.model.inpaint(
                pad_to_multiple(image, multiple), pad_to_multiple(mask, multiple)
            )
            fill = padded[..., :height, :width]
        else:
            small = self.model.inpaint(resize_image(image, size), resize_mask(mask, size))
            fill = F.interpolate(small, size=(height, width), mode="bilinear")
        return composite(fill, image, mask)


def convert_channels(image: Tensor, channels: int) -> Tensor:
    """An image with 1 or 3 channels as `channels` (grey from luminance, RGB by repetition)."""
    if image.shape[1] == channels:
        return image
    return greyscale(image) if channels == 1 else image.expand(-1, channels, -1, -1)


def binary_mask(hole_map: Tensor, threshold: float = 0.5, dilate: int = 0) -> Tensor:
    """0/1 mask from a map of how much each pixel is a hole (B x 1 x H x W in [0, 1]): holes
    where the map exceeds `threshold`, grown by `dilate` px (square neighbourhood)."""
    holes = (hole_map > threshold).float()
    if dilate > 0:
        holes = F.max_pool2d(holes, 2 * dilate + 1, stride=1, padding=dilate)
    return holes


def check_inputs(image: Tensor, mask: Tensor) -> None:
    """Raise a DataError unless image is B x (1|3) x H x W and mask B x 1 x H x W."""
    if image.dim() != 4 or image.shape[1] not in (1, 3):
        raise DataError(f"expected a B x 1|3 x H x W image, got shape {tuple(image.shape)}")
    expected = (image.shape[0], 1, *image.shape[-2:])
    if tuple(mask.shape) != expected:
        raise DataError(
            f"the mask has shape {tuple(mask.shape)} but the image needs {expected}: "
            "pass one single-channel mask of the image's size per image"
        )


class Inpainter:
    """A trained model ready to fill holes in images of any size (see the module docstring).

    Example (`release_file`: a file written by `inpaintlab release`, or a checkpoint):
        >>> from PIL import Image
        >>> from inpaintlab import Inpainter
        >>> inpainter = Inpainter.from_pretrained(release_file, device="cpu")
        >>> photo = Image.new("RGB", (300, 200), (200, 120, 40))
        >>> damage = Image.new("L", (300, 200))  # white = the holes to fill
        >>> damage.paste(255, (140, 90, 160, 110))
        >>> restored = inpainter(photo, damage)  # a PIL image in, a PIL image out
        >>> restored.size, restored.mode
        ((300, 200), 'RGB')
        >>> restored.getpixel((10, 10))  # known pixels come back unchanged
        (200, 120, 40)

        Numpy arrays (H x W x C, uint8 or float) and tensors (B x C x H x W in [0, 1]) come
        back as arrays and tensors:

        >>> import numpy as np
        >>> inpainter(np.asarray(photo), np.asarray(damage)).shape
        (200, 300, 3)
    """

    def __init__(self, model: InpaintingModule, name: str, device: torch.device) -> None:
        self.name = name
        self.device = device
        self.model = model.to(device).eval()
        self.pipeline = InpaintingPipeline(self.model)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "auto") -> Inpainter:
        """Rebuild the model a train.py checkpoint records (no code runs while reading it)."""
        device = select_device(device)
        model = model_from_checkpoint(read_checkpoint(path))
        return cls(model, Path(path).name, device)

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path,
        device: str | torch.device = "auto",
        registry: Path = REGISTRY,
    ) -> Inpainter:
        """A release file (`inpaintlab release`), a train.py checkpoint, or the name of a
        registered model (downloaded once into the torch hub cache and checked); no code runs
        while reading any of them."""
        device = select_device(device)
        model, name = load_any(source, registry)
        return cls(model, name, device)

    @property
    def recorded_side(self) -> int | None:
        """The image size the model was trained at (from its run config), or its fixed size;
        None when neither is recorded."""
        config = self.model.run_config or {}
        return config.get("data", {}).get("image_size") or self.model.fixed_size

    @property
    def training_side(self) -> int:
        """The size the strategies work at: `recorded_side`, else DEFAULT_SIDE."""
        return self.recorded_side or DEFAULT_SIDE

    @property
    def channels(self) -> int:
        """Channels the model works in; other inputs are converted (see `__call__`)."""
        return self.model.image_channels

    def __call__(self, image: PhotoLike, mask: PhotoLike, strategy: str = "auto") -> Any:
        """`image` with the holes where `mask` is 1 filled, in the type `image` came in.

        Tensors: `image` B x C x H x W in [0, 1] (any size), `mask` B x 1 x H x W; the result
        has the image's shape, dtype and device. A PIL image comes back as a PIL image, an
        array as an array of its shape and dtype, an image file's path as a PIL image (the
        kinds each accepts: inpaintlab.data.convert). Known pixels are returned unchanged. A
        grey image given to an RGB model (or the reverse) is converted for the model and its
        fill converted back; a mask without holes returns a copy of the image. `strategy`
        says how a photo larger than the training size meets the model (auto, crop, resize
        or full; inpaintlab.inference.strategies).
        """
        if isinstance(image, Tensor):
            if not isinstance(mask, Tensor):
                holes = mask_batch(mask, *image.shape[-2:]) > 0.5
                mask = holes.float().expand(image.shape[0], -1, -1, -1)
            return self._inpaint_batch(image, mask, strategy)
        batch = photo_batch(image)
        holes = mask_batch(mask, *batch.shape[-2:]) > 0.5
        return given_back(self._inpaint_batch(batch, holes.float(), strategy), image, holes)

    def _inpaint_batch(self, image: Tensor, mask: Tensor, strategy: str) -> Tensor:
        check_inputs(image, mask)
        side = self.training_side
        strategy = chosen_strategy(
            strategy, *image.shape[-2:], side, centre_only=self.model.fillable_box is not None
        )
        holes = mask.bool()
        if not holes.any():
            return image.clone()
        self._check_fillable(holes)
        if holes.flatten(1).all(1).any():
            warnings.warn(FULL_MASK_MESSAGE, FullMaskWarning, stacklevel=3)
        with torch.inference_mode():
            model_input = convert_channels(image.to(self.device, torch.float32), self.channels)
            model_mask = holes.to(self.device, torch.float32)
            filled = filled_by(strategy, self.pipeline, model_input, model_mask, side)
        # outside inference mode, so that callers get an ordinary tensor
        filled = convert_channels(filled, image.shape[1]).to(image.device, image.dtype)
        return composite(filled, image, holes)

    def _check_fillable(self, holes: Tensor) -> None:
        """A model that fills one region only (Context Encoder, centre setting) cannot fill
        holes elsewhere: say where it can."""
        box = self.model.fillable_box
        if box is None:
            return
        size = self.model.fixed_size
        if holes_outside(resize_mask(holes.float(), size), box):
            top, left, side = box
            height, width = holes.shape[-2:]
            rows = f"{top * height // size}-{(top + side) * height // size}"
            cols = f"{left * width // size}-{(left + side) * width // size}"
            raise DataError(
                f"{self.name} (a Context Encoder trained in the centre setting) fills only "
                f"the centre of the image (rows {rows}, columns {cols} of this "
                f"{height}x{width} image) but the mask has holes outside it: use a "
                "random_region or fully convolutional model, or a centred mask"
            )
