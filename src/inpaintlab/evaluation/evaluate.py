"""The evaluation task behind eval.py: a checkpoint on a split, metrics per hole-ratio bin."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from inpaintlab.checkpoint import CHECKPOINT_KEY, model_from_checkpoint, read_checkpoint
from inpaintlab.errors import ConfigError
from inpaintlab.evaluation.bins import BIN_NAMES
from inpaintlab.runtime import (
    instantiate_list,
    loggers_closed_at_exit,
    print_config_tree,
    save_config,
)
from inpaintlab.training import build_datamodule

SPLITS = ("val", "test")
METRICS = ("psnr", "ssim", "hole_l1x100")
SHOWN = ("data", "mask", "model")  # groups of the run config printed beside eval's own


def evaluation_config(cfg: DictConfig, checkpoint: dict[str, Any]) -> DictConfig:
    """The run's saved config with the data/mask groups given to eval.py on top."""
    saved = checkpoint[CHECKPOINT_KEY].get("config")
    if saved is None:
        raise ConfigError(
            "the checkpoint has no saved run config: evaluate a checkpoint of train.py"
        )
    run = OmegaConf.create(saved)
    for key in ("data", "mask"):
        if cfg.get(key) is not None:
            run[key] = cfg[key]
    run.augment = None
    return run


def metrics_table(metrics: dict[str, float], split: str) -> dict[str, dict[str, float]]:
    """{bin: {metric: value}} from flat logged keys like `test/psnr/0-10`."""
    table: dict[str, dict[str, float]] = {}
    for bin_name in ("all", *BIN_NAMES):
        row = {
            m: metrics[f"{split}/{m}/{bin_name}"]
            for m in METRICS
            if f"{split}/{m}/{bin_name}" in metrics
        }
        if row:
            row["count"] = int(metrics.get(f"{split}/count/{bin_name}", 0))
            table[bin_name] = row
    return table


def write_results(
    table: dict[str, dict[str, float]], meta: dict[str, Any], folder: Path
) -> list[Path]:
    """metrics.json (with run metadata) and metrics.csv (one row per bin)."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = folder / "metrics.json", folder / "metrics.csv"
    for path in (json_path, csv_path):
        if path.exists():
            raise ConfigError(
                f"{path} already exists: choose a new output folder (hydra.run.dir=...)"
            )
    json_path.write_text(json.dumps({**meta, "bins": table}, indent=2))
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["bin", "count", *METRICS])
        writer.writeheader()
        for bin_name, row in table.items():
            writer.writerow({"bin": bin_name, **row})
    return [json_path, csv_path]


def print_table(table: dict[str, dict[str, float]], title: str) -> None:
    """Metrics per bin as a rich table."""
    view = Table(title=title)
    for column in ("hole ratio", "images", "PSNR", "SSIM", "hole L1 x100"):
        view.add_column(column, justify="right")
    for bin_name, row in table.items():
        values = [f"{row[m]:.4f}" if m in row else "-" for m in METRICS]
        view.add_row(bin_name, str(row["count"]), *values)
    Console().print(view)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate `cfg.ckpt_path` on `cfg.split`; print and save metrics per bin and overall."""
    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split!r} is not one of {', '.join(SPLITS)}")
    checkpoint = read_checkpoint(cfg.ckpt_path)
    run = evaluation_config(cfg, checkpoint)
    output_dir = Path(cfg.paths.output_dir)
    if cfg.print_config:
        shown = {**OmegaConf.to_container(cfg, resolve=True), **{k: run[k] for k in SHOWN}}
        print_config_tree(OmegaConf.create(shown), output_dir / "config_tree.log")
    save_config(run, output_dir / "config.yaml")
    model = model_from_checkpoint(checkpoint)
    datamodule = build_datamodule(run, run.data, run.mask, train=False)
    loggers = instantiate_list(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=loggers or False, callbacks=[]
    )
    with loggers_closed_at_exit(loggers):
        run_split = trainer.validate if cfg.split == "val" else trainer.test
        run_split(model, datamodule=datamodule)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    table = metrics_table(metrics, cfg.split)
    meta = {"checkpoint": str(Path(cfg.ckpt_path).resolve()), "split": cfg.split}
    print_table(table, f"{cfg.split} metrics of {cfg.ckpt_path}")
    for path in write_results(table, meta, output_dir):
        Console(soft_wrap=True).print(f"  wrote {path}")
    return {"table": table, **meta}
