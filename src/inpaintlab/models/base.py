"""What every inpainting GAN shares: compositing, metrics by hole-ratio bin, samples,
prediction, checkpoint identity and network-weight loading."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from inpaintlab import __version__
from inpaintlab.errors import CheckpointError, one_line
from inpaintlab.losses.generator_loss import GeneratorLoss
from inpaintlab.metrics.image import BinnedMetrics
from inpaintlab.models.checkpoint import CHECKPOINT_KEY, count_the_finished_batch, read_checkpoint
from inpaintlab.models.manual_gan import ManualGANModule
from inpaintlab.models.sample_grid import sample_grid, save_grid
from inpaintlab.ops.compositing import composite


def plain(config: Any) -> Any:
    """A DictConfig as plain containers, so checkpoints load with torch.load(weights_only=True)."""
    if isinstance(config, DictConfig):
        return OmegaConf.to_container(config, resolve=True)
    return config


class InpaintingModule(ManualGANModule):
    """Base LightningModule of the three variants: subclasses build networks (then call
    `build_generator_average`), `create_optimizers`, `inpaint` and `gan_step`."""

    # how inference fits images of any size (inpaintlab.inference.inpainter): sides padded up to a
    # multiple of `size_multiple`, or the image resized to `fixed_size` squared when set
    size_multiple: int = 1
    fixed_size: int | None = None

    def __init__(self, optimizer: dict, **switches: Any) -> None:
        super().__init__(optimizer, **switches)
        self.num_samples = self.switches.num_samples
        self.val_metrics = BinnedMetrics()
        self.test_metrics = BinnedMetrics()
        self.run_config: dict | None = None
        self._sample_batch: dict[str, Tensor] | None = None

    @property
    def image_channels(self) -> int:
        """Channels of the images the generator was built for (1 grey, 3 RGB)."""
        return self.hparams["generator"].get("channels", 3)

    @property
    def generator_extensions(self) -> dict[str, Any]:
        """The prefill and residual switches, as keyword arguments of the image generator."""
        return {"prefill": self.switches.prefill, "residual": self.switches.residual}

    @property
    def fillable_box(self) -> tuple[int, int, int] | None:
        """(top, left, size) of the only square, at `fixed_size`, in which the model can fill
        holes; None when it fills them anywhere."""
        return None

    @abstractmethod
    def inpaint(self, image: Tensor, mask: Tensor) -> Tensor:
        """Raw full-size prediction in [0, 1] for `image` with holes where `mask` is 1."""

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        """The composite: known pixels of `image`, predicted pixels in the hole."""
        return composite(self.inpaint(image, mask), image, mask)

    def prepare_input(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Image and mask of a batch, in channels_last layout when configured."""
        image, mask = batch["image"], batch["mask"]
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
            mask = mask.contiguous(memory_format=torch.channels_last)
        return image, mask

    def discriminator_step(
        self,
        discriminator: nn.Module,
        criterion: GeneratorLoss,
        real: Tensor,
        fake: Tensor,
        optimizer: Any,
        name: str,
    ) -> Tensor:
        """One update of `discriminator` (real against the detached `fake`) with the loss of
        the generator it judges (`criterion`); logs it as train/<name> and returns it."""
        loss = criterion.discriminator_loss(discriminator(real), discriminator(fake.detach()))
        self.step_optimizer(optimizer, loss, name)
        self.log(f"train/{name}", loss, on_epoch=True)
        return loss

    def adversarial_pair_step(
        self,
        criterion: GeneratorLoss,
        discriminator: nn.Module | None,
        real: Tensor,
        fake: Tensor,
        terms: dict[str, Tensor],
        pair: str = "",
    ) -> None:
        """One update of `discriminator` (skipped when None), then one of the generator that
        made `fake` on `terms` plus the adversarial term; their optimisers are named
        <pair>discriminator and <pair>generator, their losses logged as d_loss and g_loss."""
        optimizers = self.named_optimizers()
        if discriminator is not None:
            self.discriminator_step(
                discriminator, criterion, real, fake, optimizers[f"{pair}discriminator"], "d_loss"
            )
            terms = criterion.with_adversarial(terms, discriminator(fake))
        self.generator_step(optimizers[f"{pair}generator"], terms, "g_loss")

    def generator_step(
        self, optimizer: Any, terms: dict[str, Tensor], name: str, prefix: str = ""
    ) -> None:
        """One generator update on terms["total"] (logged as train/<name>); the other terms
        are logged as train/<prefix><term>."""
        self.step_optimizer(optimizer, terms["total"], name)
        self.log(f"train/{name}", terms["total"], on_epoch=True, prog_bar=True)
        named = {f"train/{prefix}{k}": v for k, v in terms.items() if k != "total"}
        self.log_dict(named, on_epoch=True)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        # the sample grid is built and written by the first process only
        keep_samples = batch_idx == 0 and self.global_rank == 0
        self._evaluate_batch(batch, self.val_metrics, keep_samples=keep_samples)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate_batch(batch, self.test_metrics, keep_samples=False)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)
        if self._sample_batch is not None and not self.trainer.sanity_checking:
            self._write_samples(self._sample_batch)
        self._sample_batch = None
        self.step_plateau_schedulers()

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        image, mask = self.prepare_input(batch)
        return {"composite": self(image, mask), "mask": mask, "index": batch["index"]}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        count_the_finished_batch(checkpoint)
        cls = type(self)
        checkpoint[CHECKPOINT_KEY] = {
            "version": __version__,
            "model": f"{cls.__module__}.{cls.__qualname__}",
            "config": self.run_config,
        }

    def sample_extras(self, image: Tensor, mask: Tensor) -> list[Tensor]:
        """Extra tiles for each row of the sample grid (e.g. edge maps); none by default."""
        return []

    @staticmethod
    def build_loss(config: dict, **arguments: Any) -> GeneratorLoss:
        """A loss config (conf/loss/) built by instantiate, `arguments` added; the modules call
        this when fitting starts, so evaluation and inference never build a VGG."""
        return hydra.utils.instantiate(config, **arguments)

    def fitting_from_scratch(self, stage: str) -> bool:
        """Whether `stage` starts a new fit (not a resumed one, not validation or testing)."""
        resuming = self._trainer is not None and self.trainer.ckpt_path is not None
        return stage == "fit" and not resuming

    def load_network_weights(
        self, path: str, required: Sequence[str], optional: Sequence[str] = ()
    ) -> None:
        """Copy the weights of the named networks (attributes such as "generator") from an
        inpaintlab checkpoint: optimiser states and counters are not touched."""
        state = read_checkpoint(path)["state_dict"]
        for name in (*required, *optional):
            network, prefix = getattr(self, name), f"{name}."
            weights = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            if name in required and not weights:
                raise CheckpointError(
                    f"{path} holds no {name} weights: pass a checkpoint of this model"
                )
            if network is None or not weights:
                continue
            try:
                network.load_state_dict(weights)
            except RuntimeError as error:
                raise CheckpointError(
                    f"the {name} of {path} does not fit this model "
                    f"({one_line(error)}): use a checkpoint of the same architecture"
                ) from error
        self.reset_generator_average()

    def _evaluate_batch(self, batch: dict[str, Tensor], metrics: BinnedMetrics, keep_samples: bool):
        image, mask = self.prepare_input(batch)
        pred = self.inpaint(image, mask).float()
        output = composite(pred, image, mask)
        metrics.update(output, image, mask)
        if keep_samples:
            n = self.num_samples
            image, mask = image[:n], mask[:n]
            extras = self.sample_extras(image, mask)
            self._sample_batch = {"image": image, "mask": mask, "pred": pred[:n], "extras": extras}

    def _log_metrics(self, split: str, metrics: BinnedMetrics) -> None:
        values = metrics.compute()
        metrics.reset()
        self.log_dict({f"{split}/{key}": value for key, value in values.items()}, sync_dist=False)

    def logged_step(self) -> int:
        """The step loggers record metrics at: training batches, not optimiser steps (a GAN
        batch steps two optimisers), so images line up with the scores they belong to."""
        return self.trainer.fit_loop.epoch_loop._batches_that_stepped

    def _write_samples(self, samples: dict[str, Tensor]) -> None:
        grid = sample_grid(samples["image"], samples["mask"], samples["pred"], samples["extras"])
        step = self.logged_step()
        folder = Path(self.trainer.default_root_dir) / "samples"
        save_grid(grid, folder / f"epoch{self.current_epoch:03d}_step{step:06d}.png")
        for logger in self.loggers:
            log_image(logger, "val/samples", grid, step)


def log_image(logger: pl.loggers.Logger, key: str, grid: Tensor, step: int) -> None:
    """Send an image grid to loggers that can show images (wandb, TensorBoard)."""
    if isinstance(logger, pl.loggers.WandbLogger):
        logger.log_image(key=key, images=[grid], step=step, caption=[SAMPLE_CAPTION])
    elif isinstance(logger, pl.loggers.TensorBoardLogger):
        logger.experiment.add_image(key, grid, global_step=step)


SAMPLE_CAPTION = "masked input | output | composite | original"
