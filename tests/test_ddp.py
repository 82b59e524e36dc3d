"""trainer=ddp_cpu: every variant trains in 2 processes with identical weights on both ranks, and
validation under DDP scores each image once (equal to a single-process evaluation)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.multiprocessing as mp
from omegaconf import OmegaConf
from PIL import Image

from inpaintlab.data.datamodule import ShardSampler, build_datamodule
from inpaintlab.errors import ConfigError
from inpaintlab.models.checkpoint import read_checkpoint
from inpaintlab.models.loading import model_from_checkpoint
from inpaintlab.training.task import train
from tests.conftest import compose_config
from tests.helpers import TINY_OVERRIDES

VAL_IMAGES = 3  # odd: a padding sampler would score one image twice with 2 processes


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks run fastest on one thread, and processes share the cores without
    oversubscribing them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_image_folder(root: Path, train: int, val: int, size: int = 40) -> Path:
    """root/train and root/val of smooth random PNG images."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            coarse = Image.fromarray(rng.integers(0, 255, (5, 5, 3), dtype=np.uint8))
            coarse.resize((size, size), Image.BICUBIC).save(root / split / f"{i}.png")
    return root


def run_overrides(model: str, images: Path, *extra: str) -> list[str]:
    """A short, quiet, deterministic run of `model` on the image folder: 32 px, batch 2."""
    return [
        f"model={model}",
        *TINY_OVERRIDES[model],
        "data=folder",
        f"data.root={images}",
        "data.image_size=32",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
        "trainer.deterministic=true",
        "+trainer.enable_model_summary=false",
        "+trainer.num_sanity_val_steps=0",
        "trainer.log_every_n_steps=1",
        "~callbacks.rich_progress_bar",
        "+trainer.enable_progress_bar=false",
        *extra,
    ]


class SaveRankState(pl.Callback):
    """Writes each rank's module state (weights and buffers) to <folder>/rank<r>.pt at the end."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        torch.save(state, self.folder / f"rank{trainer.global_rank}.pt")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ddp_worker(rank: int, port: int, runs: list[tuple[str, list[str]]], out: Path) -> None:
    """One of 2 processes started outside Lightning, as torchrun or SLURM start them, running
    `train` with trainer=ddp_cpu unchanged for each (folder, overrides) of `runs` in turn."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE="2",
        NODE_RANK="0",
        LOCAL_RANK=str(rank),
        RANK=str(rank),
    )
    torch.set_num_threads(1)
    for name, overrides in runs:
        metrics = train(compose_config("train", overrides, out / name))
        if rank == 0:
            (out / name / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory) -> Path:
    """In 2 processes: a run of 2 steps for every variant (with generator EMA), and a Context
    Encoder run of 2 epochs next to one resumed after its first epoch and one resumed in the
    middle of its second. Returns the folder of the runs."""
    out = tmp_path_factory.mktemp("ddp")
    images = write_image_folder(out / "images", train=8, val=VAL_IMAGES)
    runs = [
        (
            model,
            run_overrides(
                model,
                images,
                "trainer=ddp_cpu",
                "trainer.max_epochs=1",
                # the generators' averages must agree between ranks and serve validation
                "model.ema_decay=0.9",
                f"+callbacks.rank_state._target_={SaveRankState.__module__}.SaveRankState",
                f"+callbacks.rank_state.folder={out / model}",
            ),
        )
        for model in TINY_OVERRIDES
    ]
    resume = run_overrides("context_encoder", images, "trainer=ddp_cpu", "mask=freeform")
    # mid: last.ckpt after every batch (2 optimiser steps), stopped after 3 of 4 batches
    every_batch = "callbacks.last_checkpoint.every_n_train_steps=2"
    runs += [
        ("straight", [*resume, "trainer.max_epochs=2"]),
        ("split", [*resume, "trainer.max_epochs=1"]),
        ("split", [*resume, "trainer.max_epochs=2", "ckpt_path=last"]),
        ("mid", [*resume, "trainer.max_epochs=2", every_batch, "+trainer.max_steps=6"]),
        ("mid", [*resume, "trainer.max_epochs=2", every_batch, "ckpt_path=last"]),
    ]
    mp.start_processes(ddp_worker, args=(free_port(), runs, out), nprocs=2, start_method="spawn")
    return out


def per_rank(key: str) -> bool:
    """BatchNorm statistics: each process keeps its own (no SyncBatchNorm on CPU)."""
    return "running_" in key or key.endswith("num_batches_tracked")


@pytest.mark.parametrize("model", sorted(TINY_OVERRIDES))
def test_both_ranks_end_with_identical_weights(ddp_runs, model):
    rank0, rank1 = (torch.load(ddp_runs / model / f"rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    shared = [k for k in rank0 if not per_rank(k)]
    assert [k for k in shared if not torch.equal(rank0[k], rank1[k])] == []
    # the checkpoint holds rank 0's final state, after 2 steps on each rank's own images
    checkpoint = read_checkpoint(ddp_runs / model / "checkpoints" / "last.ckpt")
    assert all(torch.equal(checkpoint["state_dict"][k], rank0[k]) for k in rank0)
    assert checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"] == 2


@pytest.mark.parametrize("model", sorted(TINY_OVERRIDES))
def test_ddp_validation_equals_single_process_evaluation(ddp_runs, model):
    logged = json.loads((ddp_runs / model / "metrics.json").read_text())
    assert logged["val/count/all"] == VAL_IMAGES
    checkpoint = read_checkpoint(ddp_runs / model / "checkpoints" / "last.ckpt")
    run = model_from_checkpoint(checkpoint)
    cfg = OmegaConf.create(run.run_config)
    datamodule = build_datamodule(cfg, cfg.data, cfg.mask, train=False)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        default_root_dir=ddp_runs / "single",
    )
    (single,) = trainer.validate(run, datamodule=datamodule, verbose=False)
    assert single["val/count/all"] == VAL_IMAGES
    for key, value in single.items():
        assert logged[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key


@pytest.mark.parametrize(("size", "world"), [(3, 2), (7, 3), (1, 2), (4, 2)])
def test_shards_cover_every_sample_exactly_once(size, world):
    shards = [list(ShardSampler(range(size), world, rank)) for rank in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(size))
    assert [len(ShardSampler(range(size), world, rank)) for rank in range(world)] == [
        len(shard) for shard in shards
    ]


@pytest.mark.parametrize("resumed_run", ["split", "mid"])
def test_a_resumed_ddp_run_is_identical_to_an_uninterrupted_one(ddp_runs, resumed_run):
    straight, resumed = (
        read_checkpoint(ddp_runs / name / "checkpoints" / "last.ckpt")
        for name in ("straight", resumed_run)
    )
    assert straight["global_step"] == resumed["global_step"] == 2 * 2 * 2  # epochs, batches, opts
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def datamodule_in_process(tmp_path: Path, val_images: int, rank: int, world_size: int):
    """The data of a tiny run as process `rank` of `world_size` sees it."""
    folder = write_image_folder(tmp_path / "images", train=2, val=val_images)
    cfg = compose_config("train", run_overrides("pconv", folder), tmp_path)
    datamodule = build_datamodule(cfg, cfg.data, cfg.mask, train=False)
    datamodule.trainer = SimpleNamespace(global_rank=rank, world_size=world_size)
    datamodule.setup("validate")
    return datamodule


def test_each_process_validates_its_own_share_of_the_images(tmp_path):
    loader = datamodule_in_process(tmp_path, val_images=3, rank=1, world_size=2).val_dataloader()
    assert isinstance(loader.sampler, ShardSampler)
    assert [int(i) for batch in loader for i in batch["index"]] == [1]


def test_a_validation_split_with_fewer_images_than_processes_is_refused(tmp_path):
    datamodule = datamodule_in_process(tmp_path, val_images=1, rank=0, world_size=2)
    with pytest.raises(ConfigError, match="val split has 1 image"):
        datamodule.val_dataloader()
