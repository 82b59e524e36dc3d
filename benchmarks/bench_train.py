"""Training throughput (images/second) and peak memory of a model, fp32 and bf16-mixed.

Usage: python benchmarks/bench_train.py [--model context_encoder|pconv] [--size 128]
       [--batch 16] [--steps 20] [--device cpu|cuda]
Runs the real pipeline (sample data, masks and augmentation on the device, manual GAN steps)
for each case of the model (Context Encoder: setting x bottleneck x precision; PConv:
precision; EdgeConnect: stage x precision; VGGs with random weights, which cost the same as
ImageNet's) and times the training steps after a warm-up. EdgeConnect's edge_inpaint stage
costs what inpaint does plus one G1 forward pass.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from common import compose_train, describe_machine, peak_memory_mib

from inpaintlab.training import build_datamodule, build_model, resolve_auto_setting


class StepTimer(pl.Callback):
    """Wall time of `steps` training batches after `warmup` batches (synchronised on CUDA),
    then stops training. Counts batches, not optimiser steps: a GAN batch steps 2-4 of them."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.batches, self.elapsed, self.images, self._start = 0, 0.0, 0, 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._sync(module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._sync(module)
        self.batches += 1
        if self.batches > self.warmup:
            self.elapsed += time.perf_counter() - self._start
            self.images += batch["image"].shape[0]
        if self.batches == self.warmup + self.steps:
            trainer.should_stop = True

    @staticmethod
    def _sync(module: pl.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)


def images_per_second(overrides: list[str], device: str, warmup: int, steps: int, tmp: Path):
    """Train for warmup + steps batches with `overrides`; return (images/s, peak MiB)."""
    cfg = compose_train(overrides, tmp)
    resolve_auto_setting(cfg)
    timer = StepTimer(warmup, steps)
    trainer = pl.Trainer(
        accelerator="gpu" if device.startswith("cuda") else "cpu",
        devices=1,
        precision=cfg.trainer.precision,
        max_epochs=-1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(build_model(cfg), datamodule=build_datamodule(cfg, cfg.data, cfg.mask, True))
    return timer.images / timer.elapsed, peak_memory_mib(device)


PRECISIONS = ("32-true", "bf16-mixed")


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
                "model=edgeconnect",
                f"model.stage={stage}",
                "mask=irregular_medium",
                "loss.vgg_weights=none",
                f"trainer.precision={precision}",
            ]
            for stage, precision in itertools.product(("edge", "inpaint", "joint"), PRECISIONS)
        }
    return {
        precision: [
            f"model={model}",
            "mask=irregular_medium",
            "loss.vgg_weights=none",
            f"trainer.precision={precision}",
        ]
        for precision in PRECISIONS
    }


def in_fresh_process(overrides: list[str], args: argparse.Namespace) -> tuple[float, float]:
    """Run one case in its own process, so that its peak memory is its own."""
    case = [f"--device={args.device}", f"--warmup={args.warmup}", f"--steps={args.steps}"]
    command = [sys.executable, __file__, *case, "--case", json.dumps(overrides)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"case {overrides} failed:\n{result.stderr[-2000:]}")
    return tuple(json.loads(result.stdout.strip().splitlines()[-1]))


def run_case(overrides: list[str], args: argparse.Namespace) -> None:
    """The child's side of `in_fresh_process`: print [images/s, peak MiB] as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        rate, peak = images_per_second(overrides, args.device, args.warmup, args.steps, Path(tmp))
    print(json.dumps([rate, peak]))


def main() -> None:
    """Parse arguments, print the machine and one line per configuration."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    models = ("context_encoder", "pconv", "edgeconnect")
    parser.add_argument("--model", default="context_encoder", choices=models)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return run_case(json.loads(args.case), args)
    print(describe_machine(args.device))
    print(f"{args.model}, sample data, {args.size} px, batch {args.batch}, {args.steps} steps")
    print("case, throughput, peak memory (GPU allocated or process RSS)")
    size = [f"data.batch_size={args.batch}", f"data.image_size={args.size}"]
    for label, overrides in model_cases(args.model).items():
        rate, peak = in_fresh_process([*overrides, *size], args)
        print(f"{label:38s} {rate:8.1f} img/s  {peak:6.0f} MiB")


if __name__ == "__main__":
    main()
