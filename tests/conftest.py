"""Shared fixtures: Hydra configs composed in-process with outputs under pytest's tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig, open_dict

from inpaintlab.conf import CONFIG_DIR
from inpaintlab.runs.config import compose_outside_hydra
from tests.wandb_records import offline_wandb  # noqa: F401 (a fixture, shared with every module)

ROOT = Path(__file__).resolve().parents[1]
CONF = CONFIG_DIR

os.environ.setdefault("WANDB_MODE", "disabled")


def compose_config(name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose conf/<name>.yaml as Hydra would, quietly, with outputs under `output_dir`."""
    cfg = compose_outside_hydra(CONF, name, overrides, output_dir)
    with open_dict(cfg):
        cfg.print_config = False
    return cfg


def run_script(
    script: str, *args: str, cwd: Path, timeout: int = 600, env: dict[str, str] | None = None
):
    """Run train.py / eval.py from `cwd` as a user would (outputs land there; the sample
    images are shared with the in-process tests), with `env` added to the environment;
    return the CompletedProcess."""
    env = {**os.environ, **(env or {}), "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    shared_cache = f"paths.cache_dir={ROOT / '.cache'}"
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args, shared_cache],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def compose_train(tmp_path):
    """compose_train(*overrides) -> train config writing under tmp_path."""

    def _compose(*overrides: str) -> DictConfig:
        return compose_config("train", list(overrides), tmp_path)

    return _compose
