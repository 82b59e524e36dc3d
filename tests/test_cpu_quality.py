"""experiment=cpu_quality: composes for every model, reads train+val for training, runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import smooth_images
from torchvision.utils import save_image

from inpaintlab.training import resolve_auto_setting, train

MODELS = ("context_encoder", "pconv", "edgeconnect")


def write_bsds_like(root: Path, counts: dict[str, int]) -> Path:
    """A folder with train/, val/ and test/ sub-folders of small smooth images."""
    images = iter(smooth_images(sum(counts.values())))
    for split, count in counts.items():
        (root / split).mkdir(parents=True)
        for i in range(count):
            save_image(next(images), root / split / f"{split}{i}.png")
    return root


@pytest.mark.parametrize("model", MODELS)
def test_cpu_quality_composes_for_every_model(compose_train, tmp_path, model):
    cfg = compose_train("experiment=cpu_quality", f"model={model}", f"data.root={tmp_path}")
    resolve_auto_setting(cfg)
    assert cfg.trainer.max_time == "00:00:30:00" and cfg.trainer.max_epochs == -1
    assert dict(cfg.data.source.folders) == {"train": ["train", "val"], "test": ["test"]}
    assert cfg.mask.weights.boxes == 0 and cfg.mask.weights.freeform > 0
    # each model gets its settings from conf/experiment_model/cpu_quality/<model>.yaml
    if model == "edgeconnect":
        assert cfg.model.stage == "joint"
    if model == "context_encoder":
        assert cfg.model.setting == "random_region"


def test_experiment_model_settings_apply_only_with_their_experiment(compose_train):
    assert compose_train("model=edgeconnect").model.stage == "edge"


def test_cpu_quality_trains_on_train_and_val_folders(compose_train, tmp_path):
    root = write_bsds_like(tmp_path / "bsds", {"train": 12, "val": 8, "test": 3})
    cfg = compose_train(
        "experiment=cpu_quality",
        "model=context_encoder",
        f"data.root={root}",
        "data.image_size=64",
        "debug=fdr",
    )
    metrics = train(cfg)
    assert metrics["val/count/all"] == 1  # 5 % of the 20 train + val images, at least one
    assert "val/psnr/all" in metrics
