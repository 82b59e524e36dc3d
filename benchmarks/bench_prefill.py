"""Latency of the classical prefills, and their share of a training step of each model.

Usage: python benchmarks/bench_prefill.py [--sizes 128 256] [--batch 16] [--device cpu]
       [--models pconv context_encoder edgeconnect]
The prefills run on batches of photo-damage masks (conf/mask/photo_damage.yaml) over smooth
random images. The training steps are experiment=quickstart's on the sample photographs (the
cpu_quality presets: model.prefill=biharmonic, residual outputs, bf16-mixed), timed as whole
batches by bench_train.py. Pass --models with no name to skip the training steps.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from bench_train import add_run_arguments, data_overrides, in_fresh_process
from common import compose_train, describe_machine, peak_memory_mib

from inpaintlab.networks.prefill import PREFILL_KINDS, Prefill

KINDS = [kind for kind in PREFILL_KINDS if kind != "none"]


def photo_damage_batch(batch: int, size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random images and photo-damage masks, seeded."""
    with tempfile.TemporaryDirectory() as tmp:
        generator = hydra.utils.instantiate(compose_train(["mask=photo_damage"], Path(tmp)).mask)
    rng = torch.Generator(device).manual_seed(0)
    mask = generator(batch, size, size, generator=rng, device=device)
    coarse = torch.rand(batch, 3, size // 16, size // 16, generator=rng, device=device)
    image = F.interpolate(coarse, size=size, mode="bicubic").clamp(0, 1)
    return image, mask


def best_milliseconds(prefill: Prefill, image, mask, repeats: int) -> float:
    """Best-of-`repeats` wall time of one call, after a warm-up call."""
    prefill(image, mask)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        prefill(image, mask)
        if image.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def main() -> None:
    """Parse arguments, print the machine, the prefill latencies and the training shares."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--models", nargs="*", default=["pconv", "context_encoder", "edgeconnect"])
    add_run_arguments(parser)
    args = parser.parse_args()
    print(describe_machine(args.device))
    print(f"batch {args.batch}, best of {args.repeats} calls, ms per batch")
    latency = {}
    for size in args.sizes:
        image, mask = photo_damage_batch(args.batch, size, args.device)
        for kind in KINDS:
            latency[kind, size] = best_milliseconds(Prefill(kind), image, mask, args.repeats)
            print(f"{kind:11s} {size:4d} px {latency[kind, size]:8.1f} ms")
    print(f"peak memory {peak_memory_mib(args.device):.0f} MiB")
    biharmonic = latency.get(("biharmonic", args.size))
    for model in args.models:
        overrides = [
            "experiment=quickstart",
            f"model={model}",
            "trainer.precision=bf16-mixed",
            *data_overrides(args),
        ]
        result = in_fresh_process(overrides, args)
        step_ms = 1000 * args.batch / result["images_per_s"]
        share = f"{100 * biharmonic / step_ms:4.1f} %" if biharmonic else "n/a"
        print(f"{model:16s} training batch {step_ms:7.0f} ms, biharmonic prefill {share}")


if __name__ == "__main__":
    main()
