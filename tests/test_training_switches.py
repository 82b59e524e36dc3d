"""Training switches: generator EMA, schedulers in the manual loop, gradient clipping (also under a
16-mixed scaler), torch.compile, and the non-finite loss guard."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.plugins.precision import MixedPrecision
from torch import nn

from inpaintlab.errors import ConfigError, TrainingError
from inpaintlab.inference.inpainter import Inpainter
from inpaintlab.models.checkpoint import read_checkpoint
from inpaintlab.models.ema import WeightAverage
from inpaintlab.models.switches import TrainingSwitches
from inpaintlab.training.task import train
from tests.conftest import compose_config, run_script
from tests.helpers import fit, smooth_images
from tests.test_ddp import run_overrides, write_image_folder
from tests.tiny_checkpoints import ADAM, save_checkpoint, tiny_model

KINDS = ("ce_center", "pconv", "edgeconnect")
SGD = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 1.0}


def make_batch(n: int = 4, size: int = 32) -> dict[str, torch.Tensor]:
    """Smooth images with a square hole inside the Context Encoder's centre patch."""
    image = F.interpolate(smooth_images(n), size=size, mode="bilinear", antialias=True)
    mask = torch.zeros(n, 1, size, size)
    mask[..., 10:22, 12:20] = 1
    return {"image": image.clamp(0, 1), "mask": mask, "index": torch.arange(n)}


def parameters(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def assert_finite(module: nn.Module) -> None:
    for name, tensor in module.state_dict().items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), name


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("images"), train=6, val=2)


def train_run(folder: Path, images: Path, model: str, *extra: str) -> dict[str, float]:
    """One epoch of 3 batches of `model` on the tiny image folder, writing under `folder`."""
    overrides = run_overrides(
        model,
        images,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=1",
        *extra,
    )
    return train(compose_config("train", overrides, folder))


# --- the switches' own checks ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("nan_guard", "ignore"),
        ("scheduler_interval", "batch"),
        ("gradient_clip_algorithm", "l2"),
        ("ema_decay", 1.0),
        ("gradient_clip_val", 0.0),
    ],
)
def test_a_bad_switch_value_is_a_one_line_config_error(key, value):
    with pytest.raises(ConfigError, match=f"model.{key}=") as error:
        TrainingSwitches(**{key: value})
    assert "\n" not in str(error.value)


def test_an_unknown_model_option_names_itself_and_the_known_ones():
    with pytest.raises(ConfigError, match="emadecay.*ema_decay"):
        TrainingSwitches.from_options({"emadecay": 0.9})


# --- exponential moving average -------------------------------------------------------------


def test_weight_average_follows_the_warmed_up_recurrence():
    torch.manual_seed(0)
    live = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    average = WeightAverage({"net": live}, decay=0.8)
    expected = parameters(live).clone()
    for n in range(6):
        with torch.no_grad():
            for p in live.parameters():
                p.add_(torch.randn_like(p))
        live(torch.randn(5, 3))  # moves the BatchNorm statistics
        average.update({"net": live})
        decay = min(0.8, (1 + n) / (10 + n))
        expected = decay * expected + (1 - decay) * parameters(live)
    torch.testing.assert_close(parameters(average.networks["net"]), expected)
    assert torch.equal(average.networks["net"][1].running_mean, live[1].running_mean)
    assert int(average.updates) == 6
    average.reset({"net": live})
    assert torch.equal(parameters(average.networks["net"]), parameters(live))


class RecordGenerators(pl.Callback):
    """The trained generators' weights after every batch (before the module's EMA update)."""

    def __init__(self) -> None:
        self.history: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, module, *args) -> None:
        names = module.trained_generator_names
        self.history.append({name: parameters(getattr(module, name)).clone() for name in names})


@pytest.mark.parametrize("kind", KINDS)
def test_ema_averages_the_trained_generators_and_serves_inference(kind):
    module = tiny_model(kind, ema_decay=0.9)
    start = {
        name: parameters(getattr(module, name)).clone() for name in module.trained_generator_names
    }
    recorder = RecordGenerators()
    fit(module, make_batch(), steps=4, callbacks=[recorder])
    for name, initial in start.items():
        expected = initial
        for n, weights in enumerate(recorder.history):
            decay = min(0.9, (1 + n) / (10 + n))
            expected = decay * expected + (1 - decay) * weights[name]
        averaged = module.generator_average.networks[name]
        torch.testing.assert_close(parameters(averaged), expected)
        assert not torch.equal(parameters(averaged), parameters(getattr(module, name)))
        assert module.train().inference_network(name) is getattr(module, name)
        assert module.eval().inference_network(name) is averaged


def test_inference_from_a_checkpoint_uses_the_averaged_weights(tmp_path):
    module = tiny_model("pconv", ema_decay=0.9)
    fit(module, make_batch(), steps=3)
    path = save_checkpoint(module.eval(), tmp_path / "ema.ckpt")
    batch = make_batch(2)
    with torch.no_grad():
        averaged = module.generator_average.networks["generator"](batch["image"], batch["mask"])
        live = module.generator(batch["image"], batch["mask"])
    composite = Inpainter.from_checkpoint(path, device="cpu")(batch["image"], batch["mask"])
    hole = batch["mask"].bool().expand_as(composite)
    torch.testing.assert_close(composite[hole], averaged.clamp(0, 1)[hole])
    assert not torch.allclose(composite[hole], live.clamp(0, 1)[hole])


def test_a_checkpoint_without_averages_starts_them_from_its_generators():
    plain_module, averaging = tiny_model("ce_center"), tiny_model("ce_center", ema_decay=0.99)
    with torch.no_grad():
        plain_module.generator.decoder[0].weight.add_(1.0)  # differs from the averaging module's
    checkpoint = {"state_dict": plain_module.state_dict()}
    averaging.on_load_checkpoint(checkpoint)
    averaging.load_state_dict(checkpoint["state_dict"])
    average = averaging.generator_average
    assert torch.equal(
        parameters(average.networks["generator"]), parameters(plain_module.generator)
    )
    assert int(average.updates) == 0
    # and the other way round: averages this run does not keep are dropped
    checkpoint = {"state_dict": averaging.state_dict()}
    plain_module.on_load_checkpoint(checkpoint)
    plain_module.load_state_dict(checkpoint["state_dict"])


# --- schedulers stepped in the manual loop ---------------------------------------------------


def step_lr(**kwargs) -> dict:
    return {"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True, **kwargs}


# EdgeConnect's joint stage: 4 optimisers, so 4 optimiser steps per batch
@pytest.mark.parametrize(
    ("interval", "run", "halvings"),
    [
        ("step", {"steps": 3 * 4}, 3),
        ("epoch", {"steps": 2 * 2 * 4, "max_epochs": 2, "limit_train_batches": 2}, 2),
    ],
)
def test_schedulers_step_every_optimiser_per_batch_or_per_epoch(interval, run, halvings):
    scheduler = step_lr(step_size=1, gamma=0.5)
    module = tiny_model("edgeconnect", scheduler=scheduler, scheduler_interval=interval)
    trainer = fit(module.train(), make_batch(), **run)
    initial = module.create_optimizers().values()
    assert len(trainer.optimizers) == len(initial) == 4
    for optimizer, fresh in zip(trainer.optimizers, initial, strict=True):
        expected = fresh.param_groups[0]["lr"] * 0.5**halvings
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)


def test_plateau_scheduler_steps_on_the_monitored_validation_metric(tmp_path, images):
    plateau = (
        "model.scheduler={_target_:torch.optim.lr_scheduler.ReduceLROnPlateau,"
        "_partial_:true,mode:max,patience:0,factor:0.5}"
    )
    train_run(tmp_path / "run", images, "context_encoder", plateau, "trainer.max_epochs=2")
    checkpoint = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert [s["last_epoch"] for s in checkpoint["lr_schedulers"]] == [2, 2]
    with pytest.raises(ConfigError, match="scheduler_monitor='val/nothing'"):
        train_run(
            tmp_path / "bad",
            images,
            "context_encoder",
            plateau,
            "model.scheduler_monitor=val/nothing",
        )


# --- gradient clipping through self.clip_gradients ------------------------------------------


def discriminator_update(clip: float | None, algorithm: str = "norm", **trainer_kwargs):
    """The Context Encoder discriminator's change after one SGD (lr 1) step."""
    module = tiny_model("ce_center", gradient_clip_val=clip, gradient_clip_algorithm=algorithm)
    module.optimizer_config = SGD
    before = parameters(module.discriminator).clone()
    fit(module, make_batch(), steps=1, **trainer_kwargs)
    return parameters(module.discriminator) - before


def test_clipping_by_norm_bounds_the_update():
    assert discriminator_update(None).norm() > 1e-3  # the clip below really bites
    assert discriminator_update(1e-3).norm() == pytest.approx(1e-3, rel=1e-3)


def test_clipping_by_value_bounds_every_component():
    assert discriminator_update(None).abs().max() > 1e-4
    assert discriminator_update(1e-4, "value").abs().max() == pytest.approx(1e-4, rel=1e-3)


def fp16_on_cpu(init_scale: float = 2.0**10) -> MixedPrecision:
    """Lightning's 16-mixed plugin with its gradient scaler on the CPU (Trainer(precision=
    "16-mixed") falls back to bf16 there)."""
    return MixedPrecision(
        "16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=init_scale)
    )


def test_under_16_mixed_gradients_are_unscaled_before_clipping():
    update = discriminator_update(1e-3, plugins=[fp16_on_cpu()])
    # clipped while still scaled by 1024, the update would be 1024x smaller
    assert update.norm() == pytest.approx(1e-3, rel=1e-2)


@pytest.mark.parametrize("kind", KINDS)
def test_16_mixed_with_its_scaler_trains_every_variant(kind):
    module = tiny_model(kind).train()
    before = parameters(module).clone()
    plugin = fp16_on_cpu()
    fit(module, make_batch(), steps=3, plugins=[plugin])
    assert_finite(module)
    assert not torch.equal(parameters(module), before)
    assert math.isfinite(plugin.scaler.get_scale())


# --- torch.compile ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_compiled_networks_train_and_keep_their_checkpoint_keys(kind):
    # the eager backend traces every network with dynamo but skips inductor's slow code generation
    module = tiny_model(kind, compile=True, compile_backend="eager").train()
    keys = set(module.state_dict())
    fit(module, make_batch(), steps=2)
    assert all(
        getattr(module, name)._compiled_call_impl is not None for name in module.network_names
    )
    assert set(module.state_dict()) == keys
    assert_finite(module)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_inductor_compiled_training_matches_eager_training(kind):
    eager, compiled = tiny_model(kind), tiny_model(kind, compile=True)
    for module in (eager, compiled):
        torch.manual_seed(1)
        fit(module, make_batch(), steps=2)
    torch.testing.assert_close(parameters(compiled), parameters(eager), rtol=1e-3, atol=1e-4)


# --- the non-finite loss guard ---------------------------------------------------------------


class PoisonBatches(pl.Callback):
    """Fills the images of the given training batches with NaN; keeps the state before each."""

    def __init__(self, batches: set[int]) -> None:
        self.batches = batches
        self.states_before: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx in self.batches:
            self.states_before[batch_idx] = {k: v.clone() for k, v in module.state_dict().items()}
            batch["image"] = batch["image"].clone().fill_(math.nan)


def guarded_model(optimizer: str, **switches) -> nn.Module:
    """The tiny centre Context Encoder in training mode with a fused Adam (which skips a step
    on the device) or the foreach one (skipped on the host)."""
    module = tiny_model("ce_center", **switches).train()
    module.optimizer_config = {**ADAM, "fused": optimizer == "fused"}
    return module


OPTIMIZERS = ["fused", "foreach"]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_a_non_finite_loss_stops_the_run_with_a_checkpoint_of_the_last_finite_state(
    tmp_path, optimizer
):
    module, poison = guarded_model(optimizer), PoisonBatches({2})
    with pytest.raises(TrainingError) as error:
        fit(
            module,
            make_batch(),
            steps=10,
            callbacks=[poison],
            default_root_dir=tmp_path,
            max_epochs=1,
            limit_train_batches=3,
        )
    message = str(error.value)
    (saved,) = (tmp_path / "checkpoints").glob("nonfinite_step*.ckpt")
    assert "\n" not in message
    assert message.startswith(
        "train/d_loss or its gradients are not finite at epoch 0, global step 4"
    )
    assert f"ckpt_path={saved}" in message
    state = read_checkpoint(saved)["state_dict"]  # the poisoned batch was the last one
    for key, value in poison.states_before[2].items():
        assert torch.equal(state[key], value), key


class InfiniteGradientsAt(pl.Callback):
    """Makes the generator's first weight get infinite gradients in one training batch, from
    a loss that stays finite (an overflow in the backward pass)."""

    def __init__(self, batch: int) -> None:
        self.batch, self.hook = batch, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == self.batch:
            weight = next(module.generator.parameters())
            self.hook = weight.register_hook(lambda grad: torch.full_like(grad, math.inf))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.hook is not None:
            self.hook.remove()
            self.hook = None


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_infinite_gradients_from_a_finite_loss_are_skipped_too(optimizer):
    module = guarded_model(optimizer, nan_guard="skip")
    with pytest.warns(UserWarning, match="train/g_loss or its gradients are not finite"):
        fit(module, make_batch(), steps=8, callbacks=[InfiniteGradientsAt(1)])
    assert_finite(module)


class RuinedWeightsAt(pl.Callback):
    """Sets the generator's first weight to infinity before one training batch, as an update
    that overflowed would."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == self.batch:
            with torch.no_grad():
                next(module.generator.parameters()).fill_(math.inf)


@pytest.mark.parametrize("nan_guard", ["stop", "skip"])
def test_ruined_weights_are_never_saved_as_finite(tmp_path, nan_guard):
    module = guarded_model("fused", nan_guard=nan_guard)
    with pytest.raises(TrainingError) as error:
        fit(module, make_batch(), 8, callbacks=[RuinedWeightsAt(1)], default_root_dir=tmp_path)
    message = str(error.value)
    assert "\n" not in message and "because the weights already are" in message
    assert "ckpt_path=last" in message
    assert not list(tmp_path.rglob("nonfinite_*.ckpt"))


@pytest.mark.parametrize(("optimizer", "counted_steps"), [("fused", 2 * 4), ("foreach", 2 * 3)])
def test_skip_drops_the_poisoned_steps_and_training_goes_on(optimizer, counted_steps):
    module, poison = guarded_model(optimizer, nan_guard="skip"), PoisonBatches({1})
    untouched = TrackStates()
    with pytest.warns(UserWarning, match="train/d_loss .* 2 optimiser step.s. skipped"):
        trainer = fit(
            module,
            make_batch(),
            8,
            callbacks=[poison, untouched],
            max_epochs=1,
            limit_train_batches=4,
        )
    # a step the fused optimiser skips on the device still counts as a step
    assert trainer.global_step == counted_steps
    assert_finite(module)
    for key, value in poison.states_before[1].items():  # the poisoned batch changed nothing
        assert torch.equal(untouched.states_after[1][key], value), key


class TrackStates(pl.Callback):
    """Keeps the module's state after each training batch."""

    def __init__(self) -> None:
        self.states_after: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.states_after[batch_idx] = {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_skip_stops_after_too_many_skipped_steps_in_a_row(tmp_path, optimizer):
    module = guarded_model(optimizer, nan_guard="skip", nan_max_skips=3)
    poison = PoisonBatches({1, 2, 3})
    with pytest.raises(TrainingError, match="d_loss .* [(]6 skipped steps in a row[)]"):
        fit(module, make_batch(), steps=10, callbacks=[poison], default_root_dir=tmp_path)
    assert_finite(module)


def test_train_py_reports_a_non_finite_loss_in_one_line_and_exits_2(tmp_path, images):
    run_dir = tmp_path / "run"
    args = [*run_overrides("context_encoder", images), "loss.reconstruction_weight=nan"]
    result = run_script("train.py", *args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "train/g_loss or its gradients are not finite at epoch 0, global step 1" in line
    (saved,) = (run_dir / "checkpoints").glob("nonfinite_step*.ckpt")
    assert f"ckpt_path={saved}" in line
    assert_finite_state(read_checkpoint(saved)["state_dict"])


def assert_finite_state(state: dict[str, torch.Tensor]) -> None:
    for key, tensor in state.items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), key


# --- every variant with the speed switches on ------------------------------------------------


@pytest.mark.parametrize("model", ["context_encoder", "pconv", "edgeconnect"])
def test_bf16_channels_last_and_ema_train_every_variant_without_nan(tmp_path, images, model):
    switches = ["trainer.precision=bf16-mixed", "model.channels_last=true", "model.ema_decay=0.9"]
    metrics = train_run(tmp_path, images, model, *switches)
    assert math.isfinite(metrics["val/psnr/all"])
    state = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["state_dict"]
    assert_finite_state(state)
    prefix = "generator_average.networks."
    averaged = [key for key in state if key.startswith(prefix) and key.endswith("weight")]
    assert averaged
    assert not torch.equal(state[averaged[0]], state[averaged[0].removeprefix(prefix)])
