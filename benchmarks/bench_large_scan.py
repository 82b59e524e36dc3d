"""Inpainting a large scan with thin scratches: time and peak memory of each strategy as the
number of scratches (the hole area) grows.

Usage: python benchmarks/bench_large_scan.py [--size 4096] [--scratches 1 4 16 64]
       [--strategies crop resize] [--side 128] [--device cpu|cuda] [override ...]
The model comes from conf/ (default: the cpu_quality PConv, model=pconv with its preset's
widths) with random weights, which cost the same as trained ones; its training size is
--side. Each scratch is 3 px wide and 400 px long, placed at random. Each case runs in a fresh
process, so that its peak memory (GPU allocated, or the process's resident set) is its own.
"full" at 4096 px needs tens of GiB on a CPU: pass it explicitly with a smaller --size.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import compose_train, describe_machine, peak_memory_mib

from inpaintlab.inference.inpainter import Inpainter
from inpaintlab.inference.strategies import hole_windows
from inpaintlab.training.task import build_model, resolve_auto_setting

PRESET = ["model=pconv", "model.generator.base_channels=32", "model.generator.max_channels=256"]
SCRATCH_LENGTH, SCRATCH_WIDTH = 400, 3


def scratch_mask(size: int, count: int, seed: int = 0) -> torch.Tensor:
    """A 1 x 1 x size x size mask of `count` straight scratches at random places and angles
    (each drawn in its own bounding box, so the mask costs no more memory than the scan)."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(size, size, dtype=torch.bool)
    reach = SCRATCH_LENGTH // 2 + SCRATCH_WIDTH
    for _ in range(count):
        row, col = (torch.rand(2, generator=generator) * size).tolist()
        angle = float(torch.rand((), generator=generator)) * torch.pi
        top, left = max(0, int(row) - reach), max(0, int(col) - reach)
        bottom, right = min(size, int(row) + reach), min(size, int(col) + reach)
        ys, xs = torch.meshgrid(
            torch.arange(top, bottom) - row, torch.arange(left, right) - col, indexing="ij"
        )
        along = xs * math.cos(angle) + ys * math.sin(angle)
        across = -xs * math.sin(angle) + ys * math.cos(angle)
        stroke = (along.abs() < SCRATCH_LENGTH / 2) & (across.abs() < SCRATCH_WIDTH / 2)
        mask[top:bottom, left:right] |= stroke
    return mask[None, None].float()


def run_case(case: dict) -> dict:
    """Inpaint one scan with one strategy; seconds (best of two), peak MiB and the windows."""
    overrides = [*PRESET, f"data.image_size={case['side']}", *case["overrides"]]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_train(overrides, Path(tmp))
    resolve_auto_setting(cfg)
    model = build_model(cfg)
    inpainter = Inpainter(model, "random weights", torch.device(case["device"]))
    size = case["size"]
    mask = scratch_mask(size, case["scratches"])
    image = torch.rand(1, 3, size // 64, size // 64)
    image = torch.nn.functional.interpolate(image, size=size, mode="bicubic").clamp(0, 1)
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        inpainter(image, mask, case["strategy"])
        best = min(best, time.perf_counter() - start)
    _, windows = hole_windows(mask[0, 0].bool(), case["side"])
    return {
        "seconds": best,
        "peak_mib": peak_memory_mib(case["device"]),
        "hole_megapixels": float(mask.sum()) / 1e6,
        "windows": len(windows),
        "window_megapixels": sum((w.bottom - w.top) * (w.right - w.left) for _, w in windows) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--scratches", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--strategies", nargs="+", default=["crop", "resize"])
    parser.add_argument("--side", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    print(describe_machine(args.device))
    print(f"{args.size} x {args.size} scan, training size {args.side}, best of 2 calls")
    for strategy in args.strategies:
        for count in args.scratches:
            case = {
                "strategy": strategy,
                "scratches": count,
                **{key: getattr(args, key) for key in ("size", "side", "device", "overrides")},
            }
            command = [sys.executable, __file__, "--case", json.dumps(case)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"case {case} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"{strategy:7s} {count:3d} scratches  holes {result['hole_megapixels']:6.3f} MP  "
                f"{result['windows']:3d} windows {result['window_megapixels']:6.2f} MP  "
                f"{result['seconds']:7.2f} s  {result['peak_mib']:7.0f} MiB"
            )


if __name__ == "__main__":
    main()
