"""Mask generators: batched, seeded by a torch.Generator, float {0,1} B x 1 x H x W, 1 = hole."""

from inpaintlab.data.masks.base import MaskGenerator, hole_ratio
from inpaintlab.data.masks.boxes import CenterBoxMask, RandomBoxMask
from inpaintlab.data.masks.folder import FolderMask
from inpaintlab.data.masks.mixture import MixtureMask
from inpaintlab.data.masks.scratches import ScratchMask
from inpaintlab.data.masks.strokes import FreeFormMask

__all__ = [
    "CenterBoxMask",
    "FolderMask",
    "FreeFormMask",
    "MaskGenerator",
    "MixtureMask",
    "RandomBoxMask",
    "ScratchMask",
    "hole_ratio",
]
