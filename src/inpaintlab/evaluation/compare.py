"""Compare inpainting methods on the same images with the same masks: the loop behind eval.py.

    from inpaintlab.evaluation.compare import compare_methods
    comparison = compare_methods(["ckpt:run/checkpoints/best.ckpt", "telea"], datamodule,
                                 output_dir="outputs/compare")

Images and masks come from a datamodule's val or test split exactly as in training's
validation: uint8 batches moved to the device, then `prepare_batch(training=False)` turns
them into float images with the deterministic per-index masks. Every method gets the same
batch; its composites are scored per image (PSNR, SSIM, hole L1 x 100, and LPIPS when given
an `LPIPSScore`) and averaged overall and per hole-ratio bin, the bin being the hole ratio
measured on the mask. FID (when given `FIDFeatures`) compares each group's composites with
the same group's originals, wherever the group holds at least 2 images. Timing is the wall
time of the method's call (CUDA synchronised), per image, leaving out the first batch when
there are several (it pays for lazy initialisation).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from inpaintlab.data.datamodule import InpaintingDataModule
from inpaintlab.errors import ConfigError
from inpaintlab.evaluation.comparison import Comparison
from inpaintlab.evaluation.methods import InpaintFn, build_methods
from inpaintlab.evaluation.report import write_report
from inpaintlab.inference.inpainter import select_device
from inpaintlab.metrics.image import bin_groups, group_means, image_scores
from inpaintlab.metrics.perceptual import FIDFeatures, LPIPSScore, frechet_distance
from inpaintlab.runs.folders import refuse_existing_results

SPLITS = ("val", "test")
ALL_METRICS = ("psnr", "ssim", "hole_l1x100", "lpips", "fid")
MASKED_INPUT, ORIGINAL = "masked input", "original"
HOLE_SHADE = 1.0  # holes are shown white in the masked input


@dataclass
class MethodRecord:
    """What one method produced over the split, batch by batch."""

    scores: dict[str, list[Tensor]] = field(default_factory=dict)
    features: list[Tensor] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    images: list[int] = field(default_factory=list)

    def add(self, scores: dict[str, Tensor], seconds: float, count: int) -> None:
        for name, value in scores.items():
            self.scores.setdefault(name, []).append(value.cpu())
        self.seconds.append(seconds)
        self.images.append(count)

    def ms_per_image(self) -> float:
        """Mean wall time per image, leaving out the first batch when there are several."""
        start = 1 if len(self.seconds) > 1 else 0
        return 1000 * sum(self.seconds[start:]) / max(sum(self.images[start:]), 1)


def compare_methods(
    methods: Sequence[str] | Mapping[str, InpaintFn],
    datamodule: InpaintingDataModule,
    split: str = "test",
    output_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    max_images: int | None = None,
    lpips: LPIPSScore | None = None,
    fid: FIDFeatures | None = None,
    num_samples: int = 6,
    radius: int = 3,
    info: dict[str, Any] | None = None,
) -> Comparison:
    """Evaluate `methods` (specs such as "ckpt:<path>" and "telea", or {label: callable}) on
    `split` of `datamodule`; with `output_dir`, also write the report files there (refusing
    to overwrite earlier results). `radius` is the OpenCV baselines' radius; `info` (run
    details such as checkpoint paths) goes into metrics.json."""
    check_split(split)
    if num_samples < 1:
        raise ConfigError(f"num_samples must be at least 1, got {num_samples}")
    if output_dir is not None:
        refuse_existing_results(Path(output_dir))
    device = select_device(device)
    if not isinstance(methods, Mapping):
        methods = build_methods(methods, device, radius)
    if not methods:
        raise ConfigError("nothing to evaluate: pass at least one method")
    for scorer in (lpips, fid):
        if scorer is not None:
            scorer.to(device)
    batches = eval_batches(datamodule, split, device, max_images)
    gathered = run_methods(methods, batches, lpips, fid, num_samples)
    comparison = summarise(*gathered, split=split, info=dict(info or {}))
    if output_dir is not None:
        write_report(comparison, Path(output_dir))
    return comparison


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not one of {', '.join(SPLITS)}")


def eval_batches(
    datamodule: InpaintingDataModule, split: str, device: torch.device, max_images: int | None
) -> Iterator[dict[str, Tensor]]:
    """The split's batches on `device` with their deterministic masks, `max_images` at most."""
    datamodule.prepare_data()
    datamodule.setup("test" if split == "test" else "validate")
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    remaining = max_images if max_images is not None else float("inf")
    for raw in loader:
        if remaining <= 0:
            break
        raw = {key: value[: int(min(remaining, len(value)))] for key, value in raw.items()}
        remaining -= len(raw["index"])
        moved = datamodule.transfer_batch_to_device(raw, device, 0)
        yield datamodule.prepare_batch(moved, training=False)


def run_methods(
    methods: Mapping[str, InpaintFn],
    batches: Iterator[dict[str, Tensor]],
    lpips: LPIPSScore | None,
    fid: FIDFeatures | None,
    num_samples: int,
) -> tuple[dict[str, MethodRecord], Tensor, Tensor | None, list[tuple[str, Tensor]]]:
    """Every method on every batch: per-method records, the hole ratios, the originals' FID
    features (None without FID) and the sample tiles by column."""
    records = {name: MethodRecord() for name in methods}
    ratios: list[Tensor] = []
    real_features: list[Tensor] = []
    titles = [MASKED_INPUT, *methods, ORIGINAL]
    samples: list[list[Tensor]] = [[] for _ in titles]
    for batch in batches:
        image, mask = batch["image"], batch["mask"]
        ratios.append(mask.flatten(1).mean(1).cpu())
        if fid is not None:
            real_features.append(fid(image))
        outputs = {}
        for name, method in methods.items():
            output, seconds = timed_call(name, method, image, mask)
            scores = image_scores(output, image, mask)
            del scores["hole_ratio"]  # the same for every method: kept once in `ratios`
            if lpips is not None:
                scores["lpips"] = lpips(output, image)
            if fid is not None:
                records[name].features.append(fid(output))
            records[name].add(scores, seconds, len(image))
            outputs[name] = output
        keep_samples(samples, image, mask, outputs, num_samples)
    if not ratios:
        raise ConfigError("no images to evaluate: check data.root, split and max_images")
    real = torch.cat(real_features) if real_features else None
    tiles = [(title, torch.cat(parts)) for title, parts in zip(titles, samples, strict=True)]
    return records, torch.cat(ratios), real, tiles


def timed_call(name: str, method: InpaintFn, image: Tensor, mask: Tensor) -> tuple[Tensor, float]:
    """The method's composite and the wall time of its call (CUDA work included)."""
    synchronize(image.device)
    start = time.perf_counter()
    output = method(image, mask)
    synchronize(image.device)
    seconds = time.perf_counter() - start
    if output.shape != image.shape:
        raise RuntimeError(f"{name} returned shape {tuple(output.shape)} for {tuple(image.shape)}")
    return output, seconds


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def keep_samples(
    samples: list[list[Tensor]],
    image: Tensor,
    mask: Tensor,
    outputs: dict[str, Tensor],
    limit: int,
) -> None:
    """Add the batch's first images to the sample columns (masked input, each method's
    output, original) until `limit` images are kept."""
    take = max(limit - sum(len(t) for t in samples[0]), 0)
    if take == 0:
        return
    masked = image.masked_fill(mask.bool().expand_as(image), HOLE_SHADE)
    for column, tiles in zip(samples, [masked, *outputs.values(), image], strict=True):
        column.append(tiles[:take].detach().float().cpu())


def summarise(
    records: dict[str, MethodRecord],
    hole_ratio: Tensor,
    real: Tensor | None,
    samples: list[tuple[str, Tensor]],
    split: str,
    info: dict[str, Any],
) -> Comparison:
    """Per-method group means, FID per group where defined, and timings."""
    results = {}
    for name, record in records.items():
        values = {key: torch.cat(parts) for key, parts in record.scores.items()}
        results[name] = group_means(values, hole_ratio)
        if real is not None:
            add_fid(results[name], real, torch.cat(record.features), hole_ratio)
    computed = next(iter(records.values())).scores
    metrics = tuple(m for m in ALL_METRICS if m in computed or (m == "fid" and real is not None))
    return Comparison(
        split=split,
        metrics=metrics,
        results=results,
        ms_per_image={name: record.ms_per_image() for name, record in records.items()},
        samples=samples,
        info=info,
    )


def add_fid(
    groups: dict[str, dict[str, float]], real: Tensor, fake: Tensor, hole_ratio: Tensor
) -> None:
    """FID of each group holding at least 2 images, added to its row."""
    for group, members in bin_groups(hole_ratio).items():
        if members.sum() >= 2:
            groups[group]["fid"] = frechet_distance(real[members], fake[members])
