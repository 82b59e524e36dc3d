"""Multiruns through Hydra launchers: DDP jobs that stay one job each, submitit, SLURM settings."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from inpaintlab.training.sweeps import DDP_JOB_ENV, ddp_process_argv
from tests.conftest import compose_config, run_script

# a run of seconds: tiny networks, two training batches, one validation batch
TINY_RUN = (
    "debug=limit",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "+trainer.num_sanity_val_steps=0",
    "data.image_size=64",
    "data.batch_size=2",
    "model.generator.base_channels=8",
    "model.generator.bottleneck=32",
    "model.discriminator.base_channels=8",
    "print_config=false",
)
# 2 CPU processes through Lightning's script launcher (not spawn): it starts rank 1 by running
# train.py again, with the command line of the whole sweep
DDP_CPU = ("trainer=ddp_cpu", "trainer.strategy=ddp_find_unused_parameters_true")
MASK_SWEEP = "mask=center,boxes"
# job number -> (its override, the mask class it trains with)
JOB_MASKS = {"0": ("mask=center", "CenterBoxMask"), "1": ("mask=boxes", "RandomBoxMask")}


def only_sweep_folder(outputs: Path) -> Path:
    """The one multirun folder under `outputs` (<task>/multiruns/<time>); nothing else exists."""
    assert [p.relative_to(outputs).as_posix() for p in outputs.glob("*/*")] == ["debug/multiruns"]
    (sweep,) = outputs.glob("debug/multiruns/*")
    return sweep


def job_folders(sweep: Path) -> list[Path]:
    """The numbered job folders of a sweep folder."""
    return sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))


def validation_rows(job: Path) -> list[dict[str, str]]:
    """The rows of the job's CSV metrics that hold a validation PSNR (one per validation)."""
    rows = csv.DictReader((job / "csv" / "metrics.csv").read_text().splitlines())
    return [row for row in rows if row.get("val/psnr/all")]


def assert_job_trained_once(job: Path) -> None:
    """The job trained its own mask, validated once and saved its checkpoints."""
    override, mask_class = JOB_MASKS[job.name]
    assert override in OmegaConf.load(job / ".hydra" / "overrides.yaml")
    saved = OmegaConf.load(job / "checkpoints" / "config.yaml")
    assert saved.mask._target_.endswith(mask_class)
    assert len(validation_rows(job)) == 1
    assert (job / "checkpoints" / "last.ckpt").is_file()


def test_ddp_multirun_runs_each_job_once_with_both_ranks_in_its_folder(tmp_path):
    result = run_script(
        "train.py", "-m", *TINY_RUN, *DDP_CPU, MASK_SWEEP, cwd=tmp_path, timeout=480
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = only_sweep_folder(tmp_path / "outputs")
    jobs = job_folders(sweep)
    assert [job.name for job in jobs] == ["0", "1"]
    for job in jobs:
        assert_job_trained_once(job)
        # rank 1 ran this job, here, and wrote no Hydra record of its own
        assert sorted(p.name for p in job.glob("*.log")) == ["train.log", "train_ddp_process_1.log"]
    assert (result.stdout + result.stderr).count("Starting with 2 processes") == 2


def test_submitit_local_multirun_runs_each_job_in_its_own_process(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "-m",
        "hydra/launcher=local",
        *TINY_RUN,
        MASK_SWEEP,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=480,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_folders(sweep)
    assert [job.name for job in jobs] == ["0", "1"]
    results = sorted(sweep.glob(".submitit/*/*_result.pkl"))
    assert len(results) == 2
    returned = {}
    for path in results:
        status, job_return = pickle.loads(path.read_bytes())
        assert status == "success"
        returned[Path(job_return.hydra_cfg.hydra.runtime.output_dir).name] = job_return.return_value
    for job in jobs:
        assert_job_trained_once(job)
        (row,) = validation_rows(job)
        assert returned[job.name] == pytest.approx(float(row["val/psnr/all"]))


@pytest.mark.slow
def test_local_launcher_runs_a_ddp_job_as_one_task_per_device(tmp_path):
    sweep = tmp_path / "sweep"
    overrides = (
        "hydra/launcher=local",
        *TINY_RUN,
        *DDP_CPU,
        "mask=center",
        f"hydra.sweep.dir={sweep}",
    )
    result = run_script("train.py", "-m", *overrides, cwd=tmp_path, timeout=480)
    assert result.returncode == 0, result.stderr[-3000:]
    (job,) = job_folders(sweep)
    assert_job_trained_once(job)
    (rank1_log,) = sweep.glob(".submitit/*/*_1_log.err")  # the second task, started by submitit
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in rank1_log.read_text()


def test_slurm_launcher_takes_nodes_and_gpus_from_the_trainer(tmp_path):
    overrides = ["hydra/launcher=slurm", "trainer=ddp", "trainer.num_nodes=2", "trainer.devices=4"]
    cfg = compose_config("train", [*overrides, "hydra.launcher.partition=gpu"], tmp_path)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.gpus_per_node, launcher.tasks_per_node) == (2, 4, 4)
    assert launcher.partition == "gpu" and launcher.timeout_min > 60


def test_local_launcher_starts_one_task_per_device(tmp_path):
    cfg = compose_config("train", ["hydra/launcher=local", "trainer.devices=2"], tmp_path)
    assert cfg.hydra.launcher._target_.endswith("LocalLauncher")
    assert cfg.hydra.launcher.tasks_per_node == 2


def test_a_ddp_process_of_a_multirun_job_runs_that_job(monkeypatch):
    sweep_argv = ["/repo/train.py", "-m", "mask=center,boxes"]
    job = ["--config-name=train", "mask=boxes", "hydra.mode=RUN", 'hydra.run.dir="/out/1"']
    monkeypatch.setenv(DDP_JOB_ENV, json.dumps(job))
    monkeypatch.setenv("LOCAL_RANK", "1")
    expected = ["/repo/train.py", *job, "hydra.job.name=train_ddp_process_1"]
    assert ddp_process_argv(sweep_argv) == expected
    monkeypatch.setenv("LOCAL_RANK", "0")  # the main process keeps its sweep
    assert ddp_process_argv(sweep_argv) == sweep_argv


def test_ddp_processes_of_single_runs_keep_lightnings_command_line(monkeypatch):
    argv = ["/repo/train.py", "mask=boxes", "hydra.job.name=train_ddp_process_1"]
    monkeypatch.delenv(DDP_JOB_ENV, raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert ddp_process_argv(argv) == argv
