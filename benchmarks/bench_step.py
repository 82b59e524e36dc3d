"""A model's training step alone and in the real loop: time, FLOPs against a measured matmul
peak, and a profile grouped by what the time buys.

Usage: python benchmarks/bench_step.py [--cases ce_released pconv_256 ec_edge ec_inpaint]
       [--precisions 32-true bf16-mixed] [--channels-last] [--compile] [--profile] [--size N]
       [--batch N]
       [--steps 5] [--warmup 2] [--device cpu|cuda]
Each case runs in a fresh process. "step" times a fixed batch (images and masks made once,
no data pipeline): the model's own updates, as a reference implementation's iteration is
timed. The FLOPs of one batch (forward and backward convolutions and matrix products, counted
by torch.utils.flop_counter) over its time give the achieved GFLOP/s, set against the best
of a 2048 x 2048 matrix product in the same precision, timed in the same process. --profile
then runs the real loop (sample photographs, augmentation and masks on the device) under
torch.profiler and groups each operator's own time by the part of the step it belongs to.
The cases are the reference shapes of BENCHMARKS.md; VGG terms use random weights (the same
cost as ImageNet's).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from bench_train import QUIET_TRAINER, StepTimer, set_threads
from common import compose_train, describe_machine, peak_memory_mib
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from inpaintlab.data.datamodule import build_datamodule
from inpaintlab.data.edges import EdgeDetector
from inpaintlab.models import manual_gan
from inpaintlab.networks.vgg import VGGFeatures
from inpaintlab.training.task import build_model, resolve_auto_setting

# name: (overrides, batch, size); the shapes the reference implementations were timed at
CASES: dict[str, tuple[list[str], int, int]] = {
    "ce_released": (
        [
            "model=context_encoder",
            "mask=center",
            "model.setting=center",
            "model.generator.bottleneck_type=conv",
        ],
        64,
        128,
    ),
    "pconv_256": (["model=pconv", "mask=irregular_medium", "loss.vgg_weights=none"], 8, 256),
    "ec_edge": (
        ["model=edgeconnect", "model.stage=edge", "mask=irregular_medium", "loss.vgg_weights=none"],
        8,
        128,
    ),
    "ec_inpaint": (
        [
            "model=edgeconnect",
            "model.stage=inpaint",
            "mask=irregular_medium",
            "loss.vgg_weights=none",
        ],
        8,
        128,
    ),
    # not a reference shape: the recipe of experiment=cpu_quality (EMA, prefill, network
    # preset; it trains in bf16-mixed), whose real run BENCHMARKS.md compares with this
    "pconv_cpu_quality": (
        ["experiment=cpu_quality", "model=pconv", "data.root=unused"],
        16,
        128,
    ),
}
LABEL = "inpaintlab:"
# where an operator's own time goes when no labelled region holds it
CONVOLUTION_OPS = ("conv",)
NORM_OPS = ("batch_norm", "instance_norm", "group_norm", "layer_norm", "BatchNorm", "InstanceNorm")


class FixedBatches(Dataset):
    """The same prepared batch `length` times (a DataLoader with batch_size=None)."""

    def __init__(self, batch: dict[str, torch.Tensor], length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.batch


class CountFlops(pl.Callback):
    """Counts the FLOPs of the first training batch after `warmup` batches."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.flops, self.batches = warmup, 0, 0
        self._mode: FlopCounterMode | None = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.batches += 1
        if self.batches == self.warmup + 1:
            self._mode = FlopCounterMode(display=False)
            self._mode.__enter__()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self.flops, self._mode = self._mode.get_total_flops(), None


class ProfileBatches(pl.Callback):
    """Profiles `steps` training batches after `warmup` ones (epoch ends included: the
    sample photographs make short epochs), then stops training."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps, self.batches = warmup, steps, 0
        self.profiler: profile | None = None
        self.seconds, self._start = 0.0, 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.batches += 1
        if self.batches == self.warmup + 1:
            self.profiler = profile(activities=[ProfilerActivity.CPU])
            self.profiler.__enter__()
            self._start = time.perf_counter()
        if self.batches == self.warmup + self.steps + 1:
            self.seconds = time.perf_counter() - self._start
            self.profiler.__exit__(None, None, None)
            trainer.should_stop = True


def matmul_gflops(device: str, dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """The best GFLOP/s of an n x n matrix product in `dtype` on `device`."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def fixed_batch(cfg, batch: int, size: int, device: str) -> dict[str, torch.Tensor]:
    """Smooth random images and masks of the case's generator, made once on `device`."""
    generator = torch.Generator(device).manual_seed(0)
    coarse = torch.rand(batch, cfg.data.channels, size // 8, size // 8, generator=generator)
    image = F.interpolate(coarse.to(device), size=size, mode="bicubic").clamp(0, 1)
    masks = hydra.utils.instantiate(cfg.mask)
    mask = masks(batch, size, size, generator=generator, device=device)
    return {"image": image, "mask": mask, "index": torch.arange(batch, device=device)}


def trainer_for(cfg, device: str, callbacks: list[pl.Callback]) -> pl.Trainer:
    """A quiet single-device trainer in the case's precision."""
    return pl.Trainer(
        accelerator="gpu" if device.startswith("cuda") else "cpu",
        devices=1,
        precision=cfg.trainer.precision,
        callbacks=callbacks,
        **QUIET_TRAINER,
    )


def case_config(case: dict[str, Any], tmp: Path):
    """The composed training config of one case."""
    overrides, batch, size = CASES[case["name"]]
    overrides = [
        *overrides,
        f"data.batch_size={case.get('batch') or batch}",
        f"data.image_size={case.get('size') or size}",
        f"trainer.precision={case['precision']}",
        f"model.channels_last={str(case['channels_last']).lower()}",
        f"model.compile={str(case['compile']).lower()}",
    ]
    cfg = compose_train(overrides, tmp)
    resolve_auto_setting(cfg)
    return cfg


def time_the_step(case: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """Seconds per batch, FLOPs and peak memory of the model step on a fixed batch."""
    cfg = case_config(case, tmp)
    model = build_model(cfg)
    batch = fixed_batch(cfg, cfg.data.batch_size, cfg.data.image_size, case["device"])
    timer, flops = StepTimer(case["warmup"], case["steps"]), CountFlops(case["warmup"])
    length = case["warmup"] + case["steps"] + 2
    loader = DataLoader(FixedBatches(batch, length), batch_size=None)
    trainer_for(cfg, case["device"], [timer, flops]).fit(model, loader)
    seconds = cfg.data.batch_size / timer.result["images_per_s"]
    dtype = torch.bfloat16 if case["precision"].startswith("bf16") else torch.float32
    peak = matmul_gflops(case["device"], dtype)
    return {
        "batch": cfg.data.batch_size,
        "size": cfg.data.image_size,
        "s_per_batch": seconds,
        "gflop_per_batch": flops.flops / 1e9,
        "gflops": flops.flops / 1e9 / seconds,
        "peak_gflops": peak,
        "peak_mib": peak_memory_mib(case["device"]),
    }


def labelled(function: Callable, name: str) -> Callable:
    """`function` inside a profiler region named LABEL + `name`."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with record_function(LABEL + name):
            return function(*args, **kwargs)

    return wrapper


class LabelParts(pl.Callback):
    """Profiler regions around the parts of a step the profile groups by, put in when fitting
    starts (the losses exist from then on), so the training code carries no profiling."""

    def on_train_start(self, trainer, module) -> None:
        datamodule = trainer.datamodule
        if datamodule.augment is not None:
            datamodule.augment.forward = labelled(datamodule.augment.forward, "augmentation")
        datamodule._train_masks = labelled(datamodule._train_masks, "masks")
        module.log = labelled(module.log, "logging")
        module.log_dict = labelled(module.log_dict, "logging")
        for name in module.network_names:
            if "discriminator" in name:
                label_methods(getattr(module, name), ("forward", "forward_with_features"))
        for part in module.modules():
            if isinstance(part, VGGFeatures):
                part.forward = labelled(part.forward, "VGG loss")
        if module.generator_average is not None:
            average = module.generator_average
            average.update = labelled(average.update, "EMA")
        for name in ("non_finite_flag", "restore_where"):
            setattr(manual_gan, name, labelled(getattr(manual_gan, name), "guard"))
        module._step_counts.record = labelled(module._step_counts.record, "guard")
        EdgeDetector.__call__ = labelled(EdgeDetector.__call__, "Canny")


def label_methods(network, names: tuple[str, ...]) -> None:
    """Label the discriminator's forward methods that exist."""
    for name in names:
        if hasattr(network, name):
            setattr(network, name, labelled(getattr(network, name), "discriminator"))


def group_of(event) -> str:
    """The part of the step an operator event's own time belongs to."""
    walker = event
    while walker is not None:
        name = walker.name
        if name.startswith(LABEL):
            return name.removeprefix(LABEL)
        if name.startswith("Optimizer."):
            return "optimiser"
        if name.startswith("enumerate(DataLoader)"):
            return "data wait"
        walker = walker.cpu_parent
    if any(op in event.name for op in NORM_OPS):
        return "norm layers"
    if any(op in event.name for op in CONVOLUTION_OPS):
        return "convolutions"
    return "other operators"


def profile_the_loop(case: dict[str, Any], tmp: Path) -> dict[str, float]:
    """Milliseconds per batch of each part of the real training loop (sample photographs)."""
    cfg = case_config(case, tmp)
    model = build_model(cfg)
    datamodule = build_datamodule(cfg, cfg.data, cfg.mask, True)
    profiler = ProfileBatches(case["warmup"], case["steps"])
    trainer_for(cfg, case["device"], [LabelParts(), profiler]).fit(model, datamodule=datamodule)
    totals: dict[str, float] = defaultdict(float)
    for event in profiler.profiler.events():
        totals[group_of(event)] += event.self_cpu_time_total / 1000 / case["steps"]
    groups = dict(sorted(totals.items(), key=lambda item: -item[1]))
    return {"groups": groups, "wall_ms": 1000 * profiler.seconds / case["steps"]}


def run_case(case: dict[str, Any]) -> None:
    """The child process: print the case's results as one JSON line."""
    set_threads(case["threads"], 1)
    with tempfile.TemporaryDirectory() as tmp:
        result = {"step": time_the_step(case, Path(tmp))}
    if case["profile"]:
        with tempfile.TemporaryDirectory() as tmp:
            result["profile"] = profile_the_loop(case, Path(tmp))
    print(json.dumps(result))


def in_fresh_process(case: dict[str, Any], script: str = __file__) -> dict[str, Any]:
    """The JSON result of `script --case <case>` (this benchmark's by default), run apart."""
    command = [sys.executable, script, "--case", json.dumps(case)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{result.stderr[-3000:]}")
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


def print_result(case: dict[str, Any], result: dict[str, Any]) -> None:
    step = result["step"]
    layout = (" channels_last" if case["channels_last"] else "") + (
        " compiled" if case["compile"] else ""
    )
    print(
        f"{case['name']:12s} {case['precision']:10s}{layout:23s} batch {step['batch']:3d} "
        f"{step['size']:4d} px  {step['s_per_batch']:7.3f} s/batch  "
        f"{step['gflop_per_batch']:8.1f} GFLOP  {step['gflops']:6.1f} GFLOP/s "
        f"({100 * step['gflops'] / step['peak_gflops']:4.1f} % of {step['peak_gflops']:.0f})  "
        f"{step['peak_mib']:6.0f} MiB"
    )
    profiled = result.get("profile")
    if profiled:
        total = sum(profiled["groups"].values())
        for group, ms in profiled["groups"].items():
            print(f"    {group:18s} {ms:9.1f} ms/batch {100 * ms / total:5.1f} %")
        print(
            f"    {'operators':18s} {total:9.1f} ms/batch in all; the profiled loop took "
            f"{profiled['wall_ms']:.1f} ms/batch"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--channels-last", action="store_true", help="also with channels_last")
    parser.add_argument("--compile", action="store_true", help="also with torch.compile")
    parser.add_argument("--profile", action="store_true", help="profile the real loop too")
    parser.add_argument("--size", type=int, default=None, help="instead of the case's")
    parser.add_argument("--batch", type=int, default=None, help="instead of the case's")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return run_case(json.loads(args.case))
    print(describe_machine(args.device))
    layouts = [False, True] if args.channels_last else [False]
    compiles = [False, True] if args.compile else [False]
    for name in args.cases:
        for precision, channels_last, compiled in itertools.product(
            args.precisions, layouts, compiles
        ):
            case = {
                "name": name,
                "precision": precision,
                "channels_last": channels_last,
                "compile": compiled,
                **{key: getattr(args, key) for key in ("size", "batch", "steps", "warmup")},
                **{key: getattr(args, key) for key in ("threads", "device", "profile")},
            }
            print_result(case, in_fresh_process(case))


if __name__ == "__main__":
    main()
