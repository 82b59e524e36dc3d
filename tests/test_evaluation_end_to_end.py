"""eval.py end to end: a tiny checkpoint and the three baselines on synthetic photos and masks."""

import csv
import json

import pytest
from PIL import Image

from inpaintlab.errors import ConfigError
from inpaintlab.evaluation.evaluate import evaluate
from inpaintlab.evaluation.figures import HEADER, PAD, PLOT_DPI, PLOT_SIZE, tile_scale
from inpaintlab.runs.folders import RESULT_FILES
from inpaintlab.training.task import train
from tests.conftest import compose_config, run_script
from tests.eval_helpers import write_mask_files, write_photos

SIZE = 32
BASELINES = ["telea", "navier_stokes", "biharmonic"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-step PConv run on synthetic photos; returns (folder, photos, masks)."""
    root = tmp_path_factory.mktemp("eval_e2e")
    photos = write_photos(root / "photos", {"train": 4, "val": 2, "test": 6})
    masks = write_mask_files(root / "masks", SIZE)
    overrides = [
        "debug=limit",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
        "data=folder",
        f"data.root={photos}",
        f"data.image_size={SIZE}",
        "model=pconv",
        "model.generator.depth=3",
        "model.generator.base_channels=8",
        "loss.vgg_weights=none",
        "mask=freeform",
    ]
    train(compose_config("train", overrides, root / "run"))
    return root, photos, masks


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No LPIPS/FID weights anywhere and no downloads: both metrics are skipped."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("INPAINTLAB_OFFLINE", "1")


def test_checkpoints_and_baselines_in_one_table(trained, tmp_path, offline):
    root, _, masks = trained
    checkpoints = root / "run" / "checkpoints"
    out = tmp_path / "eval"
    result = run_script(
        "eval.py",
        f"ckpt_path={checkpoints / 'last.ckpt'}",
        f"methods=[ckpt:{checkpoints / 'best.ckpt'},{','.join(BASELINES)}]",
        "mask=folder_fixed",
        f"mask.root={masks}",
        "num_samples=3",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and "LPIPS" in warnings[0] and "FID" in warnings[1]
    assert "run/last" in result.stdout and "PSNR (dB) by hole ratio" in result.stdout
    for name in (*RESULT_FILES, "config.yaml"):
        assert (out / name).is_file(), name

    methods = ["run/last", "run/best", *BASELINES]
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert list(rows[0]) == [
        "method",
        "bin",
        "count",
        "psnr",
        "ssim",
        "hole_l1x100",
        "ms_per_image",
    ]
    groups = [r["bin"] for r in rows if r["method"] == "telea"]
    assert groups[0] == "all" and len(groups) >= 2
    assert [r["method"] for r in rows] == [m for m in methods for _ in groups]
    assert all(int(r["count"]) == 6 for r in rows if r["bin"] == "all")
    saved = json.loads((out / "metrics.json").read_text())
    assert list(saved["methods"]) == methods
    assert saved["checkpoints"]["run/best"] == str((checkpoints / "best.ckpt").resolve())
    assert saved["mask"]["flip"] is False and saved["data"]["image_size"] == SIZE

    tile = SIZE * tile_scale(SIZE)
    with Image.open(out / "samples.png") as sheet:
        columns = len(methods) + 2
        assert sheet.size == (columns * (tile + PAD) + PAD, HEADER + 3 * (tile + PAD) + PAD)
    with Image.open(out / "per_bin.png") as plot:
        assert plot.size == (PLOT_SIZE[0] * PLOT_DPI, PLOT_SIZE[1] * PLOT_DPI)

    before = (out / "metrics.csv").read_bytes()
    again = run_script(
        "eval.py",
        f"ckpt_path={checkpoints / 'last.ckpt'}",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    errors = [line for line in again.stderr.splitlines() if line.startswith("error:")]
    assert again.returncode == 2 and len(errors) == 1
    assert str(out) in errors[0] and "already holds evaluation results" in errors[0]
    assert (out / "metrics.csv").read_bytes() == before


def test_baselines_alone_need_data_and_masks(tmp_path):
    cfg = compose_config("eval", [f"methods=[{BASELINES[0]}]"], tmp_path)
    with pytest.raises(ConfigError, match="no data or mask config and no checkpoint"):
        evaluate(cfg)


def test_baselines_alone_on_a_photo_folder(trained, tmp_path, offline):
    _, photos, masks = trained
    overrides = [
        f"methods=[{','.join(BASELINES)}]",
        "data=folder",
        f"data.root={photos}",
        f"data.image_size={SIZE}",
        "data.num_workers=0",
        "mask=folder_fixed",
        f"mask.root={masks}",
        "split=val",
        "max_images=1",
        "metrics.lpips=false",
        "metrics.fid=false",
    ]
    results = evaluate(compose_config("eval", overrides, tmp_path))
    assert list(results["methods"]) == BASELINES
    assert results["methods"]["telea"]["bins"]["all"]["count"] == 1


def test_a_required_metric_without_weights_stops_the_run(trained, tmp_path, offline):
    _, photos, masks = trained
    overrides = [
        "methods=[telea]",
        "data=folder",
        f"data.root={photos}",
        "mask=folder_fixed",
        f"mask.root={masks}",
        "metrics.fid=true",
    ]
    with pytest.raises(ConfigError, match="FID cannot be computed"):
        evaluate(compose_config("eval", overrides, tmp_path))


def test_methods_override_syntax_parses_paths_with_colons_and_slashes(tmp_path):
    cfg = compose_config(
        "eval", ["methods=[ckpt:/runs/a-1/2024-01-01_12-00-00/last.ckpt, telea]"], tmp_path
    )
    assert list(cfg.methods) == ["ckpt:/runs/a-1/2024-01-01_12-00-00/last.ckpt", "telea"]
