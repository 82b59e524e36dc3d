"""For the evaluation tests: synthetic photos and masks, datamodules, LPIPS/FID stand-ins."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchmetrics.functional.image.lpips import _NoTrainLpips

from inpaintlab.data.datamodule import InpaintingDataModule
from inpaintlab.data.datasets import FolderSource
from inpaintlab.data.masks import FolderMask
from inpaintlab.metrics.perceptual import LPIPSScore

# hole ratios of the mask files: bins 0-10, 20-30 and 60+
MASK_RATIOS = (0.0625, 0.25, 0.75)


def write_photos(root: Path, counts: dict[str, int], size: int = 40, seed: int = 0) -> Path:
    """Smooth colour images in root/<split>/ (counts per split), as PNG files."""
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            coarse = Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8))
            coarse.resize((size, size), Image.BICUBIC).save(root / split / f"img{i:02d}.png")
    return root


def write_mask_files(folder: Path, size: int = 32, ratios=MASK_RATIOS) -> Path:
    """White-hole masks whose first rows are holes, covering `ratios` of a size x size image."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, ratio in enumerate(ratios):
        mask = np.zeros((size, size), dtype=np.uint8)
        mask[: round(ratio * size)] = 255
        Image.fromarray(mask).save(folder / f"mask{i}.png")
    return folder


def folder_datamodule(
    images: Path, masks: Path, image_size: int = 32, batch_size: int = 4, channels: int = 3
) -> InpaintingDataModule:
    """Test/val splits of `images` with the fixed masks of `masks`, loaded in-process."""
    return InpaintingDataModule(
        source=partial(FolderSource),
        root=images,
        mask_generator=FolderMask(masks, flip=False, rotate=False),
        image_size=image_size,
        channels=channels,
        batch_size=batch_size,
        num_workers=0,
    )


class PooledColours(nn.Module):
    """Stand-in FID extractor: uint8 images -> mean colour of each cell of a 4 x 4 grid."""

    num_features = 48

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(images.float() / 255, 4).flatten(1)


def random_lpips() -> LPIPSScore:
    """torchmetrics' LPIPS network with a random backbone (its shipped linear heads)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return LPIPSScore(_NoTrainLpips(net="alex", pnet_rand=True))
