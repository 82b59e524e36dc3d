"""What every inpainting GAN shares: compositing, metrics by hole-ratio bin, samples, optimisers,
and the training switches (compile, clipping, schedulers, generator EMA, the non-finite guard)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor, nn

from inpaintlab import __version__
from inpaintlab.checkpoint import CHECKPOINT_KEY, read_checkpoint
from inpaintlab.compositing import composite
from inpaintlab.errors import CheckpointError, ConfigError, TrainingError
from inpaintlab.evaluation.metrics import BinnedMetrics
from inpaintlab.models.ema import WeightAverage
from inpaintlab.models.switches import TrainingSwitches, build_scheduler, is_plateau
from inpaintlab.sample_grid import sample_grid, save_grid

AVERAGE = "generator_average"


def plain(config: Any) -> Any:
    """A DictConfig as plain containers, so checkpoints load with torch.load(weights_only=True)."""
    if isinstance(config, DictConfig):
        return OmegaConf.to_container(config, resolve=True)
    return config


class InpaintingModule(pl.LightningModule):
    """Base LightningModule: subclasses build networks (then call `build_generator_average`),
    `create_optimizers`, `inpaint` and `training_step`; `switches` are the keyword options of
    `TrainingSwitches` (conf/model/switches/default.yaml)."""

    # how inference fits images of any size (inpaintlab.inference): sides padded up to a
    # multiple of `size_multiple`, or the image resized to `fixed_size` squared when set
    size_multiple: int = 1
    fixed_size: int | None = None

    def __init__(self, optimizer: dict, **switches: Any) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.optimizer_config = optimizer
        self.switches = TrainingSwitches.from_options(switches)
        self.num_samples = self.switches.num_samples
        self.channels_last = self.switches.channels_last
        self.val_metrics = BinnedMetrics()
        self.test_metrics = BinnedMetrics()
        self.run_config: dict | None = None
        self.generator_average: WeightAverage | None = None
        self.optimizer_names: list[str] = []
        self._sample_batch: dict[str, Tensor] | None = None
        self._skipped_in_a_row = 0
        self._buffers_at_batch_start: list[Tensor] = []
        self._compiled = False

    @property
    def network_names(self) -> tuple[str, ...]:
        """Attributes holding the networks (generators and discriminators) this model has."""
        names = ("generator", "discriminator")
        return tuple(name for name in names if getattr(self, name, None) is not None)

    @property
    def trained_generator_names(self) -> tuple[str, ...]:
        """The generators that fitting updates (and that `model.ema_decay` averages)."""
        return ("generator",)

    def build_generator_average(self) -> None:
        """Averaged copies of the trained generators when `model.ema_decay` is set; subclasses
        call this at the end of __init__, once their networks exist."""
        if self.switches.ema_decay is not None:
            self.generator_average = WeightAverage(
                self._trained_generators(), self.switches.ema_decay
            )

    def _trained_generators(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in self.trained_generator_names}

    def inference_network(self, name: str) -> nn.Module:
        """Network `name` for inference: its moving average outside training when there is one
        (validation, testing, prediction, `inpaintlab inpaint`, export), else the network."""
        average = self.generator_average
        if average is not None and not self.training and name in average.networks:
            return average.networks[name]
        return getattr(self, name)

    @property
    def image_channels(self) -> int:
        """Channels of the images the generator was built for (1 grey, 3 RGB)."""
        return self.hparams["generator"].get("channels", 3)

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

    def build_optimizer(self, parameters: Any, lr_scale: float = 1.0) -> torch.optim.Optimizer:
        """Instantiate the configured (partial) optimiser, optionally at a scaled learning rate."""
        factory = hydra.utils.instantiate(self.optimizer_config)
        return factory(parameters, lr=factory.keywords["lr"] * lr_scale)

    @abstractmethod
    def create_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers in the order `training_step` uses them, named (e.g. "generator")."""

    def configure_optimizers(self) -> Any:
        optimizers = self.create_optimizers()
        self.optimizer_names = list(optimizers)
        if self.switches.scheduler is None:
            return list(optimizers.values())
        schedulers = [build_scheduler(self.switches.scheduler, o) for o in optimizers.values()]
        return list(optimizers.values()), schedulers

    def prepare_input(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Image and mask of a batch, in channels_last layout when configured."""
        image, mask = batch["image"], batch["mask"]
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
            mask = mask.contiguous(memory_format=torch.channels_last)
        return image, mask

    def setup(self, stage: str) -> None:
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        if stage == "fit" and self.switches.compile and not self._compiled:
            for name in self.network_names:
                getattr(self, name).compile(
                    mode=self.switches.compile_mode, backend=self.switches.compile_backend
                )
            self._compiled = True

    def step_optimizer(self, optimizer: Any, loss: Tensor, name: str) -> None:
        """One manual update of `optimizer`'s parameters only (the others stay untouched), unless
        the non-finite guard skips it. `name` is the loss's name in messages."""
        if not self.loss_is_finite(loss, name):
            return
        self.toggle_optimizer(optimizer)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()
        self.untoggle_optimizer(optimizer)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning calls this inside optimizer.step(), after unscaling 16-mixed gradients
        if self.switches.gradient_clip_val is not None:
            self.clip_gradients(
                optimizer,
                gradient_clip_val=self.switches.gradient_clip_val,
                gradient_clip_algorithm=self.switches.gradient_clip_algorithm,
            )

    def loss_is_finite(self, loss: Tensor, name: str) -> bool:
        """The non-finite guard (one host sync; all processes agree): True to step; False to skip
        the step (`model.nan_guard=skip`); otherwise save the last finite state and stop."""
        finite = self.trainer.strategy.reduce_boolean_decision(
            bool(torch.isfinite(loss.detach()).all()), all=True
        )
        if finite:
            self._skipped_in_a_row = 0
            return True
        self._restore_network_buffers()  # a non-finite forward pass may have reached them
        where = f"epoch {self.current_epoch}, global step {self.global_step}"
        guard = self.switches
        if guard.nan_guard == "skip" and self._skipped_in_a_row < guard.nan_max_skips:
            self._skipped_in_a_row += 1
            rank_zero_warn(f"train/{name} is not finite at {where}: optimiser step skipped")
            return False
        saved = self.save_last_finite_state()
        if guard.nan_guard == "skip":
            where += f" after {guard.nan_max_skips} skipped steps in a row"
        raise TrainingError(
            f"train/{name} is not finite at {where}: the last finite state is in {saved}; "
            "lower model.optimizer.lr or set model.gradient_clip_val, then resume with "
            f"ckpt_path={saved}"
        )

    def save_last_finite_state(self) -> Path:
        """Checkpoint the current (finite) state beside the run's checkpoints, under a new name."""
        checkpointing = self.trainer.checkpoint_callback
        folder = Path(
            checkpointing.dirpath
            if checkpointing is not None and checkpointing.dirpath
            else Path(self.trainer.default_root_dir) / "checkpoints"
        )
        path = folder / f"nonfinite_step{self.global_step:06d}.ckpt"
        copy = 0
        while path.exists():
            copy += 1
            path = folder / f"nonfinite_step{self.global_step:06d}_{copy}.ckpt"
        path = Path(self.trainer.strategy.broadcast(str(path)))
        self.trainer.save_checkpoint(path, weights_only=False)
        return path

    def _network_buffers(self) -> list[Tensor]:
        """The networks' buffers (BatchNorm statistics and counts, spectral-norm vectors)."""
        networks = [getattr(self, name) for name in self.network_names]
        return [buffer for network in networks for buffer in network.buffers()]

    def _restore_network_buffers(self) -> None:
        """Put back the buffers of the batch's start (kept by on_train_batch_start)."""
        saved = self._buffers_at_batch_start
        if not saved:
            return
        with torch.no_grad():
            for buffer, value in zip(self._network_buffers(), saved, strict=True):
                buffer.copy_(value)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # kept for the non-finite guard: a skipped or stopping step must not leave NaN statistics
        self._buffers_at_batch_start = [buffer.clone() for buffer in self._network_buffers()]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.generator_average is not None:
            self.generator_average.update(self._trained_generators())
        if self.switches.scheduler_interval == "step":
            self._step_schedulers()

    def on_train_epoch_end(self) -> None:
        if self.switches.scheduler_interval == "epoch":
            self._step_schedulers()

    def _step_schedulers(self) -> None:
        """Step the clock-driven schedulers (manual optimisation leaves that to the module)."""
        configs = self.trainer.lr_scheduler_configs
        for config in configs:
            if not is_plateau(config.scheduler):
                config.scheduler.step()
        if configs:
            self._log_learning_rates()

    def _step_plateau_schedulers(self) -> None:
        """Step ReduceLROnPlateau schedulers on the monitored validation metric."""
        plateaus = [
            c.scheduler for c in self.trainer.lr_scheduler_configs if is_plateau(c.scheduler)
        ]
        if not plateaus or self.trainer.sanity_checking:
            return
        monitor = self.switches.scheduler_monitor
        value = self.trainer.callback_metrics.get(monitor)
        if value is None:
            raise ConfigError(
                f"model.scheduler_monitor={monitor!r} is not a validation metric: use e.g. "
                "val/psnr/all"
            )
        for scheduler in plateaus:
            scheduler.step(value)
        self._log_learning_rates()

    def _log_learning_rates(self) -> None:
        for name, optimizer in zip(self.optimizer_names, self.trainer.optimizers, strict=True):
            self.log(f"train/lr/{name}", optimizer.param_groups[0]["lr"])

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
        self._step_plateau_schedulers()

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        image, mask = self.prepare_input(batch)
        return {"composite": self(image, mask), "mask": mask, "index": batch["index"]}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resume across a change of `model.ema_decay`: a checkpoint without averages starts
        them from its generators; averages this run does not keep are dropped."""
        state = checkpoint["state_dict"]
        has_average = any(key.startswith(f"{AVERAGE}.") for key in state)
        if self.generator_average is None and has_average:
            for key in [key for key in state if key.startswith(f"{AVERAGE}.")]:
                del state[key]
        elif self.generator_average is not None and not has_average:
            for key, value in list(state.items()):
                if key.split(".")[0] in self.generator_average.networks:
                    state[f"{AVERAGE}.networks.{key}"] = value.clone()
            state[f"{AVERAGE}.updates"] = torch.zeros((), dtype=torch.long)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        cls = type(self)
        checkpoint[CHECKPOINT_KEY] = {
            "version": __version__,
            "model": f"{cls.__module__}.{cls.__qualname__}",
            "config": self.run_config,
        }

    def sample_extras(self, image: Tensor, mask: Tensor) -> list[Tensor]:
        """Extra tiles for each row of the sample grid (e.g. edge maps); none by default."""
        return []

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
                    f"({str(error).splitlines()[0]}): use a checkpoint of the same architecture"
                ) from error
        if self.generator_average is not None:
            self.generator_average.reset(self._trained_generators())

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
