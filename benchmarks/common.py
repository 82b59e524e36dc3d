"""What every benchmark prints and needs: the machine, the command, configs composed from conf/."""

from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig

from inpaintlab.conf import CONFIG_DIR
from inpaintlab.runs.config import compose_outside_hydra

ROOT = Path(__file__).resolve().parents[1]


def describe_machine(device: str = "cpu") -> str:
    """One paragraph naming the command, CPU/GPU, thread count and library versions."""
    lines = [
        f"command: {Path(sys.executable).name} {' '.join(sys.argv)}",
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}",
        f"torch {torch.__version__}",
    ]
    if device.startswith("cuda"):
        lines.append(f"gpu: {torch.cuda.get_device_name(device)}")
    return "\n".join(lines)


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    """conf/train.yaml with `overrides`, writing under `output_dir`, as train.py would see it."""
    return compose_outside_hydra(CONFIG_DIR, "train", overrides, output_dir)


def peak_memory_mib(device: str = "cpu") -> float:
    """Peak GPU memory allocated on `device`, or the process's peak resident memory on CPU."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
