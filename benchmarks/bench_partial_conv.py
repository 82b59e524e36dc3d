"""Forward+backward time of PartialConv2d next to nn.Conv2d and a naive two-convolution layer.

Usage: python benchmarks/bench_partial_conv.py [--device cpu] [--repeats 10]
Each row: median ms per forward+backward over --repeats timed iterations after two warm-ups,
random irregular masks, two mask tensors taking turns (as in training, a new mask per batch).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from common import describe_machine
from torch import Tensor, nn

from inpaintlab.data.masks import IrregularMask
from inpaintlab.networks.partial_conv import PartialConv2d

# (batch, in channels, out channels, size, kernel, stride, padding)
SHAPES = [(8, 64, 64, 128, 3, 1, 1), (8, 3, 64, 256, 7, 2, 3)]


class NaivePartialConv2d(nn.Conv2d):
    """The straightforward formulation: a second ones-kernel conv of the mask on every call."""

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(output, new mask) for `x` and its one-channel validity mask."""
        with torch.no_grad():
            ones = torch.ones(1, 1, *self.kernel_size, device=mask.device)
            sum_m = F.conv2d(mask, ones, None, self.stride, self.padding, self.dilation)
            new_mask = sum_m.clamp(0, 1)
            ratio = self.kernel_size[0] * self.kernel_size[1] / (sum_m + 1e-8) * new_mask
        raw = super().forward(x * mask)
        bias = self.bias.view(1, -1, 1, 1)
        return ((raw - bias) * ratio + bias) * new_mask, new_mask


def median_ms(
    steps: dict[str, Callable[[int], None]], device: str, repeats: int, warmup: int = 2
) -> dict[str, float]:
    """Median wall time in ms of each step(i), the steps interleaved round-robin so that a
    busy machine slows them alike, after `warmup` untimed rounds."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(warmup + repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step(i)
            if device.startswith("cuda"):
                torch.cuda.synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t[warmup:]) for name, t in times.items()}


def train_step(
    layer: nn.Module, x: Tensor, masks: list[Tensor] | None, autocast: bool
) -> Callable[[int], None]:
    """step(i): forward with masks[i % len(masks)] (no mask: a plain conv), then backward of a
    fixed random output gradient."""
    amp = torch.autocast(x.device.type, torch.bfloat16) if autocast else contextlib.nullcontext()
    grads: dict[torch.dtype, Tensor] = {}

    def step(i: int) -> None:
        with amp:
            out = layer(x) if masks is None else layer(x, masks[i % len(masks)])[0]
        if out.dtype not in grads:
            grads[out.dtype] = torch.randn_like(out)
        out.backward(grads[out.dtype])

    return step


def layers(shape: tuple, device: str) -> dict[str, nn.Module]:
    """The layers of one benchmark shape, all with the same weights."""
    _, c_in, c_out, _, k, s, p = shape
    torch.manual_seed(0)
    plain = nn.Conv2d(c_in, c_out, k, s, p).to(device)
    result = {"nn.Conv2d": plain}
    for name, cls in [("naive two-conv", NaivePartialConv2d), ("PartialConv2d", PartialConv2d)]:
        result[name] = cls(c_in, c_out, k, s, p).to(device)
        result[name].load_state_dict(plain.state_dict())
    return result


def bench_shape(shape: tuple, device: str, repeats: int, autocast: bool) -> dict[str, float]:
    """Milliseconds per forward+backward for each layer at one shape and precision."""
    batch, c_in, _, size, *_ = shape
    rng = torch.Generator(device).manual_seed(0)
    holes = IrregularMask("medium")(2 * batch, size, size, generator=rng, device=device)
    masks = list((1 - holes).split(batch))
    x = torch.randn(batch, c_in, size, size, device=device, requires_grad=True)
    steps = {
        name: train_step(layer, x, None if name == "nn.Conv2d" else masks, autocast)
        for name, layer in layers(shape, device).items()
    }
    return median_ms(steps, device, repeats)


def main() -> None:
    """Parse arguments, print the machine and one table per shape."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(describe_machine(args.device))
    for shape in SHAPES:
        batch, c_in, c_out, size, k, s, p = shape
        print(f"\n{batch}x{c_in}x{size}x{size} -> {c_out} ch, {k}x{k} stride {s} padding {p}")
        print(f"{'layer':22s} {'fp32 ms':>9s} {'bf16 ms':>9s}")
        fp32 = bench_shape(shape, args.device, args.repeats, autocast=False)
        bf16 = bench_shape(shape, args.device, args.repeats, autocast=True)
        for name in fp32:
            print(f"{name:22s} {fp32[name]:9.1f} {bf16[name]:9.1f}")


if __name__ == "__main__":
    main()
