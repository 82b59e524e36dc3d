"""Callbacks for resumable and distributed runs: random-number states per process in every
checkpoint, a checkpoint written when a scheduler asks the run to stop (SIGTERM, or SLURM's
SIGUSR1 before the time limit), and one model (rank 0's) for validation under DDP.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.plugins.environments import SLURMEnvironment

from inpaintlab.errors import ConfigError
from inpaintlab.models.checkpoint import checkpoint_folder
from inpaintlab.ops.ranks import gather_from_ranks, generator_state, rank_entry, restore_generator
from inpaintlab.training.resume import LAST_FILE

log = logging.getLogger("inpaintlab")


def global_random_states() -> dict[str, Any]:
    """This process's torch (CPU and current CUDA device), numpy and Python random states."""
    _, key, position, has_gauss, gauss = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": torch.from_numpy(key.astype(np.int64)),
            "rest": [position, has_gauss, gauss],
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def set_global_random_states(states: dict[str, Any]) -> None:
    """Continue this process's random streams from `global_random_states()`'s result."""
    torch.set_rng_state(states["torch"])
    key = states["numpy"]["key"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, *states["numpy"]["rest"]))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


def module_generators(module: torch.nn.Module) -> dict[str, torch.Generator]:
    """The torch.Generator attributes of a module (e.g. EdgeConnect's Canny sigma generator)."""
    return {
        name: value for name, value in vars(module).items() if isinstance(value, torch.Generator)
    }


class RandomStates(Callback):
    """Checkpoint the random states of every process, so that a resumed run draws what the
    uninterrupted run would have drawn: torch, numpy and Python's global streams (cropping,
    augmentation, dropout draw from them) and the LightningModule's torch.Generator
    attributes. The datamodule keeps its mask generators itself (`InpaintingDataModule`).

    States are gathered from all ranks when a checkpoint is written (a collective: Lightning's
    checkpointing runs on every rank) and each rank takes its own back on resume. A resume
    with another number of processes, or on another device type, restarts them from the seeds.
    """

    def __init__(self) -> None:
        self._rank, self._world_size = 0, 1
        self._module: pl.LightningModule | None = None
        self._pending_module_states: dict[str, Any] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._rank, self._world_size = trainer.global_rank, trainer.world_size
        self._module = pl_module

    def state_dict(self) -> dict[str, Any]:
        generators = module_generators(self._module) if self._module is not None else {}
        local = {
            "global": global_random_states(),
            "module": {name: generator_state(value) for name, value in generators.items()},
        }
        return {"ranks": gather_from_ranks(local)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        mine = rank_entry(state_dict.get("ranks"), self._rank, self._world_size, "random states")
        if mine is None:
            return
        set_global_random_states(mine["global"])
        self._pending_module_states = mine["module"]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for name, state in self._pending_module_states.items():
            generator = restore_generator(state, pl_module.device)
            if generator is not None:
                setattr(pl_module, name, generator)
        self._pending_module_states = {}


class BroadcastBuffers(Callback):
    """Before validation and testing under DDP, copy rank 0's buffers (BatchNorm statistics)
    to every process. Without SyncBatchNorm (CPU processes) each process updates its
    statistics on its own images during training, so each would score its share of the
    images with a slightly different model than the checkpoint (rank 0's) holds."""

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        broadcast_buffers(trainer, pl_module)

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        broadcast_buffers(trainer, pl_module)


def broadcast_buffers(trainer: pl.Trainer, module: torch.nn.Module) -> None:
    """Overwrite every process's module buffers with rank 0's (a collective call)."""
    if trainer.world_size == 1 or not dist.is_initialized():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


class Preempted(SystemExit):
    """Ends a run that a signal stopped after its checkpoint was written: exit status 128 +
    the signal's number, as a shell reports a process killed by that signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


class PreemptionCheckpoint(Callback):
    """Stop cleanly when the scheduler (or the user) says so: on one of `signals` every process
    finishes its current training batch, last.ckpt is written, the job is requeued on SLURM
    when the signal is `requeue_signal` (SLURM's `--signal=SIGUSR1@90` notice), and the run
    exits with status 128 + signal number after a one-line message. Ctrl-C (SIGINT) saves the
    same way; a second Ctrl-C stops at once without saving.

    In a job submitit started (`hydra/launcher=slurm`), the signal submitit asks SLURM for
    (`#SBATCH --signal=USR2@...`, or SUBMITIT_PREEMPT_SIGNAL) is the requeue signal: this
    callback takes it over from submitit's handler while training, so that last.ckpt is
    written first and the job is requeued once, here.

    Replaces Lightning's handlers while training (Lightning's SLURM handler would save from
    inside the signal handler, possibly halfway through an optimiser step and with collective
    calls out of step between ranks). Ranks agree on a stop after each batch (one all-reduce).
    """

    def __init__(
        self,
        signals: Sequence[str] = ("SIGTERM", "SIGINT", "SIGUSR1"),
        requeue_signal: str | None = "SIGUSR1",
    ) -> None:
        self.signals = [signal_number(name) for name in signals]
        self.requeue_signal = signal_number(requeue_signal) if requeue_signal else None
        self._received = 0
        self._trainer: pl.Trainer | None = None
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._trainer, self._received = trainer, 0
        if threading.current_thread() is not threading.main_thread():
            log.warning("training outside the main thread: signals will not save a checkpoint")
            return
        launcher_signal = submitit_signal()
        if launcher_signal is not None:
            self.requeue_signal = launcher_signal
        for signum in {*self.signals, *([launcher_signal] if launcher_signal else [])}:
            self._previous[signum] = signal.signal(signum, self._note_signal)

    def _note_signal(self, signum: int, frame: Any) -> None:
        if self._received:
            if signum == signal.SIGINT:  # a second Ctrl-C: stop now, saving nothing
                self._restore_handlers()
                raise KeyboardInterrupt
            return
        self._received = signum
        launcher = self._trainer.strategy.launcher if self._trainer is not None else None
        if launcher is not None:
            launcher.kill(signum)  # the processes this one started (ddp on one machine)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        received = self._received or (signal.SIGTERM if trainer.received_sigterm else 0)
        signum = agreed_signal(trainer, received)
        if signum and not ends_the_epoch(trainer):
            self._stop(trainer, signum, save=True)
        # after an epoch's last batch the stop waits for the next epoch's start: a run resumed
        # from that batch's end would skip the epoch's validation, and its end writes last.ckpt

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        signum = agreed_signal(trainer, self._received)
        if signum:
            writes_last = any(isinstance(c, LastCheckpoint) for c in trainer.callbacks)
            self._stop(trainer, signum, save=not writes_last)

    def _stop(self, trainer: pl.Trainer, signum: int, save: bool) -> None:
        """Write last.ckpt (unless the epoch's end just did), report, requeue, end the run."""
        self._restore_handlers()
        path = last_checkpoint_path(trainer)
        if path is not None and save:
            trainer.save_checkpoint(path, weights_only=False)
        if trainer.is_global_zero:
            saved = f"saved {path}" if path is not None else "no checkpoint folder, nothing saved"
            outcome = "resume with ckpt_path=last and the same hydra.run.dir"
            if signum == self.requeue_signal and SLURMEnvironment.detect():
                outcome = requeue_slurm_job()
            name = signal.Signals(signum).name
            where = f"epoch {trainer.current_epoch}, global step {trainer.global_step}"
            log.warning("%s at %s: %s; %s", name, where, saved, outcome)
        raise Preempted(signum)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(self, trainer: pl.Trainer, pl_module: Any, exception: BaseException) -> None:
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


def ends_the_epoch(trainer: pl.Trainer) -> bool:
    """Whether the training batch that just ran is its epoch's last."""
    return bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


class LastCheckpoint(ModelCheckpoint):
    """last.ckpt's writer: Lightning's ModelCheckpoint saving at every epoch's end and, with
    `every_n_train_steps`, every N training steps as well (Lightning makes the two exclusive);
    the step saves skip an epoch's last batch, whose epoch-end save follows it (a run resumed
    from the batch's end would skip the epoch's validation). With the batch counted as
    completed in the checkpoint (`resume.count_the_finished_batch`), a run resumed from any
    save continues exactly where the saved run was."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._every_n_epochs = 1  # after the constructor's check that the triggers are exclusive

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        validates_mid_epoch = trainer.val_check_interval != 1.0 or isinstance(
            trainer.val_check_interval, int
        )
        if self._every_n_train_steps >= 1 and validates_mid_epoch:
            raise ConfigError(
                "callbacks.last_checkpoint.every_n_train_steps with validation inside epochs "
                f"(trainer.val_check_interval={trainer.val_check_interval}) cannot resume "
                "exactly: validate at epoch ends, or drop the step checkpoints"
            )

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        if not ends_the_epoch(trainer):
            super().on_train_batch_end(trainer, pl_module, *args)


def signal_number(name: str) -> int:
    """signal.SIGTERM's number for "SIGTERM" (a ConfigError for unknown names)."""
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ConfigError(
            f"unknown signal {name!r}: use names such as SIGTERM or SIGUSR1"
        ) from None


def agreed_signal(trainer: pl.Trainer, received: int) -> int:
    """The signal any process received (the highest number if several), the same on every rank."""
    if trainer.world_size == 1 or not dist.is_initialized():
        return received
    flag = torch.tensor([received], device=trainer.strategy.root_device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item())


def last_checkpoint_path(trainer: pl.Trainer) -> Path | None:
    """Where the checkpoint callback keeps last.ckpt (None without one)."""
    folder = checkpoint_folder(trainer)
    return None if folder is None else folder / LAST_FILE


def submitit_signal() -> int | None:
    """The signal submitit has SLURM send its jobs before the time limit (SIGUSR2 unless
    SUBMITIT_PREEMPT_SIGNAL names another); None outside a job submitit started on SLURM."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm":
        return None
    from submitit import JobEnvironment  # the optional [cluster] dependency that started us

    return signal_number(f"SIG{JobEnvironment.USR_SIG}")


def requeue_slurm_job() -> str:
    """Ask SLURM to put this job (or array task) back in the queue; says what happened."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job:
        job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    else:
        job = os.environ["SLURM_JOB_ID"]
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    except FileNotFoundError:
        return f"could not requeue SLURM job {job}: scontrol not found"
    if result.returncode != 0:
        return f"could not requeue SLURM job {job}: {result.stderr.strip()}"
    return f"SLURM job {job} requeued (it resumes with ckpt_path=last)"
