"""Training images/second and peak memory with each training switch on its own, and in 1
versus 2 CPU processes.

Usage: python benchmarks/bench_switches.py [--model context_encoder|pconv|edgeconnect|all]
       [--size 128] [--batch 16] [--steps 20] [--warmup 3] [--threads N] [--device cpu|cuda]
       [--cases bf16,compile,...] [override ...]
Every case trains the model of bench_train.py (same pipeline, timer and fresh process per
case) with one change from the fp32 baseline: bf16-mixed, channels_last, both, torch.compile
(inductor; its compile time falls in the warm-up, reported on its own), EMA of the generator
weights, gradient clipping; 16-mixed on CUDA only; on CPU, trainer=ddp_cpu (2 processes, each
with the per-process batch, so a step sees twice the images). The --threads torch threads (all
CPUs by default) are split evenly between a case's processes: 1 x 2 against 2 x 1 on 2 cores.
Extra Hydra overrides apply to every case, the baseline included.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from bench_train import BASE_OVERRIDES, MODELS, add_run_arguments, data_overrides, in_fresh_process
from common import describe_machine


@dataclass(frozen=True)
class Case:
    """One measurement: its label, what it changes and where it can run."""

    label: str
    overrides: tuple[str, ...] = ()
    runs_on: tuple[str, ...] = ("cpu", "cuda")


CASES = {
    "fp32": Case("fp32 (baseline)"),
    "bf16": Case("bf16-mixed", ("trainer.precision=bf16-mixed",)),
    "channels_last": Case("channels_last", ("model.channels_last=true",)),
    "bf16_channels_last": Case(
        "bf16-mixed + channels_last", ("trainer.precision=bf16-mixed", "model.channels_last=true")
    ),
    "fp16": Case("16-mixed", ("trainer.precision=16-mixed",), runs_on=("cuda",)),
    "compile": Case("compile (inductor)", ("model.compile=true",)),
    "ema": Case("ema_decay=0.999", ("model.ema_decay=0.999",)),
    "clip": Case("gradient_clip_val=1.0", ("model.gradient_clip_val=1.0",)),
    "ddp": Case("trainer=ddp_cpu", ("trainer=ddp_cpu",), runs_on=("cpu",)),
}
# the Context Encoder in its default (paper) form: centre setting, channel-wise FC bottleneck;
# EdgeConnect's joint stage trains all four networks, so every switch acts on every one
SWITCH_OVERRIDES = {
    **BASE_OVERRIDES,
    "context_encoder": ["mask=center", "model.setting=center"],
    "edgeconnect": [*BASE_OVERRIDES["edgeconnect"], "model.stage=joint"],
}
HEADER = f"{'case':28s} {'procs x threads':>15s}    img/s speed-up  peak MiB warm-up s"


def case_names(text: str) -> list[str]:
    """--cases: comma-separated names of CASES."""
    names = text.split(",")
    unknown = [name for name in names if name not in CASES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {unknown}: choose from {','.join(CASES)}")
    return names


def chosen_cases(names: list[str] | None, device: str) -> list[Case]:
    """The baseline, then the cases in `names` (all by default) that run on `device`; says
    which it leaves out."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    chosen = []
    for name, case in CASES.items():
        if name != "fp32" and names and name not in names:
            continue
        if kind in case.runs_on:
            chosen.append(case)
        else:
            print(f"left out: {case.label} runs on {' and '.join(case.runs_on)} only")
    return chosen


def report_line(case: Case, result: dict[str, Any], baseline: float) -> str:
    """One line of the table: throughput of all processes, speed-up, summed peak memory."""
    split = f"{result['processes']} x {result['threads']}"
    line = (
        f"{case.label:28s} {split:>15s} {result['images_per_s']:8.2f} "
        f"{result['images_per_s'] / baseline:7.2f}x {result['peak_mib']:9.0f} "
        f"{result['warmup_s']:9.1f}"
    )
    if result["compiled_while_timed"]:
        line += "  (compiled during the timed batches: raise --warmup)"
    return line


def benchmark_model(model: str, cases: list[Case], args: argparse.Namespace) -> None:
    """Print the header and one line per case of `model`."""
    base = [*SWITCH_OVERRIDES[model], *data_overrides(args), *args.overrides]
    print(f"\n{model}: {' '.join(base) or 'defaults'}")
    print(
        f"sample data, {args.size} px; batch {args.batch} per process in every case (so a step "
        f"of P processes sees P x {args.batch} images); {args.steps} timed batches after "
        f"{args.warmup} warm-up batches; img/s: the images of all processes over the slowest "
        "process's time; peak MiB: the processes' peaks added up (GPU allocated or resident "
        "set); warm-up s: the untimed batches, which hold torch.compile's cold compile (an "
        "empty inductor cache)"
    )
    print(HEADER)
    baseline = None
    for case in cases:
        result = in_fresh_process([*base, *case.overrides], args)
        baseline = baseline or result["images_per_s"]
        print(report_line(case, result, baseline), flush=True)


def main() -> None:
    """Parse arguments, print the machine and a table per model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="context_encoder", choices=(*MODELS, "all"))
    parser.add_argument("--cases", type=case_names, help=f"some of {','.join(CASES)}")
    add_run_arguments(parser)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every case")
    args = parser.parse_args()
    print(describe_machine(args.device))
    cases = chosen_cases(args.cases, args.device)
    for model in MODELS if args.model == "all" else (args.model,):
        benchmark_model(model, cases, args)


if __name__ == "__main__":
    main()
