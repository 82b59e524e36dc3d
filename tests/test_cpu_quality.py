"""experiment=cpu_quality: composes for every model, trains on train+val, evaluates on test."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torchvision.utils import save_image

from inpaintlab.errors import ConfigError
from inpaintlab.training.task import resolve_auto_setting, train
from tests.helpers import smooth_images

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
    days, hours, minutes, seconds = map(int, cfg.trainer.max_time.split(":"))
    # a wall-clock budget inside the hour the learned-versus-classical comparison allows
    assert 0 < ((days * 24 + hours) * 60 + minutes) * 60 + seconds < 60 * 60
    assert cfg.trainer.max_epochs == -1
    assert dict(cfg.data.source.folders) == {"train": ["train", "val"], "test": ["test"]}
    # every member of photo_damage, thin scratches and boxes included
    assert all(weight > 0 for weight in cfg.mask.weights.values())
    assert set(cfg.mask.weights) == set(cfg.mask.generators)
    assert cfg.mask.max_ratio == 0.6
    # the quick start's recipe: every variant corrects a blended fill
    assert cfg.model.prefill == "blended" and cfg.model.residual
    # each model gets its settings from conf/experiment_model/cpu_quality/<model>.yaml
    if model == "edgeconnect":
        assert cfg.model.stage == "joint"
    if model == "context_encoder":
        assert cfg.model.setting == "random_region"


def test_experiment_model_settings_apply_only_with_their_experiment(compose_train):
    assert compose_train("model=edgeconnect").model.stage == "edge"
    assert compose_train("experiment=quickstart", "model=edgeconnect").model.stage == "joint"


@pytest.mark.parametrize("experiment", [None, "context_encoder_center", "pconv_places256"])
def test_the_papers_settings_keep_the_papers_inputs(compose_train, experiment):
    cfg = compose_train(*([f"experiment={experiment}"] if experiment else []))
    assert cfg.model.prefill == "none" and not cfg.model.residual


def ssim_weight(cfg) -> float:
    """The SSIM term's weight in a composed config's generator loss."""
    return cfg.loss.inpaint.ssim if "inpaint" in cfg.loss else cfg.loss.ssim


@pytest.mark.parametrize("model", ["context_encoder", "edgeconnect"])
def test_the_ssim_term_is_the_cpu_presets_and_not_the_papers(compose_train, tmp_path, model):
    assert ssim_weight(compose_train(f"model={model}")) == 0
    cpu = compose_train("experiment=cpu_quality", f"model={model}", f"data.root={tmp_path}")
    assert ssim_weight(cpu) > 0


def write_masks(folder: Path, count: int) -> Path:
    """White-hole mask files with growing holes."""
    folder.mkdir(parents=True)
    for i in range(count):
        mask = torch.zeros(1, 48, 48)
        mask[:, 8 : 16 + 6 * i, 4 : 20 + 4 * i] = 1
        save_image(mask, folder / f"mask{i}.png")
    return folder


def short_cpu_quality_run(compose_train, tmp_path: Path, *overrides: str):
    """experiment=cpu_quality on a tiny BSDS500-like folder at 64 px, evaluated with Telea."""
    root = write_bsds_like(tmp_path / "bsds", {"train": 12, "val": 8, "test": 3})
    return compose_train(
        "experiment=cpu_quality",
        "model=context_encoder",
        f"data.root={root}",
        "data.image_size=64",
        "data.num_workers=0",
        "trainer.precision=32-true",
        "trainer.limit_train_batches=1",
        "callbacks.rich_progress_bar=null",
        "print_config=false",
        f"evaluate.mask.root={write_masks(tmp_path / 'masks', 3)}",
        "evaluate.methods=[telea]",
        "evaluate.metrics.lpips=false",
        "evaluate.metrics.fid=false",
        *overrides,
    )


def test_cpu_quality_trains_on_train_and_val_then_evaluates_on_test(compose_train, tmp_path):
    cfg = short_cpu_quality_run(
        compose_train, tmp_path, "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1"
    )
    metrics = train(cfg)
    # 5 % of the 20 train + val images (at least one), listed eval_repeat = 3 times
    assert metrics["val/count/all"] == 3
    with open(tmp_path / "evaluation" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    overall = {row["method"]: int(row["count"]) for row in rows if row["bin"] == "all"}
    # the 3 test photos, 3 times each, for the best checkpoint (labelled <run>/best) and telea
    assert sorted(overall.values()) == [9, 9] and overall.pop("telea") == 9
    assert next(iter(overall)).endswith("/best")


def test_a_run_stopped_before_its_first_checkpoint_says_so_instead_of_evaluating(
    compose_train, tmp_path
):
    cfg = short_cpu_quality_run(compose_train, tmp_path, "+trainer.max_steps=1")
    with pytest.raises(ConfigError, match="stopped before it wrote a checkpoint"):
        train(cfg)
    assert not (tmp_path / "evaluation").exists()
