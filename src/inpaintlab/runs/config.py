"""A run's configuration: composing it outside @hydra.main, printing and saving it, building
the objects it lists, seeding."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import rich.syntax
import rich.tree
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities import rank_zero_only
from rich.console import Console

from inpaintlab.errors import ConfigError

log = logging.getLogger("inpaintlab")

TREE_ORDER = ("data", "mask", "augment", "model", "loss", "trainer", "callbacks", "logger", "paths")


@rank_zero_only
def print_config_tree(cfg: DictConfig, save_to: Path | None = None) -> None:
    """Print the composed config as a rich tree (main groups first) and optionally save it."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    fields = [f for f in TREE_ORDER if f in cfg] + [f for f in cfg if f not in TREE_ORDER]
    for field in fields:
        branch = tree.add(str(field), style="bold", guide_style="dim")
        value = cfg[field]
        text = (
            OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        )
        branch.add(rich.syntax.Syntax(text, "yaml"))
    Console().print(tree)
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        with open(save_to, "w") as handle:
            Console(file=handle, width=120).print(tree)


def save_config(cfg: DictConfig, path: Path) -> Path:
    """Write the resolved config as YAML, refusing to overwrite an existing file."""
    if path.exists():
        raise ConfigError(f"{path} already exists: choose a new output folder (hydra.run.dir=...)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def instantiate_list(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config mapping whose value has a `_target_` (entries set to
    null, as in `callbacks.rich_progress_bar=null`, are switched off)."""
    if not cfg:
        return []
    return [
        hydra.utils.instantiate(entry) for entry in cfg.values() if entry and "_target_" in entry
    ]


def seed_everything(seed: int | None) -> None:
    """Seed python, numpy and torch (all ranks) when a seed is configured."""
    if seed is not None:
        pl.seed_everything(seed, workers=True)


def compose_outside_hydra(
    config_dir: Path, name: str, overrides: list[str], output_dir: Path
) -> DictConfig:
    """Compose conf/<name>.yaml as @hydra.main would, for tests and tools that run outside it:
    `paths.root_dir` (data/ and .cache/) is the current folder, as for train.py, and every output
    goes under `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir), version_base="1.3"):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
        cfg.paths.root_dir = str(Path.cwd())
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg
