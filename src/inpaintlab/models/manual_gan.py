"""A manually optimised GAN LightningModule with the training switches every model shares:
channels_last, torch.compile, gradient clipping, learning-rate schedulers stepped in the manual
loop, moving averages of the generators, and the non-finite step guard."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor, nn

from inpaintlab.errors import ConfigError, TrainingError
from inpaintlab.models.checkpoint import checkpoint_folder
from inpaintlab.models.ema import WeightAverage
from inpaintlab.models.guard import (
    StepCounts,
    non_finite_flag,
    restore_where,
    skips_on_device,
    step_unless,
)
from inpaintlab.models.switches import TrainingSwitches, build_scheduler, is_plateau

AVERAGE = "generator_average"


class ManualGANModule(pl.LightningModule):
    """Generators and discriminators updated explicitly by `step_optimizer`, one optimiser at a
    time; `switches` are the keyword options of `TrainingSwitches`
    (conf/model/switches/default.yaml). Subclasses name their networks (`network_names`,
    `trained_generator_names`), build the optimisers (`create_optimizers`), train on a batch
    (`gan_step`), and call `build_generator_average` once their networks exist."""

    def __init__(self, optimizer: dict, **switches: Any) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.optimizer_config = optimizer
        self.switches = TrainingSwitches.from_options(switches)
        self.channels_last = self.switches.channels_last
        self.generator_average: WeightAverage | None = None
        self.optimizer_names: list[str] = []
        self._step_counts = StepCounts()
        self._batch_flag: Tensor | None = None  # 1 once a step of this batch was skipped
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

    def reset_generator_average(self) -> None:
        """Restart the averages from the generators' current weights (after loading them)."""
        if self.generator_average is not None:
            self.generator_average.reset(self._trained_generators())

    def inference_network(self, name: str) -> nn.Module:
        """Network `name` for inference: its moving average outside training when there is one
        (validation, testing, prediction, `inpaintlab inpaint`, export), else the network."""
        average = self.generator_average
        if average is not None and not self.training and name in average.networks:
            return average.networks[name]
        return getattr(self, name)

    def build_optimizer(self, parameters: Any, lr_scale: float = 1.0) -> torch.optim.Optimizer:
        """Instantiate the configured (partial) optimiser, optionally at a scaled learning rate."""
        factory = hydra.utils.instantiate(self.optimizer_config)
        return factory(parameters, lr=factory.keywords["lr"] * lr_scale)

    @abstractmethod
    def create_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers by name (e.g. "generator"); `gan_step` takes them from
        `named_optimizers()`."""

    def configure_optimizers(self) -> Any:
        optimizers = self.create_optimizers()
        self.optimizer_names = list(optimizers)
        if self.switches.scheduler is None:
            return list(optimizers.values())
        schedulers = [build_scheduler(self.switches.scheduler, o) for o in optimizers.values()]
        return list(optimizers.values()), schedulers

    def named_optimizers(self) -> dict[str, Any]:
        """This step's optimisers (Lightning's wrappers) under the names `create_optimizers`
        gave them."""
        optimizers = self.optimizers()
        if not isinstance(optimizers, list):
            optimizers = [optimizers]
        return dict(zip(self.optimizer_names, optimizers, strict=True))

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
        """One manual update of `optimizer`'s parameters only (the others stay untouched); the
        non-finite guard skips it when `name`'s loss or gradients are not finite."""
        self.toggle_optimizer(optimizer)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        flag = non_finite_flag(loss, parameters, check_gradients=scaler is None)
        flag = self.trainer.strategy.reduce(flag, reduce_op="max")  # every process agrees
        on_device = scaler is None and skips_on_device(getattr(optimizer, "optimizer", optimizer))
        self._step_counts.record(flag, name, self.global_step)
        step_unless(optimizer, flag, on_device)
        self.untoggle_optimizer(optimizer)
        self._batch_flag = flag if self._batch_flag is None else self._batch_flag.maximum(flag)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning calls this inside optimizer.step(), after unscaling 16-mixed gradients
        if self.switches.gradient_clip_val is not None:
            self.clip_gradients(
                optimizer,
                gradient_clip_val=self.switches.gradient_clip_val,
                gradient_clip_algorithm=self.switches.gradient_clip_algorithm,
            )

    def check_non_finite_steps(self) -> None:
        """Act on the steps the guard skipped since the last check (one host synchronisation,
        at logging intervals and epoch ends): warn under `model.nan_guard=skip`; otherwise
        save the current state (finite: the bad steps were skipped) and stop."""
        report = self._step_counts.report()
        if report is None:
            return
        where = f"epoch {self.current_epoch}, global step {report.first_step}"
        what = f"train/{report.first_name} or its gradients are not finite at {where}"
        if not self.weights_are_finite():
            raise TrainingError(
                f"{what} because the weights already are (an earlier update was not finite), "
                "so nothing was saved: lower model.optimizer.lr or set "
                "model.gradient_clip_val, then resume from the latest checkpoint "
                "(ckpt_path=last)"
            )
        guard = self.switches
        if guard.nan_guard == "skip" and report.longest_run < guard.nan_max_skips:
            rank_zero_warn(f"{what}: {report.bad_steps} optimiser step(s) skipped")
            return
        saved = self.save_last_finite_state()
        if guard.nan_guard == "skip":
            what += f" ({report.longest_run} skipped steps in a row)"
        raise TrainingError(
            f"{what}: the last finite state is in {saved}; lower model.optimizer.lr or set "
            f"model.gradient_clip_val, then resume with ckpt_path={saved}"
        )

    def weights_are_finite(self) -> bool:
        """Whether every network weight is finite on every process (checked only after a
        non-finite step)."""
        parameters = [p for name in self.network_names for p in getattr(self, name).parameters()]
        finite = all(bool(torch.isfinite(p.detach()).all()) for p in parameters)
        return self.trainer.strategy.reduce_boolean_decision(finite, all=True)

    def save_last_finite_state(self) -> Path:
        """Checkpoint the current (finite) state beside the run's checkpoints, under a new name."""
        folder = checkpoint_folder(self.trainer)
        if folder is None:
            folder = Path(self.trainer.default_root_dir) / "checkpoints"
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

    def _restore_buffers_after_a_skipped_step(self) -> None:
        """A non-finite forward pass may have reached the BatchNorm statistics: in a batch
        with a skipped step, put back every network buffer of the batch's start (on the
        device; once every backward pass, which may read them, is done)."""
        if self._batch_flag is not None:
            restore_where(self._batch_flag, self._network_buffers(), self._buffers_at_batch_start)
            self._batch_flag = None

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # kept for the non-finite guard: a skipped or stopping step must not leave NaN statistics
        self._buffers_at_batch_start = [buffer.clone() for buffer in self._network_buffers()]

    @abstractmethod
    def gan_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """One training batch: every discriminator and generator update (`step_optimizer`)."""

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self.gan_step(batch, batch_idx)
        self._restore_buffers_after_a_skipped_step()
        # here rather than in on_train_batch_end, which Lightning calls after the callbacks':
        # a checkpoint written at a batch's end (every N steps, on preemption) holds this work
        if self.generator_average is not None:
            self.generator_average.update(self._trained_generators())
        if self.switches.scheduler_interval == "step":
            self._step_schedulers()
        if (batch_idx + 1) % self.trainer.log_every_n_steps == 0:
            self.check_non_finite_steps()

    def on_train_epoch_end(self) -> None:
        self.check_non_finite_steps()
        if self.switches.scheduler_interval == "epoch":
            self._step_schedulers()

    def on_train_end(self) -> None:
        self.check_non_finite_steps()

    def _step_schedulers(self) -> None:
        """Step the clock-driven schedulers (manual optimisation leaves that to the module)."""
        configs = self.trainer.lr_scheduler_configs
        for config in configs:
            if not is_plateau(config.scheduler):
                config.scheduler.step()
        if configs:
            self._log_learning_rates()

    def step_plateau_schedulers(self) -> None:
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
