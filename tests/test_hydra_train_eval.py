"""Hydra end to end: every config composes, fast runs for each mask kind, sweeps, train -> eval."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf, open_dict
from PIL import Image

from inpaintlab.training.task import train
from tests.conftest import CONF, run_script
from tests.helpers import TINY_NETWORKS

REQUIRED_KEYS = {
    ("data", "folder"): ("data.root",),
    ("mask", "folder"): ("mask.root",),
    ("mask", "folder_fixed"): ("mask.root",),
    ("experiment", "pconv_places256_finetune"): ("model.init_from",),
    ("experiment", "cpu_quality"): ("data.root", "evaluate.mask.root"),
}
# evaluate/ is composed into eval.yaml's top level (test_eval_config_composes)
NOT_COMPOSABLE_ALONE = {"hydra", "local", "paths", "evaluate"}


def config_options() -> list[tuple[str, str]]:
    """(group, option) for every yaml file of every selectable config group."""
    return [
        (group.name, option.stem)
        for group in sorted(CONF.iterdir())
        if group.is_dir() and group.name not in NOT_COMPOSABLE_ALONE
        for option in sorted(group.glob("*.yaml"))
        if option.stem != "base"  # shared keys that the group's other files extend
    ]


def write_images(folder: Path, count: int, size: int = 160, seed: int = 0) -> Path:
    """Smooth random colour photographs-to-be, as PNG files."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8))
        coarse.resize((size, size), Image.BICUBIC).save(folder / f"img{i:02d}.png")
    return folder


def write_masks(folder: Path, count: int, size: int = 200) -> Path:
    """White-hole mask files of growing hole size."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        mask = np.zeros((size, size), dtype=np.uint8)
        mask[20 : 40 + 15 * i, 30 : 60 + 10 * i] = 255
        Image.fromarray(mask).save(folder / f"mask{i}.png")
    return folder


def required_values(tmp_path: Path) -> dict[str, str]:
    """Values for the keys that configs leave for the user to give (`???`)."""
    masks = str(write_masks(tmp_path / "masks", 3))
    return {
        "data.root": str(write_images(tmp_path / "images", 6)),
        "mask.root": masks,
        "evaluate.mask.root": masks,
        "model.init_from": str(tmp_path / "stage1.ckpt"),
    }


@pytest.mark.parametrize(("group", "option"), config_options())
def test_every_config_composes_and_resolves(compose_train, tmp_path, group, option):
    overrides = [f"{group}={option}"]
    values = required_values(tmp_path)
    overrides += [f"{key}={values[key]}" for key in REQUIRED_KEYS.get((group, option), ())]
    cfg = compose_train(*overrides)
    with open_dict(cfg):
        del cfg["hydra"]
    assert OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def test_eval_config_composes(tmp_path):
    from tests.conftest import compose_config

    cfg = compose_config("eval", ["ckpt_path=x.ckpt"], tmp_path)
    assert cfg.split == "test" and cfg.metrics.lpips == "auto" and list(cfg.methods) == []


MASK_KINDS = [
    "center",
    "boxes",
    "freeform",
    "irregular_thin",
    "irregular_medium",
    "irregular_thick",
    "scratches",
    "mixture",
    "photo_damage",
    "folder",
    "folder_fixed",
]


# small networks and random VGG weights: these runs check wiring, not quality
def assert_trained_and_validated(metrics: dict[str, float]) -> None:
    """Some training loss was logged and every one is finite; validation PSNR is sane."""
    losses = [v for k, v in metrics.items() if k.startswith("train/")]
    assert losses and all(np.isfinite(losses))
    assert 0 < metrics["val/psnr/all"] < 100


@pytest.mark.parametrize("model", sorted(TINY_NETWORKS))
@pytest.mark.parametrize("mask", MASK_KINDS)
def test_fast_dev_run_for_each_model_and_mask_kind(compose_train, tmp_path, model, mask):
    overrides = ["debug=fdr", f"mask={mask}", f"model={model}", *TINY_NETWORKS[model]]
    if mask.startswith("folder"):
        overrides.append(f"mask.root={write_masks(tmp_path / 'masks', 3)}")
    assert_trained_and_validated(train(compose_train(*overrides)))


def test_kind_lists_cover_every_mask_and_model_config():
    # mask/base.yaml holds what the others share; it is no mask of its own
    configs = [p.stem for p in (CONF / "mask").glob("*.yaml") if p.stem != "base"]
    assert sorted(MASK_KINDS) == sorted(configs)
    assert sorted(TINY_NETWORKS) == sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


@pytest.mark.parametrize("model", sorted(TINY_NETWORKS))
def test_bf16_mixed_training_is_finite(compose_train, model):
    overrides = ["debug=fdr", "trainer.precision=bf16-mixed", f"model={model}"]
    assert_trained_and_validated(
        train(compose_train(*overrides, "mask=freeform", *TINY_NETWORKS[model]))
    )


def last_logged(metrics_csv: Path, key: str) -> float:
    rows = [r for r in csv.DictReader(metrics_csv.read_text().splitlines()) if r.get(key)]
    return float(rows[-1][key])


def train_one_short_epoch(tmp_path: Path, *overrides: str) -> Path:
    """Run train.py as a user would, debug=limit for one epoch, into tmp_path/run; return it."""
    run_dir = tmp_path / "run"
    result = run_script(
        "train.py",
        "debug=limit",
        "trainer.max_epochs=1",
        *overrides,
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_train_then_eval_reproduces_the_logged_validation_psnr(tmp_path):
    run_dir = train_one_short_epoch(tmp_path, "model.generator.bottleneck=64")
    for artifact in ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "checkpoints/config.yaml"):
        assert (run_dir / artifact).is_file(), artifact
    assert list((run_dir / "samples").glob("*.png"))
    logged = last_logged(run_dir / "csv" / "metrics.csv", "val/psnr/all")

    eval_dir = tmp_path / "eval"
    result = run_script(
        "eval.py",
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        "split=val",
        "max_images=8",  # the 2 validation batches of 4 that debug=limit logs
        "metrics.lpips=false",
        "metrics.fid=false",
        f"hydra.run.dir={eval_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    methods = json.loads((eval_dir / "metrics.json").read_text())["methods"]
    evaluated = methods["run/last"]["bins"]["all"]
    assert evaluated["count"] == 8
    assert evaluated["psnr"] == pytest.approx(logged, abs=1e-4)
    rows = list(csv.DictReader((eval_dir / "metrics.csv").read_text().splitlines()))
    assert rows[0]["bin"] == "all" and int(rows[0]["count"]) == 8


def test_resume_continues_from_the_saved_epoch(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["debug=limit", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1"]
    result = run_script(
        "train.py", *common, "trainer.max_epochs=1", f"hydra.run.dir={first}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_script(
        "train.py",
        *common,
        "trainer.max_epochs=2",
        f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}",
        f"hydra.run.dir={second}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = csv.DictReader((second / "csv" / "metrics.csv").read_text().splitlines())
    assert {row["epoch"] for row in rows} == {"1"}


def finished_run(run_dir: Path, script: str) -> dict[str, bytes]:
    """A folder that looks like a finished train.py or eval.py run; its files' contents."""
    records = [".hydra/config.yaml", ".hydra/overrides.yaml", "config_tree.log", "train.log"]
    results = ["checkpoints/last.ckpt"] if script == "train.py" else ["metrics.json"]
    for name in records + results:
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_bytes(f"the earlier run's {name}".encode())
    return {str(p): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("script", "earlier", "overrides", "says"),
    [
        ("train.py", "train.py", ["debug=limit"], "already holds a run's checkpoints"),
        # without checkpointing of its own, a debug run still keeps off a finished run
        ("train.py", "train.py", ["debug=fdr"], "already holds a run's checkpoints"),
        ("eval.py", "eval.py", ["methods=[telea]"], "already holds evaluation results"),
        # an evaluation would replace the training run's .hydra/ records and config tree
        ("eval.py", "train.py", ["methods=[telea]"], "holds a training run"),
    ],
)
def test_a_new_run_never_touches_a_finished_runs_folder(tmp_path, script, earlier, overrides, says):
    run_dir = tmp_path / "run"
    before = finished_run(run_dir, earlier)
    result = run_script(script, *overrides, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert_one_line_error(result, str(run_dir), says)
    assert result.returncode == 2
    assert {str(p): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_multirun_gives_each_job_its_own_folder_and_logs(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "-m",
        "debug=limit",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "model.generator.bottleneck=64",
        "mask=center,freeform",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    for job in jobs:
        assert (job / "csv" / "metrics.csv").is_file()
        assert (job / "train.log").is_file()
        saved = OmegaConf.load(job / "checkpoints" / "config.yaml")
        assert saved.mask._target_.endswith("CenterBoxMask" if job.name == "0" else "FreeFormMask")


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0]


def test_corrupt_image_in_data_folder_is_named(tmp_path):
    images = write_images(tmp_path / "images", 6)
    (images / "img03.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    result = run_script(
        "train.py",
        "debug=fdr",
        "data=folder",
        f"data.root={images}",
        "data.source.val_fraction=0.5",
        cwd=tmp_path,
    )
    assert_one_line_error(result, "img03.png")


def test_empty_data_folder_is_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_script(
        "train.py", "debug=fdr", "data=folder", f"data.root={tmp_path / 'empty'}", cwd=tmp_path
    )
    assert_one_line_error(result, "no images")


def test_missing_data_root_is_reported(tmp_path):
    result = run_script("train.py", "debug=fdr", "data=folder", cwd=tmp_path)
    assert_one_line_error(result, "data.root")


def test_unknown_config_key_is_reported(tmp_path):
    result = run_script("train.py", "debug=fdr", "model.no_such_key=1", cwd=tmp_path)
    assert result.returncode != 0
    assert "no_such_key" in result.stderr.splitlines()[0]


def test_unknown_added_key_is_reported(tmp_path):
    result = run_script("train.py", "debug=fdr", "+model.no_such_key=1", cwd=tmp_path)
    assert_one_line_error(result, "no_such_key")


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["data.batch_size=abc"], ["batch_size"]),
        (["mask=freeform", "mask.min_ratio=abc"], ["min_ratio"]),
        (["model=context_encoder", "data.image_size=100"], ["100"]),
        (["model=pconv", "data.image_size=7"], ["data.image_size=7", "multiple of"]),
        (["data.root=train.py", "data=folder"], ["is a file"]),
    ],
    ids=["batch_size", "min_ratio", "ce_size", "pconv_size", "root_is_a_file"],
)
def test_bad_values_are_one_line_errors_and_write_no_checkpoint(tmp_path, overrides, fragments):
    (tmp_path / "train.py").write_text("a file, not a folder\n")
    run_dir = tmp_path / "run"
    result = run_script(
        "train.py", "debug=fdr", *overrides, f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert_one_line_error(result, *fragments)
    assert not list(run_dir.rglob("*.ckpt"))
    assert "CONFIG" not in result.stdout  # refused before the config tree is printed


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")
def test_gpu_trainer_without_a_gpu_is_a_one_line_error(tmp_path):
    run_dir = tmp_path / "run"
    result = run_script(
        "train.py", "trainer=gpu", "+trainer.max_steps=1", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert_one_line_error(result, "trainer=cpu", "trainer=default")
    assert not list(run_dir.rglob("*.ckpt"))


def test_missing_checkpoint_is_reported(tmp_path):
    result = run_script("eval.py", f"ckpt_path={tmp_path / 'nope.ckpt'}", cwd=tmp_path)
    assert_one_line_error(result, "nope.ckpt", "does not exist")


def test_foreign_checkpoint_is_reported(tmp_path):
    import torch

    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    result = run_script("eval.py", f"ckpt_path={foreign}", cwd=tmp_path)
    assert_one_line_error(result, "not written by inpaintlab")


def test_instantiated_mask_configs_are_generators(compose_train, tmp_path):
    from inpaintlab.data.masks import MaskGenerator

    roots = required_values(tmp_path)
    for mask in MASK_KINDS:
        extra = [f"mask.root={roots['mask.root']}"] if mask.startswith("folder") else []
        cfg = compose_train(f"mask={mask}", *extra)
        assert isinstance(hydra.utils.instantiate(cfg.mask), MaskGenerator)


def test_greyscale_images_train_end_to_end(compose_train):
    metrics = train(compose_train("debug=fdr", "data.channels=1", "mask=freeform"))
    assert 0 < metrics["val/psnr/all"] < 100


def test_overfit_debug_config_runs(compose_train):
    metrics = train(compose_train("debug=overfit", "trainer.max_epochs=2", "data.batch_size=4"))
    assert np.isfinite(metrics["train/g_loss_epoch"])


def test_predict_returns_composites_that_keep_known_pixels(compose_train):
    import pytorch_lightning as pl
    import torch

    from inpaintlab.data.datamodule import build_datamodule
    from inpaintlab.training.task import build_model, resolve_auto_setting

    cfg = compose_train("mask=freeform", "data.num_workers=0", "data.batch_size=4")
    resolve_auto_setting(cfg)
    datamodule = build_datamodule(cfg, cfg.data, cfg.mask, train=False)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    outputs = trainer.predict(build_model(cfg).eval(), datamodule=datamodule)
    datamodule.setup("predict")
    originals = torch.stack([item["image"] for item in datamodule.dataset("test")]).float() / 255
    composites = torch.cat([out["composite"] for out in outputs])
    masks = torch.cat([out["mask"] for out in outputs])
    assert composites.shape == originals.shape
    known = ~masks.bool().expand_as(originals)
    assert torch.equal(composites[known], originals[known])
    assert masks.sum() > 0 and not torch.equal(composites, originals)


@pytest.mark.parametrize("stage", ["edge", "inpaint", "joint"])
def test_fast_dev_run_for_each_edgeconnect_stage(compose_train, stage):
    overrides = [o for o in TINY_NETWORKS["edgeconnect"] if not o.startswith("model.stage")]
    cfg = compose_train("debug=fdr", "model=edgeconnect", f"model.stage={stage}", *overrides)
    assert_trained_and_validated(train(cfg))


def test_edgeconnect_stage_three_starts_from_a_stage_one_run(compose_train, tmp_path):
    small = [o for o in TINY_NETWORKS["edgeconnect"] if not o.startswith("model.stage")]
    stage1 = compose_train("debug=limit", "trainer.max_epochs=1", "model=edgeconnect", *small)
    train(stage1)
    edge_ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert edge_ckpt.is_file()
    stage3 = compose_train(
        "debug=fdr",
        "model=edgeconnect",
        "model.stage=edge_inpaint",
        f"model.edge_ckpt={edge_ckpt}",
        *small,
    )
    assert_trained_and_validated(train(stage3))


def test_make_train_trains_the_quick_start_and_writes_a_sample_grid(tmp_path):
    """`make train` runs `train.py experiment=quickstart`: with a short schedule it writes
    checkpoints and a sample grid whose rows show four photographs with eight masks."""
    run_dir = train_one_short_epoch(
        tmp_path, "experiment=quickstart", "data.val_batch_size=8", "trainer.limit_val_batches=1"
    )
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    (grid_file,) = (run_dir / "samples").glob("*.png")
    grid = torch.from_numpy(np.asarray(Image.open(grid_file).convert("L"), dtype=np.int64))
    # 8 rows of 4 tiles (masked input | output | composite | original), 2 px apart
    size = (grid.shape[1] - 2) // 4 - 2
    assert grid.shape[0] == 8 * (size + 2) + 2

    def tile(row: int, column: int) -> tuple[int, ...]:
        top, left = 2 + row * (size + 2), 2 + column * (size + 2)
        return tuple(grid[top : top + size, left : left + size].flatten().tolist())

    assert len({tile(row, 3) for row in range(8)}) == 4  # four photographs
    assert len({tile(row, 0) for row in range(8)}) == 8  # each with masks of its own
