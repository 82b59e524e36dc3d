"""Loggers that continue a run resumed in its own folder (`ckpt_path=last`, same hydra.run.dir).

Lightning's CSV logger deletes the metrics.csv it finds in its folder, its wandb logger starts
a new wandb run at every launch, and TensorBoard shows the steps a killed run logged after its
last checkpoint next to the resumed run's. `ResumableCSVLogger` keeps the earlier rows instead,
`ResumableWandbLogger` reopens the wandb run whose id the first launch stored in the folder, and
`ResumableTensorBoardLogger` purges the earlier events from the step the run resumes at.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

STEP = "step"
RUN_ID_FILE = Path("wandb") / "run_id"


class ResumableExperimentWriter(ExperimentWriter):
    """A CSV writer that continues the metrics.csv already in its folder: its first save keeps
    the earlier rows logged before the first step it writes (a killed run's rows past its last
    checkpoint are logged again by the resumed run), under the union of both parts' columns."""

    def __init__(self, log_dir: str) -> None:
        self.continued = False
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        """Keep the folder's files (Lightning's writer deletes metrics.csv here)."""

    def save(self) -> None:
        if self.metrics and not self.continued:
            self.continue_earlier_rows()
        super().save()

    def continue_earlier_rows(self) -> None:
        """Rewrite metrics.csv with the earlier rows this run does not log again, under every
        column of those rows and of the rows waiting to be saved."""
        self.continued = True
        if not self._fs.isfile(self.metrics_file_path):
            return
        first_step = min(row[STEP] for row in self.metrics)
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            kept = [row for row in reader if logged_before(row, first_step)]
            columns = set(reader.fieldnames or ()) if kept else set()
        self.metrics_keys = sorted(columns.union(*self.metrics))
        temporary = f"{self.metrics_file_path}.{os.getpid()}.tmp"
        with self._fs.open(temporary, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(kept)
        self._fs.mv(temporary, self.metrics_file_path)  # a kill now leaves one whole file


def logged_before(row: dict[str, str], step: int) -> bool:
    """Whether a metrics.csv row was logged before `step` (a row cut short by a kill is not)."""
    try:
        return int(row.get(STEP) or "") < step
    except ValueError:
        return False


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger, continuing the metrics.csv of a run resumed in its folder."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ResumableExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ResumableExperimentWriter(log_dir=self.log_dir)
        return self._experiment


class ResumableWandbLogger(WandbLogger):
    """Lightning's WandbLogger, storing its run id in <save_dir>/wandb/run_id when the run
    starts; a later launch in that folder passes the id to wandb (with resume="allow") and so
    continues the same run. An explicit `id` (or `version`) wins over the stored one."""

    def __init__(
        self,
        save_dir: str | os.PathLike | None = ".",
        id: str | None = None,
        version: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.run_id_file = Path(save_dir or kwargs.get("dir") or ".") / RUN_ID_FILE
        self.run_id_saved = False
        stored = read_run_id(self.run_id_file)
        super().__init__(save_dir=save_dir, id=id or version or stored, **kwargs)

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        run = super().experiment
        if not self.run_id_saved:
            self.run_id_saved = True
            if not getattr(run, "disabled", False):  # WANDB_MODE=disabled: nothing to continue
                self.run_id_file.parent.mkdir(parents=True, exist_ok=True)
                self.run_id_file.write_text(f"{run.id}\n")
        return run


def read_run_id(path: Path) -> str | None:
    """The wandb run id stored in `path`, or None when there is none."""
    return (path.read_text().strip() or None) if path.is_file() else None


class ResumableTensorBoardLogger(TensorBoardLogger):
    """Lightning's TensorBoardLogger; `resume_from(step)` before the first log makes TensorBoard
    drop the folder's earlier events from `step` on (SummaryWriter's purge_step)."""

    def resume_from(self, step: int) -> None:
        """Purge events logged at `step` or later by earlier launches in this folder."""
        self._kwargs["purge_step"] = step  # the SummaryWriter's options, used when it is made


def logged_step(checkpoint: dict[str, Any]) -> int | None:
    """The step loggers were at when `checkpoint` was written (None if it does not say)."""
    state = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
    return state.get("_batches_that_stepped")


def resume_loggers(loggers: list[Any], step: int | None) -> None:
    """Tell the loggers that can purge later events the step a run resumes at."""
    if step is None:
        return
    for logger in loggers:
        if isinstance(logger, ResumableTensorBoardLogger):
            logger.resume_from(step)


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
