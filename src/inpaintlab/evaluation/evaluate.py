"""The evaluation task behind eval.py: checkpoints and classical baselines on the same images.

`run_evaluation(settings, output_dir, checkpoints)` is the whole task for any caller: eval.py
passes its composed config (the keys of conf/evaluate/default.yaml at its top level, plus
`ckpt_path`, `data` and `mask`), and a training run can evaluate its best checkpoint with its
own `evaluate:` settings. Data and masks come from `settings.data` / `settings.mask` when
given, otherwise from the run config saved in the first checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from inpaintlab.data.datamodule import build_datamodule
from inpaintlab.errors import ConfigError, require_extra
from inpaintlab.evaluation.compare import check_split, compare_methods
from inpaintlab.evaluation.comparison import Comparison
from inpaintlab.evaluation.methods import (
    CKPT_PREFIX,
    build_methods,
    check_specs,
    checkpoint_path,
    method_labels,
    saved_run_config,
)
from inpaintlab.evaluation.report import print_comparison
from inpaintlab.inference.inpainter import select_device
from inpaintlab.metrics.perceptual import load_fid, load_lpips
from inpaintlab.models.checkpoint import read_checkpoint
from inpaintlab.runs.config import print_config_tree, save_config
from inpaintlab.runs.folders import RESULT_FILES, refuse_existing_results

GROUPS = ("data", "mask")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Hydra task of eval.py: results printed and written in the run folder."""
    comparison = run_evaluation(cfg, cfg.paths.output_dir, print_config=cfg.print_config)
    return comparison.as_dict()


def run_evaluation(
    settings: DictConfig,
    output_dir: str | Path,
    checkpoints: Sequence[str | Path] = (),
    print_config: bool = False,
) -> Comparison:
    """Evaluate `checkpoints`, `settings.ckpt_path` and `settings.methods` on the same images
    and masks; print the tables and write config.yaml and the result files in `output_dir`."""
    require_extra("eval", "evaluation")
    output_dir = Path(output_dir)
    refuse_existing_results(output_dir)
    specs = method_specs(settings, checkpoints)
    read = {spec: read_checkpoint(path) for spec in specs if (path := checkpoint_path(spec))}
    resolved = resolved_settings(settings, read)
    check_split(resolved.split)
    if print_config:
        print_config_tree(resolved, output_dir / "config_tree.log")
    save_config(resolved, output_dir / "config.yaml")
    device = select_device(resolved.device)
    methods = build_methods(specs, device, resolved.baselines.radius, read)
    metrics = resolved.metrics
    comparison = compare_methods(
        methods,
        build_datamodule(resolved, resolved.data, resolved.mask, train=False),
        split=resolved.split,
        output_dir=output_dir,
        device=device,
        max_images=resolved.max_images,
        lpips=load_lpips(metrics.lpips, metrics.lpips_net),
        fid=load_fid(metrics.fid, metrics.fid_weights),
        num_samples=resolved.num_samples,
        info=run_info(specs, resolved),
    )
    print_comparison(comparison)
    console = Console(soft_wrap=True)
    for name in RESULT_FILES:
        console.print(f"  wrote {output_dir / name}")
    return comparison


def method_specs(settings: DictConfig, checkpoints: Sequence[str | Path]) -> list[str]:
    """`checkpoints`, then `settings.ckpt_path` (if set), then `settings.methods`."""
    paths = [*checkpoints, *([settings.ckpt_path] if settings.get("ckpt_path") else [])]
    return check_specs([*(f"{CKPT_PREFIX}{path}" for path in paths), *settings.methods])


def resolved_settings(settings: DictConfig, checkpoints: dict[str, dict]) -> DictConfig:
    """A standalone copy of `settings` with data and mask filled in (from the first
    checkpoint's run config where not given) and `batch_size` applied to the data."""
    resolved = OmegaConf.to_container(settings, resolve=True)
    missing = [key for key in GROUPS if resolved.get(key) is None]
    if missing and not checkpoints:
        raise ConfigError(
            f"no {' or '.join(missing)} config and no checkpoint to take it from: pass e.g. "
            "data=folder data.root=/photos mask=folder_fixed mask.root=/masks"
        )
    if missing:
        spec, checkpoint = next(iter(checkpoints.items()))
        run = saved_run_config(checkpoint, checkpoint_path(spec))
        resolved |= {key: run[key] for key in missing}
    if resolved.get("batch_size"):
        resolved["data"]["val_batch_size"] = resolved["batch_size"]
    return OmegaConf.create(resolved)


def run_info(specs: list[str], settings: DictConfig) -> dict[str, Any]:
    """What metrics.json records besides the scores: checkpoints, data and masks."""
    checkpoints = {
        label: str(path.resolve())
        for spec, label in zip(specs, method_labels(specs), strict=True)
        if (path := checkpoint_path(spec))
    }
    return {
        "checkpoints": checkpoints,
        **{key: OmegaConf.to_container(settings[key]) for key in GROUPS},
    }
