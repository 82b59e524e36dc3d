"""Training throughput (images/second) and peak memory of a model, fp32 and bf16-mixed.

Usage: python benchmarks/bench_train.py [--model context_encoder|pconv|edgeconnect]
       [--size 128] [--batch 16] [--steps 20] [--warmup 3] [--threads N] [--device cpu|cuda]
Runs the real pipeline (sample data, masks and augmentation on the device, manual GAN steps)
for each case of the model (Context Encoder: setting x bottleneck x precision; PConv:
precision; EdgeConnect: stage x precision; VGGs with random weights, which cost the same as
ImageNet's) and times the training steps after a warm-up. EdgeConnect's edge_inpaint stage
costs what inpaint does plus one G1 forward pass. Each case runs in a fresh process with
--threads torch threads in all (default: every CPU available), split evenly between its
training processes. bench_switches.py measures the training switches with the same machinery.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from common import compose_train, describe_machine, peak_memory_mib
from hydra.core.hydra_config import HydraConfig
from torch._dynamo.utils import compilation_time_metrics

from inpaintlab.data.datamodule import build_datamodule
from inpaintlab.training.task import build_model, resolve_auto_setting

MODELS = ("context_encoder", "pconv", "edgeconnect")
PRECISIONS = ("32-true", "bf16-mixed")
# what every case of a model shares: the Context Encoder's cases choose their own masks
BASE_OVERRIDES = {
    "context_encoder": [],
    "pconv": ["model=pconv", "mask=irregular_medium", "loss.vgg_weights=none"],
    "edgeconnect": ["model=edgeconnect", "mask=irregular_medium", "loss.vgg_weights=none"],
}


# training until a callback stops it, with nothing written and no validation
QUIET_TRAINER = {
    "max_epochs": -1,
    "limit_val_batches": 0,
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


def compile_events() -> int:
    """How many compilation stages torch.compile has timed in this process so far (tracing,
    forward and backward graphs): it grows only while something compiles."""
    return sum(len(times) for times in compilation_time_metrics.values())


class StepTimer(pl.Callback):
    """Times training batches: a batch's time runs from its start to the next batch's start
    (synchronised on CUDA), so it holds all the loop does for it (the GAN steps, the module's
    batch-end work such as the EMA update, the next batch's masks and augmentation). The first
    `warmup` batches are timed apart; a batch followed by an epoch boundary is left out (the
    sample data's short epochs would charge it the loader's restart). Training stops once
    `steps` batches are timed. Counts batches, not optimiser steps: a GAN batch steps 2-4."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.batches, self.timed, self.images = 0, 0, 0
        self.elapsed, self.warmup_s, self._start = 0.0, 0.0, 0.0
        self._pending: int | None = None  # images of the batch whose time is running
        self.compiles_after_warmup = 0
        self.result: dict[str, Any] = {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._sync(module)
        now = time.perf_counter()
        if self._pending is not None:
            self._record(now - self._start, self._pending, after_epoch_end=batch_idx == 0)
        self._start, self._pending = now, batch["image"].shape[0]
        if self.timed == self.steps:
            trainer.should_stop = True

    def _record(self, seconds: float, images: int, after_epoch_end: bool) -> None:
        self.batches += 1
        if self.batches <= self.warmup:
            self.warmup_s += seconds
            self.compiles_after_warmup = compile_events()
        elif not after_epoch_end:
            self.elapsed += seconds
            self.images += images
            self.timed += 1

    def on_train_end(self, trainer, module) -> None:
        mine = [self.images, self.elapsed, self.warmup_s, peak_memory_mib(str(module.device))]
        local = torch.tensor(mine, dtype=torch.float64, device=module.device)
        images, elapsed, warmup_s, peak = trainer.strategy.all_gather(local).reshape(-1, 4).T
        self.result = {
            "images_per_s": float(images.sum() / elapsed.max()),
            "peak_mib": float(peak.sum()),
            "warmup_s": float(warmup_s.max()),
            "processes": trainer.world_size,
            "threads": torch.get_num_threads(),
            "compiled_while_timed": compile_events() > self.compiles_after_warmup,
        }

    @staticmethod
    def _sync(module: pl.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)


def set_threads(total: int, processes: int) -> None:
    """Give each of `processes` training processes an equal share of `total` torch threads;
    OMP_NUM_THREADS carries it to the processes DDP starts and keeps Lightning's own choice
    (CPUs // processes) out of the way."""
    threads = max(1, total // processes)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def measure(overrides: list[str], args: argparse.Namespace, tmp: Path) -> dict[str, Any] | None:
    """Train with `overrides` until StepTimer stops it; rank 0 returns StepTimer.result
    (images/s, peak MiB, warm-up s, processes, threads per process), other ranks None."""
    cfg = compose_train(overrides, tmp)
    resolve_auto_setting(cfg)
    set_threads(args.threads, cfg.trainer.devices)
    # an empty inductor cache: the warm-up time includes a cold torch.compile
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp / "inductor")
    model = build_model(cfg)
    datamodule = build_datamodule(cfg, cfg.data, cfg.mask, True)
    # a benchmark process is no Hydra run: DDP re-launches it with its own command line
    HydraConfig.instance().cfg = None
    timer = StepTimer(args.warmup, args.steps)
    trainer = pl.Trainer(
        accelerator="gpu" if args.device.startswith("cuda") else "cpu",
        devices=cfg.trainer.devices,
        strategy=cfg.trainer.strategy,
        sync_batchnorm=cfg.trainer.get("sync_batchnorm", False),
        precision=cfg.trainer.precision,
        callbacks=[timer],
        **QUIET_TRAINER,
    )
    trainer.fit(model, datamodule=datamodule)
    return timer.result if trainer.is_global_zero else None


def model_cases(model: str) -> dict[str, list[str]]:
    """Benchmark cases of `model`: a label and the overrides that make it."""
    if model == "context_encoder":
        settings = (("center", "center"), ("random_region", "freeform"))
        bottlenecks = ("channel_fc", "conv")
        return {
            f"{setting:14s} {bottleneck:11s} {precision}": [
                f"mask={mask}",
                f"model.setting={setting}",
                f"model.generator.bottleneck_type={bottleneck}",
                f"trainer.precision={precision}",
            ]
            for (setting, mask), bottleneck, precision in itertools.product(
                settings, bottlenecks, PRECISIONS
            )
        }
    if model == "edgeconnect":
        return {
            f"{stage:13s} {precision}": [
                *BASE_OVERRIDES[model],
                f"model.stage={stage}",
                f"trainer.precision={precision}",
            ]
            for stage, precision in itertools.product(("edge", "inpaint", "joint"), PRECISIONS)
        }
    return {
        precision: [*BASE_OVERRIDES[model], f"trainer.precision={precision}"]
        for precision in PRECISIONS
    }


def in_fresh_process(overrides: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Run one case in its own process (its own processes under DDP), so that its peak memory
    is its own; returns `measure`'s result."""
    case = [f"--{name}={getattr(args, name)}" for name in ("device", "warmup", "steps", "threads")]
    command = [sys.executable, __file__, *case, "--case", json.dumps(overrides)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"case {overrides} failed:\n{result.stderr[-2000:]}")
    # the last JSON line: processes started by DDP share the standard output
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


def run_case(overrides: list[str], args: argparse.Namespace) -> None:
    """The child's side of `in_fresh_process`: rank 0 prints `measure`'s result as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(overrides, args, Path(tmp))
    if result is not None:
        print(json.dumps(result))


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a training measurement, shared with bench_switches.py."""
    parser.add_argument("--batch", type=int, default=16, help="images per step and process")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="timed batches")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches before them")
    cpus = len(os.sched_getaffinity(0))
    parser.add_argument("--threads", type=int, default=cpus, help="torch threads, all processes")
    parser.add_argument("--device", default="cpu")


def data_overrides(args: argparse.Namespace) -> list[str]:
    """The batch size and image size of every case."""
    return [f"data.batch_size={args.batch}", f"data.image_size={args.size}"]


def main() -> None:
    """Parse arguments, print the machine and one line per configuration."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="context_encoder", choices=MODELS)
    add_run_arguments(parser)
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return run_case(json.loads(args.case), args)
    print(describe_machine(args.device))
    print(f"{args.model}, sample data, {args.size} px, batch {args.batch}, {args.steps} steps")
    print("case, throughput, peak memory (GPU allocated or process RSS)")
    for label, overrides in model_cases(args.model).items():
        result = in_fresh_process([*overrides, *data_overrides(args)], args)
        print(f"{label:38s} {result['images_per_s']:8.1f} img/s  {result['peak_mib']:6.0f} MiB")


if __name__ == "__main__":
    main()
