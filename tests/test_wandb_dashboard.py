"""What a wandb dashboard shows for a run, read back from the offline run file that
`wandb sync` would upload: every optimiser's losses, metrics per hole-ratio bin, sample panels
at every validation, the resolved config, tags, group and checkpoint artifacts."""

from __future__ import annotations

import wandb

from inpaintlab.metrics.bins import BIN_NAMES
from inpaintlab.training.task import train
from tests.helpers import TINY_OVERRIDES
from tests.wandb_records import (
    history,
    of_type,
    offline_run,
    synced_config,
    wandb_records,
)

# EdgeConnect's joint stage steps four optimisers: edge G and D, inpaint G and D
EDGECONNECT_JOINT = ("model=edgeconnect", *TINY_OVERRIDES["edgeconnect"])
OPTIMISER_LOSSES = ("train/edge_g_loss", "train/edge_d_loss", "train/g_loss", "train/d_loss")
# validation (and so a sample panel) every 2 training batches, twice in the one epoch
RUN = (
    "debug=limit",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "+trainer.val_check_interval=2",
    "trainer.limit_val_batches=1",
    "+trainer.num_sanity_val_steps=0",
    "trainer.log_every_n_steps=1",
    "data.image_size=64",
    "data.batch_size=2",
    "data.val_batch_size=4",
    "mask=freeform",
)
DASHBOARD = (
    "logger=wandb",
    "logger.wandb.group=ablation",
    "logger.wandb.tags=[edgeconnect,tiny]",
    "logger.wandb.log_model=all",
)


def test_dashboard_holds_losses_bins_panels_config_tags_and_checkpoints(
    offline_wandb,
    compose_train,
    tmp_path,
):
    train(compose_train(*DASHBOARD, *EDGECONNECT_JOINT, *RUN))
    assert wandb.run is None
    run_folder = offline_run(tmp_path)
    records = wandb_records(run_folder)
    rows = history(records)
    logged = {key for row in rows for key in row}

    for loss in OPTIMISER_LOSSES:
        assert {f"{loss}_step", f"{loss}_epoch"} <= logged

    scored = [row for row in rows if "val/psnr/all" in row]
    steps = [row["trainer/global_step"] for row in scored]
    assert len(steps) == 2 and steps[0] < steps[1]
    for row in scored:
        bins = {key.removeprefix("val/count/") for key in row if key.startswith("val/count/")}
        assert "all" in bins and bins - {"all"} <= set(BIN_NAMES)
        assert sum(row[f"val/count/{name}"] for name in bins - {"all"}) == row["val/count/all"]
        assert all(f"val/psnr/{name}" in row and f"val/ssim/{name}" in row for name in bins)
        assert "val/edge_precision" in row

    panels = [row for row in rows if "val/samples" in row]
    assert [row["trainer/global_step"] for row in panels] == steps
    for row in panels:
        assert row["val/samples"]["_type"] == "images/separated"
        (png,) = row["val/samples"]["filenames"]
        assert (run_folder / "files" / png).is_file()

    config = synced_config(records)
    assert config["model"]["_target_"].endswith("EdgeConnectModule")
    assert config["model"]["stage"] == "joint"
    assert config["trainer"]["val_check_interval"] == 2
    assert config["logger"]["wandb"]["group"] == "ablation"

    (run,) = of_type(records, "run")
    assert run.run_group == "ablation" and list(run.tags) == ["edgeconnect", "tiny"]

    checkpoints = [a for a in of_type(records, "artifact") if a.type == "model"]
    assert checkpoints and all(
        {entry.path for entry in a.manifest.contents} == {"model.ckpt"} for a in checkpoints
    )
    assert "latest" in checkpoints[-1].aliases
