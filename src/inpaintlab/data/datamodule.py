"""The LightningDataModule: cheap uint8 loading on the CPU, augmentation and masks on the device."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from inpaintlab.data.datasets import DatasetSource, Split
from inpaintlab.errors import ConfigError, require_numbers
from inpaintlab.ops.ranks import gather_from_ranks, generator_state, rank_entry, restore_generator

if TYPE_CHECKING:
    from inpaintlab.data.masks import MaskGenerator

Batch = dict[str, torch.Tensor]


class InpaintingDataModule(pl.LightningDataModule):
    """Image batches with their hole masks, for every GAN variant.

    Workers only decode and crop (uint8). After the transfer to the device each batch becomes
    `{"image": float [0, 1] B x C x S x S, "mask": float B x 1 x S x S, "index": long B}`:
    training batches are augmented, then masked from one device generator seeded with
    `seed + global_rank`; val/test/predict batches are not augmented and the mask of sample
    `i` is drawn from a generator seeded with `seed + i`, the same in every epoch and run.
    `predict_dataloader` serves the test split. `pin_memory` applies only when CUDA is present.

    Under DDP each process gets `batch_size` images per step; val/test/predict samples are
    split between processes without repeats (`ShardSampler`), so metrics count each once.
    Training order and crops depend only on `seed` and the epoch (`TrainingSampler`). The
    training mask generators' states and the position in the epoch are part of checkpoints
    (`state_dict`), so a run resumed anywhere, mid-epoch included, draws the samples and masks
    an uninterrupted run would have drawn.

    `source` builds the splits from `root` (a source class, or a partial one from the config),
    so every dataset is located by the one key `data.root`.
    """

    def __init__(
        self,
        source: Callable[[str | os.PathLike], DatasetSource],
        root: str | os.PathLike,
        mask_generator: MaskGenerator,
        image_size: int = 128,
        channels: int = 3,
        batch_size: int = 16,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        val_mask_generator: MaskGenerator | None = None,
        augment: nn.Module | None = None,
        seed: int = 0,
    ):
        super().__init__()
        require_numbers(
            int,
            **{
                "data.image_size": image_size,
                "data.batch_size": batch_size,
                "data.num_workers": num_workers,
                "data.seed": seed,
            },
        )
        if channels not in (1, 3):
            raise ConfigError(f"data.channels must be 1 or 3, got {channels}")
        if image_size < 1 or batch_size < 1:
            raise ConfigError(
                f"data.image_size and data.batch_size must be positive, "
                f"got {image_size} and {batch_size}"
            )
        self.source = source(root)
        self.mask_generator = mask_generator
        self.val_mask_generator = val_mask_generator or mask_generator
        self.augment = augment
        self.image_size = image_size
        self.channels = channels
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.seed = seed
        self.datasets: dict[Split, Dataset] = {}
        self._train_generator: torch.Generator | None = None
        # this rank's mask generator state from a checkpoint, for the generator built next
        self._resumed_state: dict[str, Any] | None = None
        # (epoch, training batches done in it) from a checkpoint, for the sampler built next
        self._resumed_position: tuple[int, int] | None = None

    def prepare_data(self) -> None:
        """Download or export the data (one process per node)."""
        self.source.prepare()

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs (all of them when `stage` is None)."""
        needed: dict[str | None, tuple[Split, ...]] = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("test",),
        }
        for split in needed.get(stage, ("train", "val", "test")):
            self.dataset(split)

    def dataset(self, split: Split) -> Dataset:
        """The dataset of `split`, built on first use."""
        if split not in self.datasets:
            self.datasets[split] = self.source.dataset(split, self.image_size, self.channels)
        return self.datasets[split]

    def _rank(self) -> tuple[int, int]:
        """(global rank, world size) of this process; (0, 1) outside a Trainer."""
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _eval_sampler(self, split: Split, dataset: Dataset) -> ShardSampler | None:
        """This process's share of an evaluation split under DDP; None in a single process.
        (Training batches get Lightning's DistributedSampler, seeded by the global seed.)"""
        rank, world_size = self._rank()
        if world_size == 1:
            return None
        if len(dataset) < world_size:
            # a process without images would skip the metric gathering the others wait for
            raise ConfigError(
                f"the {split} split has {len(dataset)} image(s) for {world_size} processes: "
                f"give it at least one image per process, or use fewer devices"
            )
        return ShardSampler(dataset, world_size, rank)

    def _train_sampler(self, dataset: Dataset) -> TrainingSampler:
        """This process's share of each shuffled epoch, resuming where a checkpoint left off."""
        rank, world_size = self._rank()
        sampler = TrainingSampler(dataset, world_size, rank, seed=self.seed)
        if self._resumed_position is not None:
            epoch, batches = self._resumed_position
            sampler.resume_at(epoch, batches * self.batch_size)
            self._resumed_position = None
        return sampler

    def _loader(self, split: Split, batch_size: int, train: bool) -> DataLoader:
        dataset = self.dataset(split)
        sampler = self._train_sampler(dataset) if train else self._eval_sampler(split, dataset)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            # the workers' seeds come from here, not from the global stream a checkpoint restores
            generator=torch.Generator().manual_seed(self.seed),
            worker_init_fn=ignore_interrupts,
            # a dataset smaller than one batch would otherwise yield no training step at all
            drop_last=train and len(dataset) >= batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.val_batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.val_batch_size, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> Batch:
        """Turn a transferred uint8 batch into images, masks and indices (see the class doc)."""
        training = self.trainer is not None and self.trainer.training
        return self.prepare_batch(batch, training)

    def prepare_batch(self, batch: dict[str, Any], training: bool) -> Batch:
        """Float images in [0, 1] and their masks: augmented and random when `training`."""
        image = batch["image"].float().div_(255.0)
        index = torch.as_tensor(batch["index"], dtype=torch.long, device=image.device)
        if training:
            if self.augment is not None:
                image = self.augment(image)
            mask = self._train_masks(image)
        else:
            mask = self.eval_masks(index, image.shape[-2], image.shape[-1], image.device)
        return {"image": image, "mask": mask, "index": index}

    def state_dict(self) -> dict[str, Any]:
        """The training mask generator state of every rank (a collective call: all ranks) and
        the position in the training epoch."""
        return {
            "mask_generators": gather_from_ranks(generator_state(self._train_generator)),
            "train_position": self._train_position(),
        }

    def _train_position(self) -> list[int] | None:
        """[epoch, training batches done in it] while fitting (also during its validation);
        None otherwise."""
        if self.trainer is None or self.trainer.state.fn != "fit":
            return None
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return [self.trainer.current_epoch, done]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep this rank's mask generator state and the epoch position for the next fit."""
        rank, world_size = self._rank()
        states = state_dict.get("mask_generators")
        self._resumed_state = rank_entry(states, rank, world_size, "training mask generators")
        position = state_dict.get("train_position")
        self._resumed_position = tuple(position) if position else None

    def _train_masks(self, image: torch.Tensor) -> torch.Tensor:
        generator = self._train_generator
        if generator is None or generator.device != image.device:
            generator = restore_generator(self._resumed_state, image.device)
            self._resumed_state = None
            if generator is None:
                generator = torch.Generator(image.device).manual_seed(self.seed + self._rank()[0])
            self._train_generator = generator
        batch, _, height, width = image.shape
        return self.mask_generator(batch, height, width, generator=generator, device=image.device)

    def eval_masks(
        self, index: torch.Tensor, height: int, width: int, device: torch.device | str
    ) -> torch.Tensor:
        """The deterministic val/test masks of the samples `index`: one seed per sample."""
        masks = [
            self.val_mask_generator(
                1,
                height,
                width,
                generator=torch.Generator(device).manual_seed(self.seed + i),
                device=device,
            )
            for i in index.tolist()
        ]
        if not masks:
            return torch.zeros(0, 1, height, width, device=device)
        return torch.cat(masks)


def ignore_interrupts(worker_id: int) -> None:
    """A DataLoader worker ignores Ctrl-C, which a terminal sends to every process of the run:
    the main process decides (it saves a checkpoint first) and then stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ShardSampler(DistributedSampler):
    """Indices `rank`, `rank + num_replicas`, ... in order and without padding, so that the
    processes together see every sample exactly once. torch's DistributedSampler repeats
    samples to give every process as many (a repeated image would count twice in validation
    metrics); Lightning keeps a DistributedSampler it finds instead of injecting its own."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.total_size = len(dataset)
        self.num_samples = len(range(rank, self.total_size, num_replicas))

    def __iter__(self):
        return iter(range(self.rank, self.total_size, self.num_replicas))


class TrainingSampler(DistributedSampler):
    """This process's share of a shuffled epoch, as (index, crop seed) pairs. The order and the
    crops depend only on `seed` and the epoch (never on the global random streams or on which
    worker decodes a sample), and `resume_at` makes the next pass over an epoch start after the
    samples a checkpointed run already trained on. Lightning keeps it (a DistributedSampler)
    and sets its epoch."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, samples: int) -> None:
        """Skip this process's first `samples` samples when `epoch` is iterated next."""
        self._resume = (epoch, samples)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        crop_seeds = torch.randint(2**62, (len(self.dataset),), generator=generator).tolist()
        start = 0
        if self._resume is not None and self._resume[0] <= self.epoch:
            start = self._resume[1] if self._resume[0] == self.epoch else 0
            self._resume = None
        shard = list(super().__iter__())[start:]
        return iter([(index, crop_seeds[index]) for index in shard])


def build_datamodule(cfg: DictConfig, data: DictConfig, mask: DictConfig, train: bool):
    """The configured DataModule with its mask generator (and augmentation when training)."""
    augment = hydra.utils.instantiate(cfg.augment) if train and cfg.get("augment") else None
    return hydra.utils.instantiate(
        data, mask_generator=hydra.utils.instantiate(mask), augment=augment
    )
