"""A run resumed in its folder (ckpt_path=last) continues its metrics.csv, its TensorBoard
events and its wandb run."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import wandb
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from inpaintlab.training.loggers import (
    RUN_ID_FILE,
    ResumableCSVLogger,
    ResumableWandbLogger,
    read_run_id,
)
from inpaintlab.training.task import train
from tests.conftest import compose_config
from tests.test_ddp import one_thread, run_overrides, write_image_folder  # noqa: F401 (a fixture)
from tests.wandb_records import (
    history,
    of_type,
    wandb_records,
)

BATCHES = 2  # training batches per epoch: steps 0-1 in epoch 0, steps 2-3 in epoch 1
KILLED = "-1.0"  # the values of rows a killed run logged after its last checkpoint


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("images"), train=4, val=2)


def fit(folder: Path, images: Path, epochs: int, *extra: str) -> None:
    """Train the tiny Context Encoder for `epochs` epochs of BATCHES batches under `folder`."""
    overrides = run_overrides(
        "context_encoder",
        images,
        f"trainer.max_epochs={epochs}",
        f"trainer.limit_train_batches={BATCHES}",
        "trainer.limit_val_batches=1",
        *extra,
    )
    train(compose_config("train", overrides, folder))


@pytest.fixture(scope="module")
def straight_csv(tmp_path_factory, images) -> str:
    """metrics.csv of an uninterrupted two-epoch run."""
    folder = tmp_path_factory.mktemp("straight")
    fit(folder, images, 2, "logger=csv")
    return (folder / "csv" / "metrics.csv").read_text()


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def append_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """Append rows under the file's own header, as Lightning's writer does."""
    with open(path, newline="") as file:
        header = next(csv.reader(file))
    with open(path, "a", newline="") as file:
        csv.DictWriter(file, fieldnames=header).writerows(rows)


def logged(rows: list[dict[str, str]]) -> Counter:
    """How often each (step, metric) holds a value (Lightning adds `epoch` to every row)."""
    return Counter(
        (int(row["step"]), key)
        for row in rows
        for key, value in row.items()
        if value and key not in ("step", "epoch")
    )


def test_a_resumed_run_continues_metrics_csv(tmp_path, images, straight_csv):
    fit(tmp_path, images, 1, "logger=csv")
    metrics = tmp_path / "csv" / "metrics.csv"
    first = read_rows(metrics)
    assert {row["step"] for row in first} == {"0", "1"}
    fit(tmp_path, images, 2, "logger=csv", "ckpt_path=last")
    assert [p.name for p in metrics.parent.glob("*.csv")] == ["metrics.csv"]
    rows = read_rows(metrics)
    assert rows[: len(first)] == first and len(rows) > len(first)
    assert {row["step"] for row in rows} == {"0", "1", "2", "3"}
    assert max(logged(rows).values()) == 1
    assert metrics.read_text() == straight_csv  # resume is exact, so is the file


def test_rows_a_killed_run_logged_after_its_checkpoint_are_replaced(tmp_path, images, straight_csv):
    fit(tmp_path, images, 1, "logger=csv")
    metrics = tmp_path / "csv" / "metrics.csv"
    # the killed run went on past last.ckpt (saved after step 1) before it was stopped
    append_rows(
        metrics,
        [
            {"epoch": "1", "step": "2", "train/g_loss_step": KILLED},
            {"epoch": "1", "step": "3", "train/g_loss_step": KILLED, "val/psnr/all": KILLED},
        ],
    )
    with open(metrics, "a") as file:
        file.write("1,")  # and it was killed while writing a row
    fit(tmp_path, images, 2, "logger=csv", "ckpt_path=last")
    rows = read_rows(metrics)
    assert all(KILLED not in row.values() for row in rows)
    assert max(logged(rows).values()) == 1
    assert metrics.read_text() == straight_csv


def scalar_steps(folder: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of every `tag` event TensorBoard shows for `folder` (after purging)."""
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_tensorboard_drops_what_a_killed_run_logged_after_its_checkpoint(tmp_path, images):
    fit(tmp_path, images, 1, "logger=tensorboard")
    events = tmp_path / "tensorboard"
    # the killed run went on past last.ckpt (saved after step 1) before it was stopped
    with SummaryWriter(events) as killed:
        for step in (2, 3):
            killed.add_scalar("train/g_loss_step", float(KILLED), step)
    fit(tmp_path, images, 2, "logger=tensorboard", "ckpt_path=last")
    logged = scalar_steps(events, "train/g_loss_step")
    assert [step for step, _ in logged] == [0, 1, 2, 3]
    assert all(value != float(KILLED) for _, value in logged)


def log_steps(folder: Path, steps: range, key: str) -> None:
    """One launch of a CSV logger in `folder` logging `key` = step at `steps`."""
    logger = ResumableCSVLogger(folder, name="csv", version="")
    for step in steps:
        logger.log_metrics({key: float(step)}, step=step)
    logger.finalize("success")


def test_earlier_rows_keep_their_columns_beside_the_new_ones(tmp_path):
    log_steps(tmp_path, range(5), "old")
    log_steps(tmp_path, range(3, 6), "new")  # resumed from step 3: old rows 3 and 4 go
    rows = read_rows(tmp_path / "csv" / "metrics.csv")
    assert list(rows[0]) == ["new", "old", "step"]
    expected = [("", f"{s}.0", str(s)) for s in range(3)] + [
        (f"{s}.0", "", str(s)) for s in (3, 4, 5)
    ]
    assert [(row["new"], row["old"], row["step"]) for row in rows] == expected


def test_a_run_restarted_from_step_0_replaces_the_earlier_file(tmp_path):
    log_steps(tmp_path, range(3), "old")
    log_steps(tmp_path, range(2), "new")
    rows = read_rows(tmp_path / "csv" / "metrics.csv")
    assert [(row["step"], row["new"]) for row in rows] == [("0", "0.0"), ("1", "1.0")]
    assert list(rows[0]) == ["new", "step"]


def wandb_runs(folder: Path) -> list[Path]:
    """The offline wandb runs under `folder`, oldest first."""
    return sorted((folder / "wandb").glob("offline-run-*"))


def test_a_resumed_run_continues_its_wandb_run(offline_wandb, tmp_path, images):
    fit(tmp_path, images, 1, "logger=wandb")
    (first,) = wandb_runs(tmp_path)
    fit(tmp_path, images, 2, "logger=wandb", "ckpt_path=last")
    assert wandb.run is None
    runs = wandb_runs(tmp_path)
    assert len(runs) == 2 and runs[0] == first
    records = [wandb_records(run) for run in runs]
    assert [[e.exit_code for e in of_type(part, "exit")] for part in records] == [[0], [0]]
    run_id = (tmp_path / RUN_ID_FILE).read_text().strip()
    assert [info.run_id for part in records for info in of_type(part, "run")] == [run_id] * 2
    steps = [{row["trainer/global_step"] for row in history(part)} for part in records]
    assert steps == [{0, 1}, {2, 3}]


def test_an_explicit_wandb_id_wins_over_the_stored_one(tmp_path):
    assert ResumableWandbLogger(save_dir=tmp_path).version is None  # nothing stored: a new run
    (tmp_path / RUN_ID_FILE).parent.mkdir()
    (tmp_path / RUN_ID_FILE).write_text("stored1\n")
    assert ResumableWandbLogger(save_dir=tmp_path).version == "stored1"
    assert ResumableWandbLogger(save_dir=tmp_path, id="chosen1").version == "chosen1"


@pytest.mark.parametrize("disabled", [False, True])
def test_the_run_id_is_stored_unless_wandb_is_disabled(tmp_path, disabled):
    # a stand-in run: a real one would start wandb's session, whose settings then stay fixed
    run = SimpleNamespace(id="run1234", disabled=disabled)
    assert ResumableWandbLogger(save_dir=tmp_path, experiment=run).experiment is run
    assert read_run_id(tmp_path / RUN_ID_FILE) == (None if disabled else "run1234")
