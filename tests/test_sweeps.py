"""Hyper-parameter searches: the optuna sweeper optimises the configured metric; grid configs."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from inpaintlab.training.sweeps import sweep_objective
from tests.conftest import compose_config, run_script
from tests.test_launchers import TINY_RUN, job_folders
from tests.wandb_records import of_type, offline_run, wandb_records

SEARCHED = {"model.optimizer.lr", "loss.adversarial.kind"}


def final_metric(job: Path, name: str) -> float:
    """The last value of `name` in the job's CSV metrics."""
    rows = csv.DictReader((job / "csv" / "metrics.csv").read_text().splitlines())
    return [float(row[name]) for row in rows if row.get(name)][-1]


def test_optuna_trials_maximise_the_configured_metric_and_share_a_wandb_group(
    offline_wandb,
    tmp_path,
):
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        *TINY_RUN,
        "callbacks=none",
        "optimized_metric=val/ssim/all",
        "logger=many",
        "logger.wandb.offline=true",  # run_script sets WANDB_MODE=disabled; this wins
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=480,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.name == "optuna" and set(best.best_params) == SEARCHED
    jobs = job_folders(sweep)
    scores = {job.name: final_metric(job, "val/ssim/all") for job in jobs}
    assert len(scores) == 2
    assert best.best_value == pytest.approx(max(scores.values()))
    best_job = sweep / max(scores, key=scores.get)
    overrides = OmegaConf.load(best_job / ".hydra" / "overrides.yaml")
    assert {f"{key}={value}" for key, value in best.best_params.items()} <= set(overrides)
    runs = [of_type(wandb_records(offline_run(job)), "run")[0] for job in jobs]
    assert {run.run_group for run in runs} == {"debug-sweep"}
    assert sorted(run.display_name for run in runs) == ["debug-0", "debug-1"]


def test_optuna_search_maximises_validation_psnr_by_default(tmp_path):
    cfg = compose_config("train", ["hparams_search=optuna"], tmp_path)
    assert cfg.optimized_metric == "val/psnr/all"
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == "maximize" and set(sweeper.params) == SEARCHED
    assert cfg.hydra.mode.name == "MULTIRUN"


def test_grid_search_config_keeps_the_basic_sweeper(tmp_path):
    cfg = compose_config("train", ["hparams_search=context_encoder_lr"], tmp_path)
    assert cfg.hydra.sweeper._target_.endswith("BasicSweeper")
    assert cfg.hydra.sweeper.params["model.optimizer.lr"] == "1e-4,2e-4,4e-4"
    assert cfg.hydra.mode.name == "MULTIRUN"


def test_sweep_objective_is_the_named_final_metric(caplog):
    metrics = {"val/psnr/all": 21.5, "val/ssim/all": 0.7}
    assert sweep_objective(metrics, "val/ssim/all") == 0.7
    assert sweep_objective(metrics, None) is None
    with caplog.at_level(logging.WARNING, logger="inpaintlab"):
        assert sweep_objective(metrics, "val/psnr/10-20") is None
    assert "val/psnr/10-20" in caplog.text and "val/psnr/all" in caplog.text
