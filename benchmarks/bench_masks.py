"""Print masks/second for every mask generator kind at 256 x 256, batch 64.

Usage: python benchmarks/bench_masks.py [--folder DIR] [--size 256] [--batch 64] [--repeats 5]
Without --folder, FolderMask reads 64 synthetic masks written to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from inpaintlab.data import masks as M


def write_synthetic_masks(folder: Path, count: int = 64, size: int = 512) -> Path:
    """Write `count` thick irregular masks as white-hole PNGs into `folder`."""
    masks = M.IrregularMask("thick")(count, size, size, generator=torch.Generator().manual_seed(0))
    for i, mask in enumerate(masks):
        Image.fromarray((mask[0] * 255).byte().numpy()).save(folder / f"{i:05d}.png")
    return folder


def generators(folder: Path) -> dict[str, M.MaskGenerator]:
    """One generator per kind, with default settings."""
    parts = {
        "freeform": M.FreeFormMask(),
        "irregular_medium": M.IrregularMask("medium"),
        "boxes": M.RandomBoxMask(),
        "scratches": M.ScratchMask(),
    }
    return {
        "center": M.CenterBoxMask(0.5, inset=4),
        **parts,
        "irregular_thin": M.IrregularMask("thin"),
        "irregular_thick": M.IrregularMask("thick"),
        "folder": M.FolderMask(folder, dilate=(0, 2)),
        "mixture": M.MixtureMask(list(parts.values()), [0.3, 0.3, 0.2, 0.2]),
        "freeform_ratio_0.1_0.5": M.FreeFormMask(min_ratio=0.1, max_ratio=0.5),
    }


def masks_per_second(gen: M.MaskGenerator, batch: int, size: int, repeats: int) -> float:
    """Best-of-`repeats` throughput after one warm-up call."""
    rng = torch.Generator().manual_seed(0)
    gen(batch, size, size, generator=rng)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        gen(batch, size, size, generator=rng)
        best = min(best, time.perf_counter() - start)
    return batch / best


def main() -> None:
    """Parse arguments, print the machine and the throughput table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"cpus={os.cpu_count()}, torch threads={torch.get_num_threads()}, torch {torch.__version__}"
    )
    print(f"size {args.size}x{args.size}, batch {args.batch}, best of {args.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or write_synthetic_masks(Path(tmp))
        for name, gen in generators(folder).items():
            rate = masks_per_second(gen, args.batch, args.size, args.repeats)
            ratio = M.hole_ratio(gen(args.batch, args.size, args.size)).mean().item()
            print(f"{name:24s} {rate:9.0f} masks/s   mean hole ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
