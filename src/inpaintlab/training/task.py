"""The training task behind train.py: build everything from the config, fit, report artifacts."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console

from inpaintlab.data.datamodule import build_datamodule
from inpaintlab.errors import ConfigError, require_extra
from inpaintlab.models.base import InpaintingModule
from inpaintlab.models.checkpoint import read_checkpoint
from inpaintlab.runs.config import instantiate_list, print_config_tree, seed_everything
from inpaintlab.runs.folders import refuse_to_overwrite
from inpaintlab.training.loggers import logged_step, loggers_closed_at_exit, resume_loggers
from inpaintlab.training.resume import resolve_ckpt_path, save_run_config

log = logging.getLogger("inpaintlab")
CHECKPOINT_DIR_WARNING = r"Checkpoint directory .* exists and is not empty"
# Lightning's advice under DDP for every key logged per epoch: val/ and test/ metrics are
# already gathered from all processes (BinnedMetrics), train/ losses are the first process's
# own (an all-reduce per key and step would cost more than it tells)
SYNC_DIST_WARNING = r"It is recommended to use `self.log\('(train|val|test)/"
# the datamodule checkpoints its position in the epoch itself (TrainingSampler)
MID_EPOCH_WARNING = r"You're resuming from a checkpoint that ended before the epoch ended"
# Lightning's advice for step checkpoints under manual optimisation: our checkpoints record the
# stepped batch as completed instead (resume.count_the_finished_batch), which is exact
STEP_CHECKPOINT_WARNING = r"Using ModelCheckpoint with manual optimization and every_n_train_steps"

CENTER_MASK = "inpaintlab.data.masks.CenterBoxMask"


def resolve_auto_setting(cfg: DictConfig) -> None:
    """`model.setting=auto`: the Context Encoder's centre setting for centre masks."""
    if cfg.model.get("setting") != "auto":
        return
    is_center = cfg.mask.get("_target_") == CENTER_MASK
    with open_dict(cfg):
        cfg.model.setting = "center" if is_center else "random_region"


def build_model(cfg: DictConfig) -> InpaintingModule:
    """The configured LightningModule; it keeps the resolved run config for its checkpoints."""
    # plain containers (a scheduler config, network settings): checkpoints load weights-only
    model = hydra.utils.instantiate(cfg.model, loss=cfg.loss, _convert_="all")
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    return model


def check_image_size(model: InpaintingModule, image_size: int) -> None:
    """Refuse a data.image_size the networks cannot train on before the trainer starts."""
    multiple = model.size_multiple
    if image_size % multiple:
        nearest = max(multiple, round(image_size / multiple) * multiple)
        raise ConfigError(
            f"data.image_size={image_size} is not a multiple of {multiple}, which "
            f"{type(model).__name__} trains on: set data.image_size={nearest}"
        )


def check_accelerator(trainer_settings: DictConfig) -> None:
    """Refuse a GPU trainer on a machine without a visible CUDA GPU, before anything is built."""
    accelerator = str(trainer_settings.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator} needs a CUDA GPU and this machine shows none: "
            "use trainer=cpu, or trainer=default to take a GPU when there is one"
        )


def require_extras(cfg: DictConfig) -> None:
    """Refuse, before training, a run whose loggers or final evaluation need an optional
    install that is missing (rather than failing after an hour of training)."""
    if cfg.get("evaluate"):
        require_extra("eval", "evaluate= (the evaluation after training)")
    for logger in (cfg.get("logger") or {}).values():
        target = str((logger or {}).get("_target_", ""))
        for extra in ("wandb", "tensorboard"):
            if extra in target.lower():
                require_extra(extra, f"the {extra} logger")


def checkpoint_dir(cfg: DictConfig) -> Path | None:
    """Where ModelCheckpoint writes, if it is configured."""
    checkpointing = (cfg.get("callbacks") or {}).get("model_checkpoint")
    return Path(checkpointing.dirpath) if checkpointing else None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the configured model; optionally test the best checkpoint. Returns final metrics."""
    seed_everything(cfg.seed)
    resolve_auto_setting(cfg)
    check_accelerator(cfg.trainer)
    require_extras(cfg)
    output_dir = Path(cfg.paths.output_dir)
    ckpt_dir = checkpoint_dir(cfg)
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path, ckpt_dir)
    # read now: a missing or foreign checkpoint fails before anything is built or written
    resumed_step = logged_step(read_checkpoint(ckpt_path)) if ckpt_path else None
    refuse_to_overwrite(ckpt_dir, resuming=bool(ckpt_path))
    # config.yaml sits in the checkpoint folder before fitting starts; runs that would really
    # overwrite checkpoints were refused just above, so Lightning's warning is noise
    warnings.filterwarnings("ignore", message=CHECKPOINT_DIR_WARNING)
    warnings.filterwarnings("ignore", message=SYNC_DIST_WARNING)
    warnings.filterwarnings("ignore", message=MID_EPOCH_WARNING)
    warnings.filterwarnings("ignore", message=STEP_CHECKPOINT_WARNING)
    datamodule = build_datamodule(cfg, cfg.data, cfg.mask, train=True)
    model = build_model(cfg)
    check_image_size(model, cfg.data.image_size)
    # after the checks above: a refused setting is one line, not the end of a config tree
    if cfg.print_config:
        print_config_tree(cfg, output_dir / "config_tree.log")
    loggers = instantiate_list(cfg.get("logger"))
    resume_loggers(loggers, resumed_step)
    callbacks = instantiate_list(cfg.get("callbacks"))
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False
    )
    config_path = (ckpt_dir or output_dir) / "config.yaml"
    if trainer.is_global_zero:
        config_path = save_run_config(cfg, config_path, resuming=bool(ckpt_path))
    with loggers_closed_at_exit(loggers):
        for logger in loggers:
            logger.log_hyperparams(model.run_config)
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        if cfg.test:
            best = trainer.checkpoint_callback.best_model_path if ckpt_dir else None
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
        if cfg.get("evaluate") and trainer.is_global_zero:
            evaluate_best_checkpoint(cfg.evaluate, trainer, output_dir / "evaluation")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if trainer.is_global_zero:
        report_artifacts(trainer, output_dir, config_path)
    return metrics


def evaluate_best_checkpoint(settings: DictConfig, trainer: pl.Trainer, folder: Path) -> None:
    """Evaluate the run's best checkpoint (last when none is ranked) beside `settings.methods`."""
    from inpaintlab.evaluation.evaluate import run_evaluation  # it builds data with this module

    checkpointing = trainer.checkpoint_callback
    if checkpointing is None:
        raise ConfigError("evaluate: needs a checkpoint: keep callbacks.model_checkpoint on")
    best = checkpointing.best_model_path or checkpointing.last_model_path
    if not best:
        raise ConfigError(
            "evaluate: training stopped before it wrote a checkpoint (no validation ran): "
            "train past trainer.check_val_every_n_epoch epochs, or drop evaluation with ~evaluate"
        )
    run_evaluation(settings, folder, checkpoints=[best])


def report_artifacts(trainer: pl.Trainer, output_dir: Path, config_path: Path) -> None:
    """Print where the run wrote its checkpoints, config, metrics and sample grids."""
    rows = {"config": config_path}
    checkpointing = trainer.checkpoint_callback
    if checkpointing is not None:
        # read from disk: under ddp_spawn the main process's callback never saw the last save
        last = Path(checkpointing.dirpath) / f"{checkpointing.CHECKPOINT_NAME_LAST}.ckpt"
        rows["last checkpoint"] = last if last.is_file() else ""
        rows["best checkpoint (val PSNR)"] = checkpointing.best_model_path
    for logger in trainer.loggers:
        if isinstance(logger, pl.loggers.CSVLogger):
            rows["CSV metrics"] = Path(logger.log_dir) / "metrics.csv"
    samples = sorted((output_dir / "samples").glob("*.png"))
    if samples:
        rows["latest sample grid"] = samples[-1]
    console = Console(soft_wrap=True)
    console.print(f"[bold]Run folder[/bold] {output_dir}")
    for name, path in rows.items():
        if path:
            console.print(f"  {name}: {path}")
