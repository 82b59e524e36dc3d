"""benchmarks/bench_step.py: the step's time and FLOPs, and a profile whose groups account
for the profiled loop's time (EdgeConnect has every group: Canny, VGG, discriminators)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_step.py"
GROUPS = (
    "convolutions",
    "norm layers",
    "VGG loss",
    "discriminator",
    "optimiser",
    "guard",
    "masks",
    "augmentation",
    "Canny",
    "logging",
)


def test_bench_step_times_counts_and_profiles_a_tiny_edgeconnect_step():
    command = [
        sys.executable,
        str(BENCH),
        *("--cases", "ec_inpaint", "--size", "32", "--batch", "2"),
        *("--steps", "2", "--warmup", "1", "--precisions", "32-true", "--profile"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert out.startswith("command: ") and "machine: " in out
    step = re.search(
        r"ec_inpaint +32-true .* ([\d.]+) s/batch +([\d.]+) GFLOP +([\d.]+) GFLOP/s", out
    )
    assert step, out
    seconds, gflop, gflops = map(float, step.groups())
    assert seconds > 0 and gflop > 0
    assert abs(gflops - gflop / seconds) <= 0.05 * gflops + 0.1
    shares = dict(re.findall(r"^ {4}(\w[\w ]*?) +[\d.]+ ms/batch +([\d.]+) %$", out, re.MULTILINE))
    assert set(GROUPS) <= set(shares), out
    assert abs(sum(map(float, shares.values())) - 100) < 1
    operators, wall = map(
        float, re.search(r"operators +([\d.]+) ms/batch.* took ([\d.]+)", out).groups()
    )
    assert 0.5 * wall < operators < 1.1 * wall  # the groups hold the loop's time


@pytest.mark.slow
def test_the_gpu_check_script_runs_through_on_the_cpu(tmp_path):
    out = tmp_path / "gpu_check.txt"
    script = ROOT / "benchmarks" / "gpu_check.sh"
    environment = {**os.environ, "PYTHON": sys.executable}
    command = ["bash", str(script), "--device", "cpu", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = out.read_text()
    for model in ("context_encoder", "pconv", "edgeconnect"):
        assert f"{model} 32-true: trained and validated in" in text
    assert "GFLOP/s" in text and "channels_last" in text
    assert text.count("ms") >= 3  # an inference latency per model
