"""The datamodule: batch format, deterministic val masks, train-only augmentation, Hydra configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from PIL import Image
from torch import nn

from inpaintlab.conf import CONFIG_DIR
from inpaintlab.data.augment import Augmentation
from inpaintlab.data.datamodule import InpaintingDataModule
from inpaintlab.data.datasets import FolderSource
from inpaintlab.data.sample import SampleSource
from inpaintlab.errors import ConfigError

CONF = CONFIG_DIR
SIZE = 32


class BoxMask:
    """Stand-in mask generator: one random box per sample, all randomness from `generator`."""

    def __call__(self, batch_size, height, width, *, generator=None, device=None):
        top = torch.randint(0, height // 2, (batch_size, 1, 1), generator=generator, device=device)
        left = torch.randint(0, width // 2, (batch_size, 1, 1), generator=generator, device=device)
        ys = torch.arange(height, device=device).view(1, height, 1)
        xs = torch.arange(width, device=device).view(1, 1, width)
        box = (ys >= top) & (ys < top + height // 2) & (xs >= left) & (xs < left + width // 2)
        return box.unsqueeze(1).float()


class CountingAugment(nn.Module):
    """Records how often it runs, and inverts the image so its effect is visible."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, image):
        self.calls += 1
        return 1 - image


@pytest.fixture
def image_root(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 5)):
        for i in range(count):
            array = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
            (tmp_path / split).mkdir(exist_ok=True)
            Image.fromarray(array).save(tmp_path / split / f"{i}.png")
    return tmp_path


def _datamodule(root: Path, **options) -> InpaintingDataModule:
    settings = {"image_size": SIZE, "batch_size": 4, "num_workers": 0, "seed": 7, **options}
    return InpaintingDataModule(FolderSource, root, BoxMask(), **settings)


def _val_batches(datamodule: InpaintingDataModule) -> list[dict[str, torch.Tensor]]:
    return [datamodule.prepare_batch(b, training=False) for b in datamodule.val_dataloader()]


@pytest.mark.parametrize("channels", [1, 3])
def test_batches_have_the_agreed_format(image_root, channels):
    datamodule = _datamodule(image_root, channels=channels)
    datamodule.setup("fit")
    loaders = {True: datamodule.train_dataloader(), False: datamodule.val_dataloader()}
    for training, loader in loaders.items():
        batch = datamodule.prepare_batch(next(iter(loader)), training=training)
        assert set(batch) == {"image", "mask", "index"}
        image, mask, index = batch["image"], batch["mask"], batch["index"]
        assert image.dtype == torch.float32 and image.shape == (4, channels, SIZE, SIZE)
        assert image.min() >= 0 and image.max() <= 1 and image.max() > 0.5
        assert mask.dtype == torch.float32 and mask.shape == (4, 1, SIZE, SIZE)
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        assert index.dtype == torch.long and index.shape == (4,)
    assert datamodule.image_size == SIZE and datamodule.channels == channels


def test_val_masks_are_deterministic_per_sample(image_root):
    first = _datamodule(image_root)
    masks = torch.cat([b["mask"] for b in _val_batches(first)])
    again = torch.cat([b["mask"] for b in _val_batches(first)])
    other_instance = torch.cat([b["mask"] for b in _val_batches(_datamodule(image_root))])
    single = _datamodule(image_root, val_batch_size=1)  # batching must not matter
    one_by_one = torch.cat([b["mask"] for b in _val_batches(single)])
    assert torch.equal(masks, again) and torch.equal(masks, other_instance)
    assert torch.equal(masks, one_by_one)
    assert len({tuple(m.flatten().tolist()) for m in masks}) > 1  # indices get different masks
    other_seed = torch.cat([b["mask"] for b in _val_batches(_datamodule(image_root, seed=8))])
    assert not torch.equal(masks, other_seed)


def test_val_mask_generator_is_used_for_eval_only(image_root):
    class FullMask(BoxMask):
        def __call__(self, batch_size, height, width, *, generator=None, device=None):
            return torch.ones(batch_size, 1, height, width, device=device)

    datamodule = _datamodule(image_root, val_mask_generator=FullMask())
    assert all(torch.all(b["mask"] == 1) for b in _val_batches(datamodule))
    train = datamodule.prepare_batch(next(iter(datamodule.train_dataloader())), training=True)
    assert train["mask"].mean() < 1


def test_train_masks_vary_between_batches_and_repeat_with_seed(image_root):
    def train_masks(datamodule):
        batch = next(iter(datamodule.train_dataloader()))
        return [datamodule.prepare_batch(batch, training=True)["mask"] for _ in range(3)]

    masks = train_masks(_datamodule(image_root))
    assert not torch.equal(masks[0], masks[1]) and not torch.equal(masks[1], masks[2])
    assert all(
        torch.equal(a, b) for a, b in zip(masks, train_masks(_datamodule(image_root)), strict=True)
    )


def test_augmentation_runs_on_training_batches_only(image_root):
    augment = CountingAugment()
    datamodule = _datamodule(image_root, augment=augment)
    raw = next(iter(datamodule.train_dataloader()))
    train = datamodule.prepare_batch(raw, training=True)
    assert augment.calls == 1
    assert torch.allclose(train["image"], 1 - raw["image"].float() / 255)
    val = _val_batches(datamodule)[0]
    assert augment.calls == 1 and val["image"].max() <= 1


def test_loaders_follow_settings(image_root):
    datamodule = _datamodule(image_root, batch_size=4, val_batch_size=2)
    train, val = datamodule.train_dataloader(), datamodule.val_dataloader()
    assert train.drop_last and len(train) == 1 and not val.drop_last and len(val) == 3
    assert not train.persistent_workers and train.pin_memory == torch.cuda.is_available()
    test = datamodule.test_dataloader()
    assert [len(test.dataset)] == [5]  # no test folder: test is val
    assert len(datamodule.predict_dataloader().dataset) == 5
    small = _datamodule(image_root, batch_size=16)  # fewer images than one batch
    assert len(small.train_dataloader()) == 1


def test_worker_processes_deliver_the_same_val_batches(image_root):
    parallel = _datamodule(image_root, num_workers=2)
    assert parallel.train_dataloader().persistent_workers
    serial_masks = [b["mask"] for b in _val_batches(_datamodule(image_root))]
    batches = _val_batches(parallel)
    assert all(torch.equal(b["mask"], m) for b, m in zip(batches, serial_masks, strict=True))


def train_images(datamodule: InpaintingDataModule, epoch: int) -> list[torch.Tensor]:
    loader = datamodule.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return [batch["image"] for batch in loader]


@pytest.mark.parametrize("workers", [0, 2])
def test_training_order_and_crops_depend_only_on_seed_and_epoch(image_root, workers):
    reference = train_images(_datamodule(image_root, batch_size=2), epoch=1)
    torch.manual_seed(123)  # the global stream plays no part
    again = train_images(_datamodule(image_root, batch_size=2, num_workers=workers), epoch=1)
    assert all(torch.equal(a, b) for a, b in zip(reference, again, strict=True))
    other_epoch = train_images(_datamodule(image_root, batch_size=2), epoch=2)
    assert not all(torch.equal(a, b) for a, b in zip(reference, other_epoch, strict=True))


def test_a_resumed_sampler_skips_the_batches_its_epoch_already_trained_on(image_root):
    datamodule = _datamodule(image_root, batch_size=2)
    full = train_images(datamodule, epoch=1)
    datamodule.load_state_dict({"train_position": [1, 1]})  # epoch 1, one batch done
    resumed = datamodule.train_dataloader()
    resumed.sampler.set_epoch(1)
    rest = [batch["image"] for batch in resumed]
    assert len(rest) == len(full) - 1
    assert all(torch.equal(a, b) for a, b in zip(full[1:], rest, strict=True))
    # the next pass over an epoch is whole again
    assert len([batch for batch in resumed]) == len(full)


def test_bad_settings_are_config_errors(image_root):
    with pytest.raises(ConfigError, match="channels"):
        _datamodule(image_root, channels=4)
    with pytest.raises(ConfigError, match="positive"):
        _datamodule(image_root, batch_size=0)


class _Recorder(pl.LightningModule):
    """Keeps the batches Lightning hands to each step."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.seen: dict[str, list] = {"train": [], "val": []}

    def training_step(self, batch, batch_idx):
        self.seen["train"].append(batch)
        return (self.weight * batch["image"].mean()).sum()

    def validation_step(self, batch, batch_idx):
        self.seen["val"].append(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_routes_train_and_val_batches(image_root):
    augment = CountingAugment()
    datamodule = _datamodule(image_root, augment=augment, batch_size=2)
    model = _Recorder()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=datamodule)
    assert len(model.seen["train"]) == 2 and augment.calls == 2
    val = model.seen["val"][0]
    expected = datamodule.eval_masks(val["index"], SIZE, SIZE, "cpu")
    assert torch.equal(val["mask"], expected)


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(overrides=["+paths=default", *overrides])


@pytest.mark.parametrize("augment", ["default", "strong", "none"])
def test_sample_config_builds_a_working_datamodule(tmp_path, augment):
    cfg = _compose(["+data=sample", f"+augment={augment}", f"paths.root_dir={tmp_path}"])
    built_augment = instantiate(cfg.augment)
    assert (built_augment is None) == (augment == "none")
    datamodule = instantiate(cfg.data, mask_generator=BoxMask(), augment=built_augment)
    assert isinstance(datamodule.source, SampleSource)
    assert datamodule.source.root == tmp_path / ".cache" / "sample_images"
    assert isinstance(datamodule.augment, Augmentation) or datamodule.augment is None
    assert datamodule.image_size == 128 and datamodule.channels == 3


def test_folder_config_and_its_root_override(image_root, tmp_path):
    overrides = ["+data=folder", f"data.root={image_root}", f"paths.root_dir={tmp_path}"]
    cfg = _compose([*overrides, "data.image_size=32", "data.num_workers=0"])
    datamodule = instantiate(cfg.data, mask_generator=BoxMask(), augment=None)
    datamodule.setup("fit")
    assert len(datamodule.dataset("train")) == 6 and len(datamodule.dataset("val")) == 5


@pytest.mark.parametrize("name", ["celeba", "places365"])
def test_torchvision_configs_point_at_the_data_dir(tmp_path, name):
    cfg = _compose([f"+data={name}", f"paths.root_dir={tmp_path}"])
    datamodule = instantiate(cfg.data, mask_generator=BoxMask())
    assert str(datamodule.source.root).startswith(str(tmp_path / "data"))
    assert datamodule.source.download is False
