"""Classical inpainting baselines with the Inpainter call signature: OpenCV and scikit-image.

- "telea": Telea's fast marching method (`cv2.INPAINT_TELEA`).
- "navier_stokes": Bertalmio et al.'s fluid-dynamics method (`cv2.INPAINT_NS`).
- "biharmonic": scikit-image's biharmonic equation fill (`inpaint_biharmonic`).
- "harmonic", "biharmonic_multigrid", "blended": the project's own batched torch fills of the
  Laplace and biharmonic equations and their blend (`inpaintlab.networks.prefill`), on the
  batch's device: the prefill a model with `model.prefill=harmonic|biharmonic|blended` starts
  from, scored on its own.

OpenCV works on 8-bit images, so its input is rounded to 1/255 steps; only the hole pixels of
the result come from that rounded fill, the known pixels are the caller's floats, bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.restoration import inpaint_biharmonic
from torch import Tensor

from inpaintlab.errors import ConfigError
from inpaintlab.networks.prefill import Prefill
from inpaintlab.ops.compositing import composite

# OpenCV comes with the [eval] extra; imported when a fill runs
OPENCV_FLAGS = {"telea": "INPAINT_TELEA", "navier_stokes": "INPAINT_NS"}
# baseline name -> kind of the project's own prefill
PREFILL_BASELINES = {
    "harmonic": "harmonic",
    "biharmonic_multigrid": "biharmonic",
    "blended": "blended",
}
BASELINES = (*OPENCV_FLAGS, "biharmonic", *PREFILL_BASELINES)


class ClassicalInpainter:
    """A classical method as a batched inpainter: `inpainter(image, mask)` -> composite.

    `image` is B x C x H x W in [0, 1] (C = 1 or 3) on any device, `mask` B x 1 x H x W with
    1 = hole. OpenCV and scikit-image fill each image on the CPU in numpy, the project's own
    fills run batched on the image's device; the composite comes back with the image's dtype
    and device. `radius` is OpenCV's neighbourhood radius in pixels (unused by biharmonic).
    A mask without a hole returns the image; a mask without any known pixel has nothing to
    fill from and gets mid-grey.

    Example:
        >>> import torch
        >>> image, mask = torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
        >>> mask[:, :, 10:20, 10:20] = 1
        >>> ClassicalInpainter("telea")(image, mask).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(self, method: str, radius: int = 3) -> None:
        if method not in BASELINES:
            raise ConfigError(f"unknown baseline {method!r}: choose one of {', '.join(BASELINES)}")
        if radius < 1:
            raise ConfigError(f"baselines.radius must be a positive number of pixels, got {radius}")
        self.name = method
        self.radius = int(radius)
        self.device = torch.device("cpu")

    def __call__(self, image: Tensor, mask: Tensor) -> Tensor:
        if self.name in PREFILL_BASELINES:
            filled = Prefill(PREFILL_BASELINES[self.name])(image, mask)
            return composite(filled, image, mask)
        pixels = image.detach().float().cpu().permute(0, 2, 3, 1).numpy()
        holes = mask.detach().cpu()[:, 0].numpy() > 0.5
        filled = np.stack([self._fill(x, hole) for x, hole in zip(pixels, holes, strict=True)])
        pred = torch.from_numpy(filled).permute(0, 3, 1, 2).to(image.device)
        return composite(pred, image, mask)

    def _fill(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """One H x W x C float image in [0, 1] with its hole filled (float32)."""
        if not hole.any():
            return image
        if hole.all():
            return np.full_like(image, 0.5)
        if self.name == "biharmonic":
            filled = inpaint_biharmonic(image, hole, channel_axis=-1)
            return filled.clip(0, 1).astype(np.float32)
        return self._opencv_fill(image, hole)

    def _opencv_fill(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """OpenCV's fill of the rounded 8-bit image (grey images as H x W arrays)."""
        eight_bit = np.ascontiguousarray((image * 255).round().clip(0, 255).astype(np.uint8))
        if eight_bit.shape[-1] == 1:
            eight_bit = eight_bit[..., 0]
        import cv2

        hole_map = hole.astype(np.uint8) * 255
        flag = getattr(cv2, OPENCV_FLAGS[self.name])
        filled = cv2.inpaint(eight_bit, hole_map, self.radius, flag)
        return (filled.reshape(image.shape) / 255.0).astype(np.float32)
