"""CSV, TensorBoard and wandb (offline) logging of short real runs, single runs and multiruns."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import wandb
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from inpaintlab.models.context_encoder import ContextEncoderModule
from inpaintlab.training.task import train
from tests.conftest import run_script
from tests.wandb_records import (
    exit_records,
    history,
    of_type,
    offline_run,
    synced_config,
    wandb_records,
)

SHORT_RUN = (
    "debug=limit",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "model.generator.bottleneck_type=channel_fc",
    "data.image_size=64",
    "model.generator.base_channels=16",
    "model.generator.bottleneck=64",
    "model.discriminator.base_channels=16",
)
MODEL_TARGET = "inpaintlab.models.context_encoder.ContextEncoderModule"
TRAIN_LOSSES = ("train/g_loss_epoch", "train/d_loss_epoch", "train/reconstruction_epoch")


def assert_samples_beside_validation_scores(rows: list[dict], run: Path) -> None:
    """The sample grid PNG exists and is logged at the step of the validation PSNR."""
    samples = [row for row in rows if "val/samples" in row]
    scores = [row for row in rows if "val/psnr/all" in row]
    assert samples and scores
    assert samples[-1]["trainer/global_step"] == scores[-1]["trainer/global_step"]
    (png,) = samples[-1]["val/samples"]["filenames"]
    assert png.startswith("media/images/") and (run / "files" / png).is_file()


def test_wandb_offline_run_holds_config_metrics_and_samples(offline_wandb, compose_train, tmp_path):
    train(compose_train("logger=wandb", *SHORT_RUN))
    assert wandb.run is None
    run = offline_run(tmp_path)
    records = wandb_records(run)
    config = synced_config(records)
    assert config["model"]["_target_"] == MODEL_TARGET
    assert config["mask"]["_target_"].endswith("CenterBoxMask")
    assert config["trainer"]["limit_train_batches"] == 2
    rows = history(records)
    assert any(0 < row.get("val/psnr/all", 0) < 100 for row in rows)
    assert all(any(key in row for row in rows) for key in TRAIN_LOSSES)
    assert_samples_beside_validation_scores(rows, run)
    (grid,) = (run / "files" / "media" / "images").rglob("*.png")
    assert Image.open(grid).size == Image.open(next((tmp_path / "samples").glob("*.png"))).size
    (finished,) = of_type(records, "exit")
    assert finished.exit_code == 0


def test_tensorboard_events_hold_samples_and_psnr(compose_train, tmp_path):
    train(compose_train("logger=tensorboard", *SHORT_RUN))
    (events,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    (image,) = accumulator.Images("val/samples")
    (psnr,) = accumulator.Scalars("val/psnr/all")
    assert image.step == psnr.step
    assert 0 < psnr.value < 100
    logged = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB"))
    (saved,) = (tmp_path / "samples").glob("*.png")
    expected = np.asarray(Image.open(saved).convert("RGB")).astype(int)
    assert np.abs(logged.astype(int) - expected).max() <= 1  # TensorBoard truncates, PNG rounds


def test_csv_metrics_hold_validation_psnr_and_train_losses(compose_train, tmp_path):
    metrics = train(compose_train("logger=csv", *SHORT_RUN))
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").read_text().splitlines()))
    psnr = [float(row["val/psnr/all"]) for row in rows if row["val/psnr/all"]]
    assert psnr == [pytest.approx(metrics["val/psnr/all"])]
    for key in TRAIN_LOSSES:
        assert [np.isfinite(float(row[key])) for row in rows if row[key]] == [True]


def test_many_loggers_together(offline_wandb, compose_train, tmp_path):
    train(compose_train("logger=many", *SHORT_RUN))
    assert wandb.run is None
    assert "val/psnr/all" in (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0]
    accumulator = EventAccumulator(str(tmp_path / "tensorboard"))
    accumulator.Reload()
    assert {"val/psnr/all", "train/g_loss_epoch"} <= set(accumulator.Tags()["scalars"])
    assert accumulator.Tags()["images"] == ["val/samples"]
    run = offline_run(tmp_path)
    assert_samples_beside_validation_scores(history(wandb_records(run)), run)


def test_wandb_run_is_closed_as_failed_when_training_fails(
    offline_wandb,
    compose_train,
    tmp_path,
    monkeypatch,
):
    def fail(self, batch, batch_idx):
        assert wandb.run is not None  # the failure comes after the run was opened
        raise RuntimeError("injected failure")

    monkeypatch.setattr(ContextEncoderModule, "gan_step", fail)
    with pytest.raises(RuntimeError, match="injected failure"):
        train(compose_train("logger=wandb", *SHORT_RUN))
    assert wandb.run is None
    (finished,) = exit_records(offline_run(tmp_path))
    assert finished.exit_code != 0


def test_multirun_jobs_each_get_their_own_wandb_run_in_the_sweeps_group(offline_wandb, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "-m",
        "logger=wandb",
        "logger.wandb.offline=true",  # run_script sets WANDB_MODE=disabled; offline overrides it
        *SHORT_RUN,
        "trainer.limit_train_batches=1",
        "mask=center,freeform",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [offline_run(sweep_dir / job) for job in ("0", "1")]
    assert runs[0].name.split("-")[-1] != runs[1].name.split("-")[-1]
    for job, run, mask in zip("01", runs, ("CenterBoxMask", "FreeFormMask"), strict=True):
        records = wandb_records(run)
        assert synced_config(records)["mask"]["_target_"].endswith(mask)
        (info,) = of_type(records, "run")  # grouped under the sweep, named by job number
        assert (info.run_group, info.display_name) == ("debug-sweep", f"debug-{job}")
        assert any("val/psnr/all" in row for row in history(records))
        assert [r.exit_code for r in of_type(records, "exit")] == [0]
    assert not list((tmp_path / "wandb").glob("*run-*")), "a run escaped its job folder"
