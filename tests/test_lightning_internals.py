"""The private Lightning attributes exact resume and resumable logging rely on. A Lightning
release that renames one fails here, naming it, instead of resuming silently inexactly
(pyproject.toml also caps pytorch-lightning below the next minor release)."""

import inspect

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from inpaintlab.training.callbacks import LastCheckpoint


def test_the_fit_loop_saves_the_logged_step_under_its_private_name():
    # loggers.logged_step reads it from checkpoints, InpaintingModule.logged_step live
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert hasattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped"), "_batches_that_stepped"
    saved = trainer.fit_loop.state_dict().get("epoch_loop.state_dict", {})
    assert "_batches_that_stepped" in saved, "fit_loop['epoch_loop.state_dict'] key"


def test_the_epoch_loop_counts_processed_batches():
    # the datamodule's position in the epoch (InpaintingDataModule._train_position)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    progress = trainer.fit_loop.epoch_loop.batch_progress
    assert hasattr(progress.current, "processed"), "epoch_loop.batch_progress.current.processed"
    checkpoint_key = "epoch_loop.batch_progress"
    assert checkpoint_key in trainer.fit_loop.state_dict(), checkpoint_key


def test_the_csv_writer_checks_its_folder_in_a_method_we_override():
    # ResumableExperimentWriter keeps metrics.csv by overriding it
    assert hasattr(ExperimentWriter, "_check_log_dir_exists"), "_check_log_dir_exists"
    sources = [inspect.getsource(cls.__init__) for cls in ExperimentWriter.__mro__[:-1]]
    called = any("self._check_log_dir_exists()" in source for source in sources)
    assert called, "ExperimentWriter.__init__ (or its base's) calls _check_log_dir_exists"


def test_the_tensorboard_logger_passes_its_kwargs_to_the_summary_writer(tmp_path):
    # ResumableTensorBoardLogger.resume_from sets purge_step there
    logger = TensorBoardLogger(tmp_path)
    assert isinstance(getattr(logger, "_kwargs", None), dict), "TensorBoardLogger._kwargs"
    source = inspect.getsource(TensorBoardLogger.experiment.fget)
    assert "self._kwargs" in source, "TensorBoardLogger.experiment passes self._kwargs"


def test_model_checkpoint_keeps_its_epoch_trigger_where_last_checkpoint_sets_it(tmp_path):
    # LastCheckpoint saves at epoch ends beside its every-N-steps saves
    checkpoint = LastCheckpoint(dirpath=tmp_path, every_n_train_steps=2)
    assert checkpoint.every_n_epochs == 1, "ModelCheckpoint._every_n_epochs"


def test_the_epoch_loop_says_when_a_batch_is_its_epochs_last():
    # LastCheckpoint and PreemptionCheckpoint wait for the epoch's end after that batch
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    progress = trainer.fit_loop.epoch_loop.batch_progress
    assert hasattr(progress, "is_last_batch"), "epoch_loop.batch_progress.is_last_batch"
