"""compare_methods in-process: the same images and masks for every method, scores, reports."""

import csv
import json

import pytest
import torch
from PIL import Image

from inpaintlab.errors import ConfigError
from inpaintlab.evaluation.compare import compare_methods
from inpaintlab.evaluation.figures import HEADER, PAD, PLOT_DPI, PLOT_SIZE, tile_scale
from inpaintlab.evaluation.methods import check_specs, method_labels
from inpaintlab.metrics.bins import BIN_NAMES, bin_index
from inpaintlab.metrics.perceptual import FIDFeatures
from inpaintlab.runs.folders import RESULT_FILES
from tests.eval_helpers import (
    MASK_RATIOS,
    PooledColours,
    folder_datamodule,
    random_lpips,
    write_mask_files,
    write_photos,
)

SIZE = 32
TEST_IMAGES = 10


@pytest.fixture
def datamodule(tmp_path):
    images = write_photos(tmp_path / "photos", {"train": 1, "val": 3, "test": TEST_IMAGES})
    return folder_datamodule(images, write_mask_files(tmp_path / "masks", SIZE), SIZE)


def original(image, mask):
    """A method that returns the ground truth: every score at its best."""
    return image.clone()


def grey_fill(image, mask):
    return torch.where(mask.bool(), torch.full_like(image, 0.5), image)


def recorded_calls(calls):
    def method(image, mask):
        calls.append((image.clone(), mask.clone()))
        return grey_fill(image, mask)

    return method


def test_every_method_sees_the_same_images_and_masks(datamodule):
    first, second = [], []
    compare_methods({"a": recorded_calls(first), "b": recorded_calls(second)}, datamodule, "test")
    assert len(first) == len(second) == 3  # 10 images in batches of 4
    for (image_a, mask_a), (image_b, mask_b) in zip(first, second, strict=True):
        assert torch.equal(image_a, image_b) and torch.equal(mask_a, mask_b)
    again = []
    compare_methods({"a": recorded_calls(again)}, datamodule, "test")
    assert all(torch.equal(m1, m2) for (_, m1), (_, m2) in zip(first, again, strict=True))


def test_the_original_image_scores_best_and_bins_follow_the_measured_ratio(datamodule):
    comparison = compare_methods(
        {"original": original, "grey": grey_fill},
        datamodule,
        "test",
        lpips=random_lpips(),
        fid=FIDFeatures(PooledColours()),
    )
    assert comparison.metrics == ("psnr", "ssim", "hole_l1x100", "lpips", "fid")
    best, grey = comparison.results["original"], comparison.results["grey"]
    assert best["all"]["count"] == TEST_IMAGES
    assert best["all"]["psnr"] == pytest.approx(100.0)
    assert best["all"]["ssim"] == pytest.approx(1.0)
    assert best["all"]["hole_l1x100"] == 0.0 and best["all"]["lpips"] == 0.0
    assert best["all"]["fid"] == pytest.approx(0.0, abs=1e-6)
    assert grey["all"]["psnr"] < 40 and grey["all"]["lpips"] > 0 and grey["all"]["fid"] > 0
    expected_bins = {BIN_NAMES[bin_index(torch.tensor(r)).item()] for r in MASK_RATIOS}
    assert set(comparison.groups) - {"all"} <= expected_bins
    assert sum(best[g]["count"] for g in comparison.groups if g != "all") == TEST_IMAGES
    for group, row in best.items():
        assert ("fid" in row) == (row["count"] >= 2), group


def test_max_images_caps_the_split_and_val_is_its_own_split(datamodule):
    capped = compare_methods({"grey": grey_fill}, datamodule, "test", max_images=5)
    assert capped.results["grey"]["all"]["count"] == 5
    val = compare_methods({"grey": grey_fill}, datamodule, "val")
    assert val.results["grey"]["all"]["count"] == 3


def test_specs_build_baselines_and_unknown_specs_are_refused(datamodule):
    comparison = compare_methods(["telea", "biharmonic"], datamodule, "test", max_images=4)
    assert list(comparison.results) == ["telea", "biharmonic"]
    assert all(ms > 0 for ms in comparison.ms_per_image.values())
    with pytest.raises(ConfigError, match="unknown method 'paint'"):
        compare_methods(["paint"], datamodule, "test")
    with pytest.raises(ConfigError, match="split='train'"):
        compare_methods(["telea"], datamodule, "train")


def test_report_files_have_a_row_per_method_and_bin(datamodule, tmp_path):
    out = tmp_path / "report"
    comparison = compare_methods(
        {"original": original, "grey": grey_fill},
        datamodule,
        "test",
        output_dir=out,
        fid=FIDFeatures(PooledColours()),
        num_samples=3,
    )
    for name in RESULT_FILES:
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    columns = ["method", "bin", "count", "psnr", "ssim", "hole_l1x100", "fid", "ms_per_image"]
    assert list(rows[0]) == columns
    groups = comparison.groups
    assert [(r["method"], r["bin"]) for r in rows] == [
        (m, g) for m in ("original", "grey") for g in groups
    ]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["split"] == "test" and saved["metrics"] == list(comparison.metrics)
    assert saved["methods"]["grey"]["bins"]["all"]["psnr"] == pytest.approx(
        float(rows[len(groups)]["psnr"])
    )
    markdown = (out / "metrics.md").read_text()
    assert "| original | 10 | 100.00 | 1.0000 | 0.000 |" in markdown
    assert "## PSNR (dB) by hole ratio (%)" in markdown and "## SSIM by hole ratio" in markdown

    tile = SIZE * tile_scale(SIZE)
    columns_shown = 4  # masked input, two methods, original
    with Image.open(out / "samples.png") as sheet:
        assert sheet.size == (
            columns_shown * (tile + PAD) + PAD,
            HEADER + 3 * (tile + PAD) + PAD,
        )
    with Image.open(out / "per_bin.png") as plot:
        assert plot.size == (PLOT_SIZE[0] * PLOT_DPI, PLOT_SIZE[1] * PLOT_DPI)


def test_earlier_results_are_never_overwritten(datamodule, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "metrics.csv").write_text("precious")
    with pytest.raises(ConfigError, match="already holds evaluation results"):
        compare_methods({"grey": grey_fill}, datamodule, "test", output_dir=out)
    assert (out / "metrics.csv").read_text() == "precious"


def test_grey_images_are_evaluated(tmp_path):
    images = write_photos(tmp_path / "photos", {"train": 1, "val": 1, "test": 4})
    masks = write_mask_files(tmp_path / "masks", SIZE)
    datamodule = folder_datamodule(images, masks, SIZE, channels=1)
    comparison = compare_methods(
        ["telea", "navier_stokes", "biharmonic"],
        datamodule,
        "test",
        output_dir=tmp_path / "out",
        lpips=random_lpips(),
        fid=FIDFeatures(PooledColours()),
    )
    assert all(0 < r["all"]["psnr"] < 100 for r in comparison.results.values())
    assert (tmp_path / "out" / "samples.png").is_file()


def test_method_labels_are_short_and_unique():
    specs = [
        "ckpt:/runs/a/checkpoints/last.ckpt",
        "ckpt:/runs/b/checkpoints/last.ckpt",
        "ckpt:/runs/b/checkpoints/best.ckpt",
        "ckpt:/x/same/model.ckpt",
        "ckpt:/y/same/model.ckpt",
        "telea",
    ]
    assert method_labels(specs) == [
        "a/last",
        "b/last",
        "b/best",
        "x/same/model",
        "y/same/model",
        "telea",
    ]


def test_method_lists_are_checked():
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        check_specs([])
    with pytest.raises(ConfigError, match="telea more than once"):
        check_specs(["telea", "telea"])
