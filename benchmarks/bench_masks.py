"""Masks/second for every conf/mask/ config at 256 x 256, batch 64.

Usage: python benchmarks/bench_masks.py [--folder DIR] [--size 256] [--batch 64] [--device cpu]
Without --folder, mask=folder reads 64 synthetic masks written to a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import hydra
import torch
from common import compose_train, describe_machine
from PIL import Image

from inpaintlab.conf import CONFIG_DIR
from inpaintlab.data.masks import IrregularMask, MaskGenerator, hole_ratio


def write_synthetic_masks(folder: Path, count: int = 64, size: int = 512) -> Path:
    """Write `count` thick irregular masks as white-hole PNGs into `folder`."""
    masks = IrregularMask("thick")(count, size, size, generator=torch.Generator().manual_seed(0))
    for i, mask in enumerate(masks):
        Image.fromarray((mask[0] * 255).byte().numpy()).save(folder / f"{i:05d}.png")
    return folder


def mask_generators(folder: Path, output_dir: Path) -> dict[str, MaskGenerator]:
    """Every mask config of conf/mask/, instantiated as train.py would."""
    generators = {}
    for path in sorted((CONFIG_DIR / "mask").glob("*.yaml")):
        extra = [f"mask.root={folder}"] if path.stem == "folder" else []
        cfg = compose_train([f"mask={path.stem}", *extra], output_dir)
        generators[path.stem] = hydra.utils.instantiate(cfg.mask)
    return generators


def masks_per_second(gen: MaskGenerator, batch: int, size: int, device: str, repeats: int) -> float:
    """Best-of-`repeats` throughput after one warm-up call."""
    rng = torch.Generator(device).manual_seed(0)
    gen(batch, size, size, generator=rng, device=device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        gen(batch, size, size, generator=rng, device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return batch / best


def main() -> None:
    """Parse arguments, print the machine and the throughput table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None, help="a folder of mask images")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(describe_machine(args.device))
    print(f"size {args.size}x{args.size}, batch {args.batch}, best of {args.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or write_synthetic_masks(Path(tmp))
        for name, gen in mask_generators(folder, Path(tmp) / "out").items():
            rate = masks_per_second(gen, args.batch, args.size, args.device, args.repeats)
            ratio = hole_ratio(gen(args.batch, args.size, args.size, device=args.device)).mean()
            print(f"{name:20s} {rate:9.0f} masks/s   mean hole ratio {ratio.item():.3f}")


if __name__ == "__main__":
    main()
