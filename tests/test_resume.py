"""Exact resume (ckpt_path=last), crash-safe checkpoints, and stopping on SIGTERM/SIGUSR1."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from inpaintlab.errors import ConfigError
from inpaintlab.models.checkpoint import read_checkpoint
from inpaintlab.training.resume import AtomicCheckpointIO, resolve_ckpt_path
from inpaintlab.training.task import train
from tests.conftest import ROOT, compose_config, run_script
from tests.test_ddp import one_thread, run_overrides, write_image_folder  # noqa: F401 (a fixture)

BATCHES = 2  # training batches per epoch
# EdgeConnect draws a Canny sigma per image (sigma 0) from the module's own generator
RESUME_EXTRAS = {"context_encoder": [], "pconv": [], "edgeconnect": ["model.edges.sigma=0"]}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    # 40 px images cropped to 32 px: random crops, augmentation and masks all draw numbers
    return write_image_folder(tmp_path_factory.mktemp("images"), train=8, val=2)


# generator averages and a learning-rate schedule stepped every batch must resume too
SWITCHES = [
    "model.ema_decay=0.9",
    "model.scheduler={_target_:torch.optim.lr_scheduler.ExponentialLR,_partial_:true,gamma:0.9}",
    "model.scheduler_interval=step",
]


def fit(folder: Path, images: Path, model: str, epochs: int, *extra: str) -> dict[str, float]:
    """Train `model` for `epochs` epochs of BATCHES batches, writing under `folder`."""
    overrides = run_overrides(
        model,
        images,
        f"trainer.max_epochs={epochs}",
        f"trainer.limit_train_batches={BATCHES}",
        "trainer.limit_val_batches=1",
        *RESUME_EXTRAS[model],
        *SWITCHES,
        *extra,
    )
    return train(compose_config("train", overrides, folder))


def last_checkpoint(folder: Path) -> dict:
    return read_checkpoint(folder / "checkpoints" / "last.ckpt")


def assert_equal_nested(a, b, where: str = "") -> None:
    """Equal containers with bit-identical tensors."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_equal_nested(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_equal_nested(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def assert_same_training_state(straight: dict, resumed: dict) -> None:
    assert straight["global_step"] == resumed["global_step"] > 0
    assert straight["epoch"] == resumed["epoch"]
    assert_equal_nested(straight["state_dict"], resumed["state_dict"], "state_dict")
    assert_equal_nested(straight["optimizer_states"], resumed["optimizer_states"], "optimizers")
    assert_equal_nested(straight["lr_schedulers"], resumed["lr_schedulers"], "schedulers")
    assert any(key.startswith("generator_average.") for key in resumed["state_dict"])


@pytest.mark.parametrize("model", sorted(RESUME_EXTRAS))
def test_resumed_run_is_identical_to_an_uninterrupted_one(tmp_path, images, model):
    fit(tmp_path / "straight", images, model, 2)
    fit(tmp_path / "split", images, model, 1)
    fit(tmp_path / "split", images, model, 2, "ckpt_path=last")
    assert_same_training_state(
        last_checkpoint(tmp_path / "straight"), last_checkpoint(tmp_path / "split")
    )


OPTIMISERS = {"context_encoder": 2, "pconv": 2, "edgeconnect": 4}  # optimiser steps per batch


@pytest.mark.parametrize("model", sorted(RESUME_EXTRAS))
def test_a_run_resumed_mid_epoch_is_identical_to_an_uninterrupted_one(tmp_path, images, model):
    every_batch = f"callbacks.last_checkpoint.every_n_train_steps={OPTIMISERS[model]}"
    fit(tmp_path / "straight", images, model, 2, every_batch)
    # stops after the first batch of the second epoch, with last.ckpt written there
    stop = f"+trainer.max_steps={(BATCHES + 1) * OPTIMISERS[model]}"
    fit(tmp_path / "split", images, model, 2, every_batch, stop)
    stopped = last_checkpoint(tmp_path / "split")
    assert stopped["InpaintingDataModule"]["train_position"] == [1, 1]  # epoch, batches done
    fit(tmp_path / "split", images, model, 2, every_batch, "ckpt_path=last")
    assert_same_training_state(
        last_checkpoint(tmp_path / "straight"), last_checkpoint(tmp_path / "split")
    )


def test_without_random_states_a_resumed_run_drifts(tmp_path, images):
    """The comparison above has teeth: the global random streams matter."""
    fit(tmp_path / "straight", images, "context_encoder", 2)
    fit(tmp_path / "split", images, "context_encoder", 1, "~callbacks.random_states")
    fit(
        tmp_path / "split",
        images,
        "context_encoder",
        2,
        "ckpt_path=last",
        "~callbacks.random_states",
    )
    straight, resumed = (last_checkpoint(tmp_path / name) for name in ("straight", "split"))
    with pytest.raises(AssertionError):
        assert_equal_nested(straight["state_dict"], resumed["state_dict"])


def test_resuming_keeps_the_first_config_and_records_changed_settings(tmp_path, images):
    fit(tmp_path, images, "context_encoder", 1)
    fit(tmp_path, images, "context_encoder", 2, "ckpt_path=last")
    folder = tmp_path / "checkpoints"
    assert OmegaConf.load(folder / "config.yaml").trainer.max_epochs == 1
    assert OmegaConf.load(folder / "config.resume1.yaml").trainer.max_epochs == 2
    fit(tmp_path, images, "context_encoder", 2, "ckpt_path=last")  # a requeue: nothing new
    assert sorted(p.name for p in folder.glob("config*")) == ["config.resume1.yaml", "config.yaml"]


def test_a_run_stopped_before_its_first_checkpoint_does_not_block_a_new_one(tmp_path, images):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "config.yaml").write_text("trainer: {max_epochs: 99}\n")  # and no .ckpt beside it
    fit(tmp_path, images, "context_encoder", 1)
    assert OmegaConf.load(folder / "config.yaml").trainer.max_epochs == 1
    assert (folder / "last.ckpt").is_file()


def test_ckpt_path_last_names_the_run_folders_last_checkpoint(tmp_path):
    folder = tmp_path / "checkpoints"
    assert resolve_ckpt_path("last", folder) is None  # first launch: start afresh
    folder.mkdir()
    (folder / "last.ckpt").write_bytes(b"")
    assert resolve_ckpt_path("last", folder) == str(folder / "last.ckpt")
    assert resolve_ckpt_path("other.ckpt", folder) == "other.ckpt"
    assert resolve_ckpt_path(None, folder) is None
    with pytest.raises(ConfigError, match="callbacks"):
        resolve_ckpt_path("last", None)


class SignalAt(pl.Callback):
    """Sends `signum` to this process when training batch number `batch` (counted over all
    epochs) starts, as a scheduler would at any moment."""

    def __init__(self, signum: int, batch: int) -> None:
        self.signum, self.batch = signum, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.fit_loop.total_batch_idx == self.batch:
            os.kill(os.getpid(), self.signum)


def fake_slurm(monkeypatch, folder: Path) -> Path:
    """A SLURM batch job's environment with an scontrol that records its arguments."""
    calls = folder / "scontrol.log"
    scontrol = folder / "bin" / "scontrol"
    scontrol.parent.mkdir(parents=True)
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{scontrol.parent}{os.pathsep}{os.environ['PATH']}")
    job = {"JOB_ID": "4242", "JOB_NAME": "train", "NTASKS": "1", "NODELIST": "n1", "PROCID": "0"}
    for key, value in {**job, "LOCALID": "0", "NODEID": "0"}.items():
        monkeypatch.setenv(f"SLURM_{key}", value)
    return calls


@pytest.mark.parametrize(
    ("name", "on_slurm"), [("SIGTERM", False), ("SIGINT", False), ("SIGUSR1", True)]
)
def test_a_signal_saves_a_checkpoint_and_ends_the_run(
    tmp_path, images, caplog, monkeypatch, name, on_slurm
):
    signum = int(signal.Signals[name])
    calls = fake_slurm(monkeypatch, tmp_path) if on_slurm else None
    handler_before = signal.getsignal(signum)
    signal_at = [
        f"+callbacks.signal_at._target_={SignalAt.__module__}.SignalAt",
        f"+callbacks.signal_at.signum={signum}",
        f"+callbacks.signal_at.batch={BATCHES}",  # the first batch of the second epoch
    ]
    with pytest.raises(SystemExit) as stopped:
        fit(tmp_path / "run", images, "context_encoder", 3, *signal_at)
    assert stopped.value.code == 128 + signum
    assert signal.getsignal(signum) == handler_before
    progress = last_checkpoint(tmp_path / "run")["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    assert progress["total"]["processed"] == BATCHES + 1  # the batch that was running finished
    (message,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith(name)]
    assert str(tmp_path / "run" / "checkpoints" / "last.ckpt") in message
    if on_slurm:
        assert "SLURM job 4242 requeued" in message
        assert calls.read_text().split() == ["requeue", "4242"]
    else:
        assert "resume with ckpt_path=last" in message
    # the requeued (or restarted) run finishes the interrupted epoch and the rest
    fit(tmp_path / "run", images, "context_encoder", 3, "ckpt_path=last")
    progress = last_checkpoint(tmp_path / "run")["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    assert progress["total"]["completed"] == 3 * BATCHES


def test_step_checkpoints_with_validation_inside_epochs_are_refused_at_start(tmp_path, images):
    inexact = ["callbacks.last_checkpoint.every_n_train_steps=2", "+trainer.val_check_interval=1"]
    with pytest.raises(ConfigError, match="cannot resume exactly"):
        fit(tmp_path, images, "context_encoder", 1, *inexact)
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize("batch", [BATCHES - 1, BATCHES])  # an epoch's last, the next's first
def test_a_stop_anywhere_in_an_epoch_resumes_exactly(tmp_path, images, batch):
    fit(tmp_path / "straight", images, "context_encoder", 3)
    signal_at = [
        f"+callbacks.signal_at._target_={SignalAt.__module__}.SignalAt",
        f"+callbacks.signal_at.signum={int(signal.SIGTERM)}",
        f"+callbacks.signal_at.batch={batch}",
    ]
    with pytest.raises(SystemExit):
        fit(tmp_path / "split", images, "context_encoder", 3, *signal_at)
    # after an epoch's last batch the stop waits for the epoch's end (validation, checkpoints)
    progress = last_checkpoint(tmp_path / "split")["loops"]["fit_loop"]
    assert progress["epoch_loop.batch_progress"]["total"]["completed"] == batch + 1
    assert (tmp_path / "split" / "checkpoints" / "best.ckpt").is_file()
    fit(tmp_path / "split", images, "context_encoder", 3, "ckpt_path=last")
    assert_same_training_state(
        last_checkpoint(tmp_path / "straight"), last_checkpoint(tmp_path / "split")
    )


def test_a_submitit_job_saves_requeues_once_and_resumes(tmp_path, images, caplog, monkeypatch):
    submitit = pytest.importorskip("submitit")
    calls = fake_slurm(monkeypatch, tmp_path)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    signum = int(signal.Signals[f"SIG{submitit.JobEnvironment.USR_SIG}"])
    handlers_before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGCONT, signum)}
    try:
        # what submitit does when its job starts: its own handlers for SIGTERM, SIGCONT, USR2
        paths = submitit.core.utils.JobPaths(tmp_path / "submitit", job_id="4242")
        job = submitit.JobEnvironment()
        job._handle_signals(paths, submitit.core.utils.DelayedSubmission(print))
        submitits = signal.getsignal(signum)
        signal_at = [
            f"+callbacks.signal_at._target_={SignalAt.__module__}.SignalAt",
            f"+callbacks.signal_at.signum={signum}",
            f"+callbacks.signal_at.batch={BATCHES + 1}",  # mid-epoch
        ]
        with pytest.raises(SystemExit) as stopped:
            fit(tmp_path / "run", images, "context_encoder", 3, *signal_at)
        assert signal.getsignal(signum) == submitits  # handed back after training
    finally:
        for number, handler in handlers_before.items():
            signal.signal(number, handler)
    assert stopped.value.code == 128 + signum
    assert calls.read_text().split() == ["requeue", "4242"]  # one party requeued, once
    (message,) = [r.getMessage() for r in caplog.records if "requeued" in r.getMessage()]
    assert str(tmp_path / "run" / "checkpoints" / "last.ckpt") in message
    progress = last_checkpoint(tmp_path / "run")["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    assert progress["total"]["processed"] == BATCHES + 2
    fit(tmp_path / "run", images, "context_encoder", 3, "ckpt_path=last")
    progress = last_checkpoint(tmp_path / "run")["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    assert progress["total"]["completed"] == 3 * BATCHES


class SignalTwiceAt(SignalAt):
    """Sends `signum` twice in a row, as a user pressing Ctrl-C again would."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)


def test_a_second_ctrl_c_stops_at_once_without_saving(tmp_path, images):
    interrupt_twice = [
        f"+callbacks.signal_at._target_={SignalTwiceAt.__module__}.SignalTwiceAt",
        f"+callbacks.signal_at.signum={int(signal.SIGINT)}",
        f"+callbacks.signal_at.batch={BATCHES}",
    ]
    try:
        with pytest.raises(SystemExit) as stopped:
            fit(tmp_path / "run", images, "context_encoder", 3, *interrupt_twice)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores it after
    assert stopped.value.code == 1
    progress = last_checkpoint(tmp_path / "run")["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    assert progress["total"]["processed"] == BATCHES  # the first epoch's own checkpoint only


class Unsavable:
    def __reduce__(self):
        raise RuntimeError("torch.save fails halfway through")


def test_atomic_writes_leave_the_old_checkpoint_when_saving_fails(tmp_path):
    io = AtomicCheckpointIO()
    target = tmp_path / "ckpts" / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, target)
    assert torch.load(target)["step"] == 1
    with pytest.raises(RuntimeError, match="halfway"):
        io.save_checkpoint({"step": torch.tensor(2), "bad": Unsavable()}, target)
    assert torch.load(target)["step"] == 1
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]


KEEP_SAVING = """
import sys, torch
from inpaintlab.training.resume import AtomicCheckpointIO
io, step = AtomicCheckpointIO(), 0
while True:
    weights = torch.full((4_000_000,), float(step))
    io.save_checkpoint({"step": step, "weights": weights}, sys.argv[1])
    step += 1
"""


def test_a_process_killed_while_saving_never_leaves_a_corrupt_checkpoint(tmp_path):
    target = tmp_path / "last.ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    writer = subprocess.Popen([sys.executable, "-c", KEEP_SAVING, str(target)], env=env)
    try:
        wait_for(target, writer)
        time.sleep(0.5)  # several saves in flight: the kill lands at a random point of one
    finally:
        writer.kill()
        writer.wait()
    checkpoint = torch.load(target)
    assert torch.equal(checkpoint["weights"], torch.full((4_000_000,), float(checkpoint["step"])))
    assert list(tmp_path.glob("*.ckpt")) == [target]


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until `path` exists; fail if `process` ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the process ended (code {process.returncode}) first"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def start_training(run_dir: Path, images: Path, epochs: int, *extra: str) -> subprocess.Popen:
    """train.py in the background, as run_script runs it; its output goes to run_dir.out."""
    args = train_args(run_dir, images, epochs, *extra)
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, str(ROOT / "train.py"), *args, f"paths.cache_dir={ROOT / '.cache'}"]
    with open(run_dir.with_suffix(".out"), "w") as output:  # the process keeps its own copy
        return subprocess.Popen(command, cwd=run_dir.parent, env=env, stdout=output, stderr=output)


def train_args(run_dir: Path, images: Path, epochs: int, *extra: str) -> list[str]:
    return [
        *run_overrides("context_encoder", images, f"trainer.max_epochs={epochs}", *extra),
        "trainer.limit_val_batches=1",
        f"hydra.run.dir={run_dir}",
        "ckpt_path=last",  # the same command for the first launch and every restart
    ]


def stop_after_first_checkpoint(process: subprocess.Popen, run_dir: Path, signum: int) -> int:
    """Send `signum` to a training process a moment after its first last.ckpt appeared."""
    try:
        wait_for(run_dir / "checkpoints" / "last.ckpt", process)
        time.sleep(1.0)  # into the next epoch
    finally:
        process.send_signal(signum)
        code = process.wait(timeout=300)
    return code


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["default", "ddp_cpu"])
def test_sigterm_from_outside_saves_a_checkpoint_and_exits_with_143(
    tmp_path, images, monkeypatch, trainer
):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_dir = tmp_path / "run"
    process = start_training(run_dir, images, 100, f"trainer={trainer}")
    assert stop_after_first_checkpoint(process, run_dir, signal.SIGTERM) == 128 + signal.SIGTERM
    output = run_dir.with_suffix(".out").read_text()
    (line,) = [line for line in output.splitlines() if "SIGTERM at epoch" in line]
    assert str(run_dir / "checkpoints" / "last.ckpt") in line and "ckpt_path=last" in line
    assert last_checkpoint(run_dir)["epoch"] >= 1  # saved where it stopped, not at epoch 0


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_with_ckpt_path_last(tmp_path, images, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_dir = tmp_path / "run"
    epochs, batches = 4, 4  # 8 training images in batches of 2
    first = start_training(run_dir, images, epochs)
    assert stop_after_first_checkpoint(first, run_dir, signal.SIGKILL) == -signal.SIGKILL
    for checkpoint in run_dir.rglob("*.ckpt"):
        read_checkpoint(checkpoint)
    result = run_script("train.py", *train_args(run_dir, images, epochs), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for checkpoint in run_dir.rglob("*.ckpt"):
        read_checkpoint(checkpoint)
    progress = last_checkpoint(run_dir)["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    assert progress["total"]["completed"] == epochs * batches
