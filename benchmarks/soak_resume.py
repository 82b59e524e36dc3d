"""Kill a training run with SIGKILL at random moments, resume it with `ckpt_path=last` after
each kill, and compare where it ends with an uninterrupted run of the same command.

Usage: python benchmarks/soak_resume.py [--kills 20] [--seed 0] [--every-n-steps 2]
       [--epochs 6] [--max-delay 3.0] [-- train.py overrides ...]
Both runs are `train.py debug=limit logger=csv ckpt_path=last` with step checkpoints
(`callbacks.last_checkpoint.every_n_train_steps`) and the overrides given after `--` (e.g.
model=pconv). Each kill lands a random time (up to --max-delay seconds) after the run's
last.ckpt last changed, so some land during training steps, some during validation, some
while a checkpoint is being written. After every kill each .ckpt on disk must load. At the
end the two runs' final checkpoints must hold equal weights (the EMA included), optimiser
and scheduler states, and global step. Prints one line per kill and a summary; exits 1 when
anything differs.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import ROOT, describe_machine

from inpaintlab.models.checkpoint import read_checkpoint

COMPARED = ("state_dict", "optimizer_states", "lr_schedulers", "global_step")


def train_command(run_dir: Path, epochs: int, every_n_steps: int, overrides: list[str]) -> list:
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "debug=limit",
        f"trainer.max_epochs={epochs}",
        f"callbacks.last_checkpoint.every_n_train_steps={every_n_steps}",
        "logger=csv",
        "print_config=false",
        "~callbacks.rich_progress_bar",
        "+trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}",
        "ckpt_path=last",  # the same command for the first launch and every restart
        *overrides,
    ]


def run_to_the_end(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"train.py failed:\n{result.stderr[-3000:]}")


def kill_at_random(command: list[str], env: dict[str, str], last: Path, delay: float) -> bool:
    """Start the run, SIGKILL it `delay` seconds after last.ckpt next changes; False when the
    run ended by itself first."""
    before = last.stat().st_mtime_ns if last.exists() else 0
    # a session of its own: the kill takes every process of the run (DDP's workers too), as a
    # lost node would
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while not (last.exists() and last.stat().st_mtime_ns != before):
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)
    return process.wait() == -signal.SIGKILL


def position(checkpoint: dict[str, Any]) -> str:
    progress = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]
    return (
        f"epoch {checkpoint['epoch']}, global step {checkpoint['global_step']}, "
        f"batches completed {progress['completed']}"
    )


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two checkpoint parts differ (tensors bit for bit), as key paths."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b), key=str)
        return [d for k in keys for d in differences(a.get(k), b.get(k), f"{where}/{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{where}/{i}")
        ]
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        same = a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
        return [] if same else [where]
    return [] if a == b else [where]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every-n-steps", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--max-delay", type=float, default=3.0)
    parser.add_argument("--keep", type=Path, help="keep the two run folders here")
    parser.add_argument("overrides", nargs="*", help="train.py overrides, after --")
    args = parser.parse_args()
    print(describe_machine())
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    folder = args.keep or Path(tempfile.mkdtemp(prefix="soak_"))
    straight, killed = folder / "straight", folder / "killed"

    def command(run_dir: Path) -> list[str]:
        return train_command(run_dir, args.epochs, args.every_n_steps, args.overrides)

    run_to_the_end(command(straight), env)
    rng = random.Random(args.seed)
    last = killed / "checkpoints" / "last.ckpt"
    kills = 0
    for attempt in range(args.kills):
        if not kill_at_random(command(killed), env, last, rng.uniform(0, args.max_delay)):
            print(f"launch {attempt + 1}: the run finished before the kill")
            break
        kills += 1
        for checkpoint in killed.rglob("*.ckpt"):
            read_checkpoint(checkpoint)  # raises if a kill left a broken file
        print(f"kill {kills}: last.ckpt holds {position(read_checkpoint(last))}")
    run_to_the_end(command(killed), env)
    a = read_checkpoint(straight / "checkpoints" / "last.ckpt")
    b = read_checkpoint(last)
    found = [d for part in COMPARED for d in differences(a.get(part), b.get(part), part)]
    print(f"uninterrupted: {position(a)}")
    print(f"killed {kills} times and resumed: {position(b)}")
    print("identical" if not found else f"DIFFERENT: {', '.join(found[:8])}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
