"""Inference latency of one image (ms) and peak memory, fp32 and bf16 autocast.

Usage: python benchmarks/bench_inference.py [--model pconv] [--size 512] [--device cpu|cuda]
       [override ...]
The model comes from conf/ with random weights (the same cost as trained ones; no loss or VGG
is built for inference); the mask is an irregular_medium one (mask=center for a Context
Encoder in its centre setting); extra Hydra overrides apply (e.g. model.generator.depth=8).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import hydra
import torch
from common import compose_train, describe_machine, peak_memory_mib

from inpaintlab.training.task import build_model, resolve_auto_setting


def latency_ms(model, image, mask, device: str, precision: str, repeats: int) -> float:
    """Median wall time of one forward pass (composite included) after a warm-up."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    autocast = torch.autocast(device.split(":")[0], dtype=dtype, enabled=precision == "bf16")
    times = []
    with torch.inference_mode(), autocast:
        for i in range(repeats + 1):
            start = time.perf_counter()
            model(image, mask)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    """Parse arguments, print the machine and the latency per precision."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pconv")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    print(describe_machine(args.device))
    overrides = [
        f"model={args.model}",
        f"data.image_size={args.size}",
        "mask=irregular_medium",
        *args.overrides,
    ]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_train(overrides, Path(tmp))
    resolve_auto_setting(cfg)
    model = build_model(cfg).eval().to(args.device)
    generator = torch.Generator(args.device).manual_seed(0)
    mask = hydra.utils.instantiate(cfg.mask)(1, args.size, args.size, generator=generator)
    image = torch.rand(1, cfg.data.channels, args.size, args.size, device=args.device)
    print(f"{args.model}, one {args.size}x{args.size} image, median of {args.repeats}")
    for precision in ("fp32", "bf16"):
        ms = latency_ms(model, image, mask, args.device, precision, args.repeats)
        print(f"{precision:5s} {ms:9.1f} ms")
    print(f"peak memory of the process: {peak_memory_mib(args.device):.0f} MiB")


if __name__ == "__main__":
    main()
