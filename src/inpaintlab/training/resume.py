"""Resuming runs: which checkpoint `ckpt_path` names, crash-safe checkpoint files, the run
config saved beside the checkpoints.

Lightning's own checkpoint writer serialises into memory, writes a temporary file in the system
temp folder and moves it into place, which is a copy (not atomic) when that folder lies on
another file system, as it usually does on clusters. `AtomicCheckpointIO` writes next to the
target and renames, so a run killed at any moment leaves either the old or the new file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning_fabric.utilities.cloud_io import get_filesystem
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.plugins.io import TorchCheckpointIO

from inpaintlab.data.io import written_in_one_go
from inpaintlab.errors import ConfigError
from inpaintlab.runs.config import save_config

log = logging.getLogger("inpaintlab")

LAST = "last"
LAST_FILE = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each local checkpoint to a hidden temporary file in its own folder, flush it to
    disk, then rename it over the target (remote paths fall back to Lightning's writer)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with written_in_one_go(path) as partial, open(partial, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk, where the platform allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def resolve_ckpt_path(ckpt_path: str | None, checkpoint_dir: Path | None) -> str | None:
    """The checkpoint to resume from: `last` means <checkpoint folder>/last.ckpt, or a fresh
    start while that file does not exist yet (the first launch of a job that may be requeued)."""
    if ckpt_path != LAST:
        return ckpt_path
    if checkpoint_dir is None:
        raise ConfigError(
            "ckpt_path=last needs checkpoints: use callbacks=default, or pass ckpt_path=<file>"
        )
    last = checkpoint_dir / LAST_FILE
    if last.is_file():
        return str(last)
    log.info("ckpt_path=last: %s does not exist yet, starting a new run", last)
    return None


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts (added and removed keys too)."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [prefix or "<root>"]
    keys = sorted(set(old) | set(new), key=str)
    return [
        changed
        for key in keys
        for changed in changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")
    ]


def save_run_config(cfg: DictConfig, path: Path, resuming: bool) -> Path:
    """Write the run's resolved config to `path`; a run resumed into the folder of the run it
    continues (e.g. a requeued SLURM job) keeps that config.yaml (`save_resumed_config`), and
    a new run replaces the config.yaml of one that stopped before writing any checkpoint."""
    if resuming and path.is_file():
        return save_resumed_config(cfg, path)
    if path.is_file() and not any(path.parent.glob("*.ckpt")):
        # an earlier run stopped before its first checkpoint: it left no result to protect
        log.info("%s belonged to a run that left no checkpoint: replaced", path)
        path.unlink()
    return save_config(cfg, path)


def save_resumed_config(cfg: DictConfig, path: Path) -> Path:
    """Keep a resumed run's config.yaml; write this run's config beside it, as
    config.resume<N>.yaml, only when it differs from the latest one, and say what changed."""
    saved = sorted(path.parent.glob(f"{path.stem}.resume*{path.suffix}"), key=resume_number)
    latest = saved[-1] if saved else path
    changes = changed_keys(plain_config(OmegaConf.load(latest)), plain_config(cfg))
    if not changes:
        return latest
    target = path.with_name(f"{path.stem}.resume{resume_number(latest) + 1}{path.suffix}")
    target.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    changed = ", ".join(key.rstrip(".") for key in changes)
    log.info("resumed with changed settings (%s): saved them to %s", changed, target)
    return target


def resume_number(path: Path) -> int:
    """N of config.resume<N>.yaml; 0 for config.yaml."""
    suffix = Path(path.stem).suffix  # ".resume<N>" or ""
    return int(suffix.removeprefix(".resume")) if suffix else 0


def plain_config(cfg: DictConfig) -> dict:
    """A config as resolved containers, without Hydra's own node (present when a config is
    composed outside @hydra.main, and different at every launch)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    return container
