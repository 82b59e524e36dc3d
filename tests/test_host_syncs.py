"""No host synchronisation inside a training step (masks and augmentation on the batch, the
model's updates, the non-finite guard, the weight average) except at logging intervals.

Every call that makes the host read a tensor's value (`.item()`, `bool(t)`, `.tolist()`, ...)
is counted while a training batch is prepared or trained on. On a GPU each of them waits for
the queued kernels to finish; on a CPU they cost nothing, so they are counted, not timed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from inpaintlab.data.datamodule import InpaintingDataModule
from inpaintlab.models.manual_gan import ManualGANModule
from inpaintlab.training.task import train
from tests.conftest import compose_config
from tests.test_ddp import run_overrides, write_image_folder

READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__")
LOG_EVERY = 3
BATCHES = 5
# EdgeConnect's Canny edges read back kornia's check of the blur's sigma, and the hysteresis
# asks every few growth steps whether the strong edges still grow (edges.GROW_STEPS)
ALLOWED = {"edgeconnect": {"edges.py"}}


class HostReads:
    """Records (batch index, method, files on the call stack) for each host read inside a
    batch."""

    def __init__(self) -> None:
        self.batch: int | None = None
        self.training_batches = 0
        self.calls: list[tuple[int, str, frozenset[str]]] = []

    def counted(self, name: str):
        original = getattr(torch.Tensor, name)

        def read(tensor, *args, **kwargs):
            if self.batch is not None:
                self.calls.append((self.batch, name, _files_on_the_stack()))
            return original(tensor, *args, **kwargs)

        return read

    def inside_training_step(self, step):
        def wrapped(module, batch, batch_idx):
            self.batch = batch_idx
            try:
                return step(module, batch, batch_idx)
            finally:
                self.batch = None

        return wrapped

    def inside_batch_transfer(self, transfer):
        def wrapped(datamodule, batch, dataloader_idx):
            training = datamodule.trainer is not None and datamodule.trainer.training
            if training:
                self.batch = self.training_batches
                self.training_batches += 1
            try:
                return transfer(datamodule, batch, dataloader_idx)
            finally:
                self.batch = None

        return wrapped


def _files_on_the_stack() -> frozenset[str]:
    frame, files = sys._getframe(2), set()
    while frame is not None:
        files.add(Path(frame.f_code.co_filename).name)
        frame = frame.f_back
    return frozenset(files)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("images"), train=10, val=2)


@pytest.mark.parametrize("model", ["context_encoder", "pconv", "edgeconnect"])
def test_training_batches_read_nothing_back_between_logging_intervals(
    tmp_path, images, monkeypatch, model
):
    reads = HostReads()
    for name in READS:
        monkeypatch.setattr(torch.Tensor, name, reads.counted(name))
    monkeypatch.setattr(
        ManualGANModule,
        "training_step",
        reads.inside_training_step(ManualGANModule.training_step),
    )
    monkeypatch.setattr(
        InpaintingDataModule,
        "on_after_batch_transfer",
        reads.inside_batch_transfer(InpaintingDataModule.on_after_batch_transfer),
    )
    overrides = run_overrides(
        model,
        images,
        "trainer.max_epochs=1",
        f"trainer.limit_train_batches={BATCHES}",
        "trainer.limit_val_batches=0",
        f"trainer.log_every_n_steps={LOG_EVERY}",
        "model.ema_decay=0.9",
    )
    train(compose_config("train", overrides, tmp_path))
    assert reads.training_batches == BATCHES
    logging = {index for index in range(BATCHES) if (index + 1) % LOG_EVERY == 0}
    # the first batch of an epoch may check the masks against the model's setting
    quiet = set(range(1, BATCHES)) - logging
    allowed = ALLOWED.get(model, set())
    unexpected = [
        (batch, name)
        for batch, name, files in reads.calls
        if batch in quiet and not files & allowed
    ]
    assert unexpected == []
    assert any(call[0] in logging for call in reads.calls)  # the guard's check is counted
