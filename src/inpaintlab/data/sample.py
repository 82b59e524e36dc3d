"""The built-in sample data: photographs shipped inside the scikit-image wheel.

They need no download, so `data=sample` trains out of the box. Each photograph is exported
once as PNG to `cache_dir/{train,val,test}/`, with its longer sides scaled so the shorter
side is at most `MAX_SHORTER_SIDE` pixels (smaller files, faster decoding).
"""

from __future__ import annotations

import os
from pathlib import Path

import skimage

from inpaintlab.data.datasets import FolderSource, Split, resize_shorter_side
from inpaintlab.data.io import load_image, save_image

# file name in skimage/data -> split; the stereo pair motorcycle_left/right stays in one split.
# Greyscale photographs (brick ... coins) are read as RGB like the others.
SAMPLE_IMAGES: dict[str, str] = {
    "astronaut.png": "train",
    "coffee.png": "train",
    "hubble_deep_field.jpg": "train",
    "ihc.png": "train",
    "motorcycle_left.png": "train",
    "motorcycle_right.png": "train",
    "brick.png": "train",
    "grass.png": "train",
    "gravel.png": "train",
    "moon.png": "train",
    "chelsea.png": "val",
    "retina.jpg": "val",
    "camera.png": "val",
    "coins.png": "val",
    "rocket.jpg": "test",
}
MAX_SHORTER_SIDE = 512


def skimage_data_dir() -> Path:
    """The folder of image files installed with scikit-image."""
    return Path(skimage.__file__).parent / "data"


def export_sample_images(cache_dir: str | os.PathLike) -> list[Path]:
    """Write the sample photographs under `cache_dir` (skipping existing files); return all."""
    cache_dir = Path(cache_dir).expanduser()
    written = []
    for name, split in SAMPLE_IMAGES.items():
        target = cache_dir / split / f"{Path(name).stem}.png"
        if not target.exists():
            image = load_image(skimage_data_dir() / name, channels=3)
            if min(image.shape[-2:]) > MAX_SHORTER_SIDE:
                image = resize_shorter_side(image, MAX_SHORTER_SIDE)
            save_image(image, target)
        written.append(target)
    return written


class SampleSource(FolderSource):
    """The sample photographs as a folder source: fixed splits, decoded images kept in memory."""

    def __init__(self, root: str | os.PathLike, repeat: int = 10, eval_repeat: int = 2):
        super().__init__(root, repeat=repeat, eval_repeat=eval_repeat, cache=True)

    def prepare(self) -> None:
        """Export the photographs (idempotent)."""
        export_sample_images(self.root)

    def splits(self) -> dict[Split, list[Path]]:
        """The exported files of each split (exporting them first if needed)."""
        self.prepare()
        return super().splits()
