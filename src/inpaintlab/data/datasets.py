"""Image datasets and the sources that split them into train, val and test.

Every dataset item is `{"image": uint8 C x S x S, "index": int}`: the image resized so its
shorter side is S, then cropped to S x S (random crop for training, centre crop otherwise).
Augmentation and masks happen later, on the device (see `datamodule.py`).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torchvision
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset

from inpaintlab.data.io import image_suffixes_text, is_image_file, load_image, pil_to_tensor
from inpaintlab.errors import ConfigError, DataError, flat_message

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")
# the config key users set for a folder source; error messages name it
ROOT_KEY = "data.root"


def list_images(root: str | os.PathLike) -> list[Path]:
    """All image files under `root`, recursively, sorted (suffixes matched case-insensitively)."""
    return sorted(path for path in Path(root).rglob("*") if is_image_file(path))


def resize_shorter_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a C x H x W image so its shorter side is `size` pixels (antialiased bilinear)."""
    if min(image.shape[-2:]) == size:
        return image
    return TF.resize(image, [size], antialias=True)


def crop_square(
    image: torch.Tensor, size: int, random: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Crop a `size` x `size` square: at a random position (drawn from `generator`, or the
    global stream), or in the centre."""
    height, width = image.shape[-2:]
    if random:
        top = int(torch.randint(height - size + 1, (), generator=generator))
        left = int(torch.randint(width - size + 1, (), generator=generator))
    else:
        top, left = (height - size) // 2, (width - size) // 2
    return image[..., top : top + size, left : left + size].contiguous()


class SquareImageDataset(Dataset, ABC):
    """Base of the datasets: turns `_load(i)` into square crops, optionally repeated."""

    def __init__(self, image_size: int, channels: int = 3, train: bool = False, repeat: int = 1):
        self.image_size = image_size
        self.channels = channels
        self.train = train
        self.repeat = repeat

    @abstractmethod
    def _num_images(self) -> int:
        """Number of distinct images."""

    @abstractmethod
    def _load(self, image_index: int) -> torch.Tensor:
        """Decode one image as uint8 C x H x W."""

    def __len__(self) -> int:
        return self._num_images() * self.repeat

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        """Sample `item`: an index, or (index, seed of its random crop) as the training
        sampler gives them, so that a crop does not depend on which worker decodes it."""
        index, crop_seed = item if isinstance(item, tuple) else (item, None)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        image = resize_shorter_side(self._load(index % self._num_images()), self.image_size)
        generator = None if crop_seed is None else torch.Generator().manual_seed(crop_seed)
        crop = crop_square(image, self.image_size, self.train, generator)
        return {"image": crop, "index": index}


class ImageFolderDataset(SquareImageDataset):
    """Square crops of a list of image files.

    `cache=True` keeps each resized image in memory (per worker) after its first decode:
    worth it for a handful of images read many times, as with `repeat`.
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike],
        image_size: int,
        channels: int = 3,
        train: bool = False,
        repeat: int = 1,
        cache: bool = False,
    ):
        super().__init__(image_size, channels, train, repeat)
        self.files = [Path(file) for file in files]
        self.cache = cache
        self._decoded: dict[int, torch.Tensor] = {}

    def _num_images(self) -> int:
        return len(self.files)

    def _load(self, image_index: int) -> torch.Tensor:
        if image_index in self._decoded:
            return self._decoded[image_index]
        image = load_image(self.files[image_index], self.channels, min_size=self.image_size)
        if self.cache:
            image = resize_shorter_side(image, self.image_size)
            self._decoded[image_index] = image
        return image


class VisionDatasetAdapter(SquareImageDataset):
    """Square crops of a torchvision dataset whose items are (PIL image, target) pairs."""

    def __init__(
        self,
        base: Dataset,
        image_size: int,
        channels: int = 3,
        train: bool = False,
        repeat: int = 1,
    ):
        super().__init__(image_size, channels, train, repeat)
        self.base = base

    def _num_images(self) -> int:
        return len(self.base)

    def _load(self, image_index: int) -> torch.Tensor:
        try:
            image, _ = self.base[image_index]
        except OSError as error:
            reason = flat_message(error)
            name = type(self.base).__name__
            raise DataError(f"cannot read item {image_index} of {name} ({reason})") from error
        return pil_to_tensor(image, self.channels)


class DatasetSource(ABC):
    """Where the images of each split come from; builds one dataset per split.

    `repeat` lengthens the training split (tiny datasets give longer epochs); `eval_repeat`
    lists every val/test image several times, each copy getting its own deterministic mask.
    """

    def __init__(self, repeat: int = 1, eval_repeat: int = 1):
        if min(repeat, eval_repeat) < 1:
            raise ConfigError(
                f"data.source.repeat and data.source.eval_repeat must be at least 1, "
                f"got {repeat} and {eval_repeat}"
            )
        self.repeat = repeat
        self.eval_repeat = eval_repeat

    def prepare(self) -> None:  # noqa: B027 (an optional hook, not an abstract method)
        """Download or export data once; called on one process per node. Default: nothing."""

    def dataset(self, split: Split, image_size: int, channels: int = 3) -> SquareImageDataset:
        """The dataset of `split` ("train", "val" or "test") at `image_size` with `channels`."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        train = split == "train"
        repeat = self.repeat if train else self.eval_repeat
        return self._build(split, image_size, channels, train, repeat)

    @abstractmethod
    def _build(
        self, split: Split, image_size: int, channels: int, train: bool, repeat: int
    ) -> SquareImageDataset:
        """Build the dataset of one split."""


class FolderSource(DatasetSource):
    """Images in a folder: `root/{train,val[,test]}` sub-folders, or a seeded random split.

    Without sub-folders, each file's split follows from a hash of its relative path and
    `split_seed`: deterministic, independent of listing order, and adding files barely moves
    the others. `folders` names the sub-folders of each split explicitly, e.g.
    `{"train": ["train", "val"], "test": ["test"]}`; a split it leaves out is val, held out
    from train by `val_fraction` in the same seeded way. When there is no test split (no
    `test/` folder, `test_fraction` 0) the test split is the val split.
    """

    def __init__(
        self,
        root: str | os.PathLike | None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.0,
        split_seed: int = 0,
        repeat: int = 1,
        eval_repeat: int = 1,
        cache: bool = False,
        folders: Mapping[str, Sequence[str]] | None = None,
    ):
        super().__init__(repeat, eval_repeat)
        if root is None or str(root).strip() == "":
            raise DataError(f"{ROOT_KEY} is not set: pass {ROOT_KEY}=/path/to/images")
        if min(val_fraction, test_fraction) < 0.0 or val_fraction + test_fraction >= 1.0:
            raise ConfigError(
                f"data.source.val_fraction + data.source.test_fraction must be in [0, 1), "
                f"got {val_fraction} + {test_fraction}: lower them"
            )
        self.root = Path(root).expanduser()
        if self.root.is_file():  # refused now, before a run prints or writes anything
            raise DataError(f"{ROOT_KEY}={self.root} is a file: point it at a folder of images")
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.cache = cache
        self.folders = _check_split_folders(folders, val_fraction)
        self._splits: dict[Split, list[Path]] | None = None

    def splits(self) -> dict[Split, list[Path]]:
        """The files of each split (listed once, then remembered)."""
        if self._splits is None:
            self._splits = self._resolve_splits()
        return self._splits

    def _resolve_splits(self) -> dict[Split, list[Path]]:
        if not self.root.is_dir():
            raise DataError(
                f"{ROOT_KEY}={self.root} does not exist: point it at a folder of images"
            )
        if self.folders is not None:
            splits = self._splits_from_folders(self.folders)
        elif (self.root / "train").is_dir() and (self.root / "val").is_dir():
            splits = {name: list_images(self.root / name) for name in SPLITS}
            for name in ("train", "val"):
                if not splits[name]:
                    raise DataError(f"{self.root / name} holds no images ({_EXTENSIONS_TEXT})")
        else:
            splits = split_by_fraction(
                list_images(self.root),
                self.root,
                self.val_fraction,
                self.test_fraction,
                self.split_seed,
            )
        if not splits["test"]:
            splits["test"] = splits["val"]
        return splits

    def _splits_from_folders(self, folders: Mapping[str, Sequence[str]]) -> dict[Split, list[Path]]:
        """The images of each split's sub-folders; val held out from train when not named."""
        splits: dict[Split, list[Path]] = {"test": []}
        for split, names in folders.items():
            files = []
            for name in names:
                folder = self.root / name
                if not folder.is_dir() or not (found := list_images(folder)):
                    raise DataError(f"{folder} holds no images ({_EXTENSIONS_TEXT})")
                files += found
            splits[split] = sorted(files)
        if "val" not in folders:
            held_out = split_by_fraction(
                splits["train"], self.root, self.val_fraction, 0.0, self.split_seed
            )
            splits["train"], splits["val"] = held_out["train"], held_out["val"]
        return splits

    def _build(
        self, split: Split, image_size: int, channels: int, train: bool, repeat: int
    ) -> ImageFolderDataset:
        files = self.splits()[split]
        return ImageFolderDataset(files, image_size, channels, train, repeat, self.cache)


def _check_split_folders(
    folders: Mapping[str, Sequence[str]] | None, val_fraction: float
) -> dict[str, list[str]] | None:
    """`FolderSource.folders` as plain lists, after checking its split names."""
    if folders is None:
        return None
    unknown = sorted(set(folders) - set(SPLITS))
    if unknown or "train" not in folders:
        raise ConfigError(
            f"data.source.folders must map train (and optionally val, test) to sub-folders, "
            f"got keys {sorted(folders)}"
        )
    if "val" not in folders and val_fraction <= 0:
        raise ConfigError(
            "data.source.folders names no val folders: set data.source.val_fraction > 0 "
            "to hold out val images from train"
        )
    return {split: [str(name) for name in names] for split, names in folders.items()}


_EXTENSIONS_TEXT = f"expected {image_suffixes_text()} files"


def split_by_fraction(
    files: Sequence[Path],
    root: Path,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[Split, list[Path]]:
    """Assign files to splits by ranking a seeded hash of their path relative to `root`."""
    if not files:
        raise DataError(f"{ROOT_KEY}={root} holds no images ({_EXTENSIONS_TEXT})")
    ranked = sorted(
        files, key=lambda path: _stable_hash(f"{seed}:{path.relative_to(root).as_posix()}")
    )
    n_test = _split_count(len(files), test_fraction)
    n_val = _split_count(len(files), val_fraction)
    if n_test + n_val >= len(files):
        raise DataError(
            f"{ROOT_KEY}={root} has only {len(files)} images, too few to hold out "
            f"{n_val} for val and {n_test} for test: add images or lower the fractions"
        )
    return {
        "train": sorted(ranked[n_test + n_val :]),
        "val": sorted(ranked[n_test : n_test + n_val]),
        "test": sorted(ranked[:n_test]),
    }


def _split_count(total: int, fraction: float) -> int:
    """Round `total * fraction`, but keep at least one file for any non-zero fraction."""
    return max(1, round(total * fraction)) if fraction > 0 else 0


def _stable_hash(text: str) -> int:
    """A hash that, unlike `hash()`, is the same in every Python process."""
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")


class TorchvisionSource(DatasetSource):
    """A torchvision dataset class, read from `root`; downloaded in `prepare()` if asked."""

    #: the torchvision dataset class and this project's split names mapped to its own
    dataset_class: Callable[..., Dataset]
    split_names: dict[Split, str]
    #: the layout users must place under `root`, for the error message
    expected_layout: str

    def __init__(
        self, root: str | os.PathLike, download: bool = False, repeat: int = 1, eval_repeat: int = 1
    ):
        super().__init__(repeat, eval_repeat)
        self.root = Path(root).expanduser()
        self.download = download

    def _options(self) -> dict[str, Any]:
        """Extra keyword arguments of the torchvision class."""
        return {}

    def _open(self, split: Split) -> Dataset:
        """The torchvision dataset of `split`, already on disk."""
        name = self.split_names[split]
        try:
            base = self.dataset_class(str(self.root), split=name, download=False, **self._options())
            if len(base) > 0:
                base[0]  # the file lists can exist without the images: probe one
        except (RuntimeError, OSError) as error:
            # torchvision's first sentence names the missing file; its advice follows below
            reason = flat_message(error).split(". ")[0]
            raise DataError(
                f"{self.dataset_class.__name__} split {name!r} not found under {self.root} "
                f"({reason}): put {self.expected_layout} there or set data.source.download=true"
            ) from error
        return base

    def prepare(self) -> None:
        """Download every split when `download` is on."""
        if self.download:
            for split in dict.fromkeys(self.split_names.values()):
                self.dataset_class(str(self.root), split=split, download=True, **self._options())

    def _build(
        self, split: Split, image_size: int, channels: int, train: bool, repeat: int
    ) -> VisionDatasetAdapter:
        return VisionDatasetAdapter(self._open(split), image_size, channels, train, repeat)


class CelebASource(TorchvisionSource):
    """CelebA aligned faces (torchvision.datasets.CelebA): official train/valid/test splits."""

    dataset_class = torchvision.datasets.CelebA
    split_names = {"train": "train", "val": "valid", "test": "test"}
    expected_layout = "celeba/img_align_celeba/ and the celeba/*.txt annotation files"

    def _options(self) -> dict[str, Any]:
        return {"target_type": []}


class Places365Source(TorchvisionSource):
    """Places365-Standard (torchvision.datasets.Places365); test uses the val split."""

    dataset_class = torchvision.datasets.Places365
    split_names = {"train": "train-standard", "val": "val", "test": "val"}
    expected_layout = (
        "the places365 file lists (places365_*.txt, categories_places365.txt) "
        "and the image folders (data_256_standard/ and val_256/, or data_large_standard/ "
        "and val_large/ when small=false)"
    )

    def __init__(
        self,
        root: str | os.PathLike,
        download: bool = False,
        small: bool = True,
        repeat: int = 1,
        eval_repeat: int = 1,
    ):
        super().__init__(root, download, repeat, eval_repeat)
        self.small = small

    def _options(self) -> dict[str, Any]:
        return {"small": self.small}
