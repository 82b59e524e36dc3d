"""Datasets and sources: listing, resize and crop, splits, torchvision wrappers, sample data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from inpaintlab.data.datasets import (
    CelebASource,
    FolderSource,
    ImageFolderDataset,
    Places365Source,
    TorchvisionSource,
    list_images,
    split_by_fraction,
)
from inpaintlab.data.sample import SAMPLE_IMAGES, SampleSource, export_sample_images
from inpaintlab.errors import ConfigError, DataError


def _write(path: Path, height: int = 12, width: int = 16, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


def _make_folder(root: Path, count: int) -> list[Path]:
    return [_write(root / f"sub{i % 3}" / f"img{i:03d}.png", seed=i) for i in range(count)]


def test_list_images_recurses_filters_and_sorts(tmp_path):
    wanted = [
        _write(tmp_path / "b.PNG"),
        _write(tmp_path / "a" / "deep" / "c.jpeg"),
        _write(tmp_path / "a" / "x.Jpg"),
        _write(tmp_path / "z.webp"),
        _write(tmp_path / "y.bmp"),
        _write(tmp_path / "scan.TIF"),
    ]
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "._b.PNG").write_bytes(b"\x00\x05\x16\x07")  # macOS metadata beside b.PNG
    (tmp_path / "folder.png").mkdir()  # a directory with an image-like name is skipped
    assert list_images(tmp_path) == sorted(wanted)


def test_items_are_uint8_squares_resized_like_pil(tmp_path):
    path = _write(tmp_path / "wide.png", height=20, width=40)
    item = ImageFolderDataset([path], image_size=10)[0]
    assert item["index"] == 0
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 10, 10)
    # reference: PIL's antialiased bilinear resize to 20 x 10, centre 10 columns
    reference = np.asarray(Image.open(path).resize((20, 10), Image.BILINEAR))[:, 5:15]
    reference = torch.from_numpy(reference.copy()).permute(2, 0, 1)
    assert (item["image"].int() - reference.int()).abs().max() <= 2


def test_train_crops_are_random_windows_and_eval_crops_fixed(tmp_path):
    path = _write(tmp_path / "tall.png", height=48, width=8)
    full = ImageFolderDataset([path], image_size=8)._load(0)
    windows = [full[:, top : top + 8] for top in range(41)]
    train = ImageFolderDataset([path], image_size=8, train=True)
    crops = [train[0]["image"] for _ in range(12)]
    tops = {next(t for t, w in enumerate(windows) if torch.equal(w, crop)) for crop in crops}
    assert len(tops) > 1
    evaluation = ImageFolderDataset([path], image_size=8)
    assert torch.equal(evaluation[0]["image"], windows[20])
    assert torch.equal(evaluation[0]["image"], evaluation[0]["image"])


def test_repeat_lengthens_and_cache_gives_same_pixels(tmp_path):
    files = _make_folder(tmp_path, 3)
    plain = ImageFolderDataset(files, image_size=8, repeat=4)
    cached = ImageFolderDataset(files, image_size=8, repeat=4, cache=True)
    assert len(plain) == 12
    for index in (0, 4, 11):
        assert plain[index]["index"] == index
        assert torch.equal(plain[index]["image"], plain[index % 3]["image"])
        assert torch.equal(cached[index]["image"], plain[index]["image"])
    with pytest.raises(IndexError):
        plain[12]


def test_one_channel_dataset(tmp_path):
    item = ImageFolderDataset(_make_folder(tmp_path, 1), image_size=8, channels=1)[0]
    assert item["image"].shape == (1, 8, 8)


def test_folder_with_split_subfolders(tmp_path):
    train = [_write(tmp_path / "train" / f"{i}.png") for i in range(3)]
    val = [_write(tmp_path / "val" / "x" / f"{i}.jpg") for i in range(2)]
    splits = FolderSource(tmp_path).splits()
    assert splits == {"train": train, "val": val, "test": val}
    test = [_write(tmp_path / "test" / "t.png")]
    assert FolderSource(tmp_path).splits()["test"] == test


def test_fraction_split_is_disjoint_complete_and_deterministic(tmp_path):
    files = _make_folder(tmp_path, 40)
    splits = FolderSource(tmp_path, val_fraction=0.2, test_fraction=0.1, split_seed=3).splits()
    assert [len(splits[name]) for name in ("train", "val", "test")] == [28, 8, 4]
    assert sorted(sum(splits.values(), [])) == sorted(files)
    again = FolderSource(tmp_path, val_fraction=0.2, test_fraction=0.1, split_seed=3).splits()
    assert again == splits
    other_seed = FolderSource(tmp_path, val_fraction=0.2, test_fraction=0.1, split_seed=4)
    assert other_seed.splits()["val"] != splits["val"]


def test_fraction_split_is_stable_when_files_are_added(tmp_path):
    files = _make_folder(tmp_path, 40)
    before = split_by_fraction(files, tmp_path, 0.25, 0.0, seed=0)
    extra = [tmp_path / f"new{i}.png" for i in range(2)]
    after = split_by_fraction(sorted(files + extra), tmp_path, 0.25, 0.0, seed=0)
    # two new files move at most a couple of old ones across the boundary
    assert len(set(before["val"]) & set(after["val"])) >= len(before["val"]) - 2
    # the assignment ignores listing order
    assert split_by_fraction(files[::-1], tmp_path, 0.25, 0.0, seed=0) == before


def test_no_test_fraction_means_test_is_val(tmp_path):
    _make_folder(tmp_path, 10)
    splits = FolderSource(tmp_path, val_fraction=0.1).splits()
    assert len(splits["val"]) == 1 and splits["test"] == splits["val"]


@pytest.mark.parametrize("root", [None, "", "  "])
def test_unset_root_is_a_data_error(root):
    with pytest.raises(DataError, match="data.root is not set"):
        FolderSource(root)


def test_missing_empty_and_too_small_roots_are_data_errors(tmp_path):
    with pytest.raises(DataError, match=r"data.root=.*nowhere does not exist"):
        FolderSource(tmp_path / "nowhere").splits()
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="holds no images"):
        FolderSource(tmp_path).splits()
    _write(tmp_path / "only.png")
    with pytest.raises(DataError, match="too few"):
        FolderSource(tmp_path, val_fraction=0.1).splits()
    assert FolderSource(tmp_path, val_fraction=0.0).splits()["train"] == [tmp_path / "only.png"]
    with pytest.raises(ConfigError, match="fraction"):
        FolderSource(tmp_path, val_fraction=0.6, test_fraction=0.4)
    with pytest.raises(ConfigError, match="repeat"):
        FolderSource(tmp_path, repeat=0)


def test_source_datasets_use_repeat_for_train_and_eval_repeat_otherwise(tmp_path):
    _make_folder(tmp_path, 10)
    source = FolderSource(tmp_path, val_fraction=0.2, repeat=3, eval_repeat=2)
    train = source.dataset("train", image_size=8)
    val = source.dataset("val", image_size=8, channels=1)
    assert (len(train), train.train) == (24, True)
    assert (len(val), val.train, val[0]["image"].shape) == (4, False, (1, 8, 8))


@pytest.mark.parametrize("source_class", [CelebASource, Places365Source])
def test_missing_torchvision_data_explains_what_to_do(tmp_path, source_class):
    source = source_class(tmp_path)
    with pytest.raises(DataError, match="download=true") as info:
        source.dataset("train", image_size=32)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


class _FakeVision(Dataset):
    """Stands in for a torchvision dataset: (PIL image, label) items and split names."""

    opened: list[str] = []

    def __init__(self, root: str, split: str, download: bool, **options):
        self.opened.append(split)
        self.options = options

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int):
        array = np.full((20, 30), 40 * index, dtype=np.uint8)
        return Image.fromarray(array, mode="L"), index


class _FakeSource(TorchvisionSource):
    dataset_class = _FakeVision
    split_names = {"train": "fake-train", "val": "fake-val", "test": "fake-val"}
    expected_layout = "fake files"


def test_torchvision_wrapper_returns_square_items(tmp_path):
    source = _FakeSource(tmp_path, repeat=2)
    train = source.dataset("train", image_size=16)
    assert len(train) == 6
    item = train[4]
    assert item["index"] == 4 and item["image"].shape == (3, 16, 16)
    assert item["image"].dtype == torch.uint8 and torch.all(item["image"] == 40)
    source.dataset("test", image_size=16, channels=1)
    assert _FakeVision.opened[-2:] == ["fake-train", "fake-val"]


def test_sample_export_is_idempotent_and_real(tmp_path):
    files = export_sample_images(tmp_path)
    assert len(files) == len(SAMPLE_IMAGES) and all(path.is_file() for path in files)
    stamps = [path.stat().st_mtime_ns for path in files]
    assert export_sample_images(tmp_path) == files
    assert [path.stat().st_mtime_ns for path in files] == stamps
    for path in files:
        array = np.asarray(Image.open(path))
        assert array.ndim == 3 and min(array.shape[:2]) >= 256
        assert array.std() > 10  # a photograph, not a flat placeholder


def test_sample_source_has_fixed_splits(tmp_path):
    splits = SampleSource(tmp_path / "cache").splits()
    names = {split: sorted(path.stem for path in files) for split, files in splits.items()}
    expected = {
        split: sorted(Path(name).stem for name, where in SAMPLE_IMAGES.items() if where == split)
        for split in ("train", "val", "test")
    }
    assert names == expected
    assert len(expected["val"]) == 4 and len(expected["test"]) == 1


def test_named_split_folders_merge_and_hold_out_val(tmp_path):
    train = [_write(tmp_path / "train" / f"a{i}.png") for i in range(12)]
    extra = [_write(tmp_path / "val" / f"b{i}.png") for i in range(8)]
    test = [_write(tmp_path / "test" / "t.png")]
    folders = {"train": ["train", "val"], "test": ["test"]}
    splits = FolderSource(tmp_path, val_fraction=0.25, folders=folders).splits()
    assert len(splits["val"]) == 5 and splits["test"] == test
    assert sorted(splits["train"] + splits["val"]) == sorted(train + extra)
    assert not set(splits["train"]) & set(splits["val"])
    again = FolderSource(tmp_path, val_fraction=0.25, folders=folders).splits()
    assert again == splits


def test_named_split_folders_are_checked(tmp_path):
    _write(tmp_path / "train" / "a.png")
    with pytest.raises(ConfigError, match="folders"):
        FolderSource(tmp_path, folders={"training": ["train"]})
    with pytest.raises(ConfigError, match="val_fraction"):
        FolderSource(tmp_path, val_fraction=0.0, folders={"train": ["train"]})
    with pytest.raises(DataError, match="missing"):
        FolderSource(tmp_path, folders={"train": ["train"], "val": ["missing"]}).splits()
