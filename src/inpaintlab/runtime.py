"""What every entry point shares: config printing, object lists, error reporting, clean shutdown."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
from omegaconf import errors as omegaconf_errors
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only
from rich.console import Console

from inpaintlab.errors import ConfigError, InpaintlabError, one_line

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


@contextmanager
def loggers_closed_at_exit(loggers: Sequence[Logger]) -> Iterator[None]:
    """Close `loggers` when the block ends; a block that raises closes them as failed runs."""
    try:
        yield
    except BaseException:
        close_loggers(loggers, failed=True)
        raise
    close_loggers(loggers, failed=False)


def close_loggers(loggers: Sequence[Logger], failed: bool) -> None:
    """Flush and close loggers; wandb needs an explicit finish or the next multirun job hangs."""
    for logger in loggers:
        logger.finalize("failed" if failed else "success")
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=int(failed))


def as_user_error(error: Exception) -> InpaintlabError | None:
    """Translate config-library errors about user input (composition, overrides, missing or
    unknown keys) into one-line ConfigErrors; None for anything else."""
    if isinstance(error, InpaintlabError):
        return error
    if isinstance(error, hydra.errors.MissingConfigException) and error.options:
        group, _, name = error.missing_cfg_file.rpartition("/")
        options = ", ".join(error.options)
        return ConfigError(f"there is no {group} config {name!r}: choose one of {options}")
    if isinstance(error, hydra.errors.OverrideParseException):
        return ConfigError(f"cannot parse the override {error.override!r}: {one_line(error)}")
    if isinstance(error, hydra.errors.ConfigCompositionException):
        return ConfigError(" ".join(str(error).split()))
    if isinstance(error, omegaconf_errors.MissingMandatoryValue):
        key = getattr(error, "full_key", "") or "a value"
        return ConfigError(f"{key} is required: pass {key}=... on the command line")
    if isinstance(error, omegaconf_errors.ConfigKeyError):
        return ConfigError(f"unknown config key: {one_line(error)}")
    if isinstance(error, hydra.errors.InstantiationException):
        return instantiation_error(error)
    return None


def instantiation_error(error: Exception) -> InpaintlabError | None:
    """The user error inside a (possibly nested) failed instantiation: ours as it is, a
    TypeError or ValueError from a value of the wrong type as a ConfigError naming the
    target that refused it."""
    cause = error.__cause__
    if isinstance(cause, hydra.errors.InstantiationException):
        return instantiation_error(cause)
    if isinstance(cause, InpaintlabError):
        return cause
    if isinstance(cause, TypeError) and "unexpected keyword" in str(cause):
        return ConfigError(f"unknown config key: {one_line(cause)}")
    if isinstance(cause, (TypeError, ValueError)):
        target = re.search(r"target '([^']+)'", str(error))
        built = target.group(1) if target else "an object of the config"
        return ConfigError(
            f"{built} refused its settings ({one_line(cause)}): check the type and range of "
            "the values you overrode"
        )
    return None


def run_task(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any]:
    """Run a task; a user error ends it with one line on stderr and exit code 2."""
    try:
        return task(cfg)
    except Exception as error:
        user_error = as_user_error(error)
        if user_error is None:
            raise
        print(f"error: {one_line(user_error)}", file=sys.stderr)
        sys.exit(2)


def seed_everything(seed: int | None) -> None:
    """Seed python, numpy and torch (all ranks) when a seed is configured."""
    if seed is not None:
        pl.seed_everything(seed, workers=True)


def compose_outside_hydra(
    config_dir: Path, name: str, overrides: list[str], output_dir: Path
) -> DictConfig:
    """Compose conf/<name>.yaml as @hydra.main would, for tests and tools that run outside it:
    `paths.root_dir` is the folder holding conf/, and every output goes under `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir), version_base="1.3"):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
        cfg.paths.root_dir = str(Path(config_dir).parent)
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg
