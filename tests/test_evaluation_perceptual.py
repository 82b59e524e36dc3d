"""LPIPS and FID code paths offline: stand-in networks, the FID maths, missing-weights messages."""

import pytest
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from inpaintlab.errors import ConfigError
from inpaintlab.metrics.perceptual import (
    FIDFeatures,
    frechet_distance,
    load_fid,
    load_lpips,
)
from tests.eval_helpers import PooledColours, random_lpips


class GivenFeatures(nn.Module):
    """Lets torchmetrics' FID take precomputed features as its "images"."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.num_features = dims

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def images(count: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, channels, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("channels", [1, 3])
def test_lpips_is_zero_for_identical_images_and_positive_otherwise(channels):
    score = random_lpips()
    a, b = images(3, channels), images(3, channels, seed=1)
    same, different = score(a, a), score(a, b)
    assert same.shape == different.shape == (3,)
    torch.testing.assert_close(same, torch.zeros(3))
    assert (different > 0).all()


def test_fid_features_round_to_uint8_and_repeat_grey():
    features = FIDFeatures(PooledColours())
    grey = images(2, channels=1)
    torch.testing.assert_close(features(grey), features(grey.expand(-1, 3, -1, -1)))
    assert features(grey).dtype == torch.float64 and features(grey).shape == (2, 48)


@pytest.mark.parametrize("count", [6, 80])  # fewer and more images than feature dimensions
def test_frechet_distance_matches_torchmetrics(count):
    generator = torch.Generator().manual_seed(count)
    real = torch.randn(count, 48, generator=generator, dtype=torch.float64)
    fake = 0.7 * torch.randn(count + 3, 48, generator=generator, dtype=torch.float64) + 0.2
    reference = FrechetInceptionDistance(feature=GivenFeatures(48)).double()
    reference.update(real, real=True)
    reference.update(fake, real=False)
    assert frechet_distance(real, fake) == pytest.approx(reference.compute().item(), rel=1e-6)


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_a_shift():
    features = FIDFeatures(PooledColours())
    real = features(images(10))
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(real, features(images(10, seed=3))) > 0
    shifted = frechet_distance(real, real + 0.1)
    assert shifted == pytest.approx(48 * 0.1**2, rel=1e-9)


def test_frechet_distance_needs_two_images():
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(torch.zeros(1, 4), torch.zeros(3, 4))


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """An empty torch hub cache and no downloads."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("INPAINTLAB_OFFLINE", "1")
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.mark.parametrize(
    ("load", "file_name", "key"),
    [
        (load_lpips, "alexnet-owt-7be5be79.pth", "metrics.lpips=false"),
        (load_fid, "weights-inception-2015-12-05-6726825d.pth", "metrics.fid_weights="),
    ],
)
def test_auto_mode_skips_with_one_line_naming_the_file_and_where_to_put_it(
    no_weights, capsys, load, file_name, key
):
    assert load("auto") is None
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning:") and "skipped" in lines[0]
    assert str(no_weights / file_name) in lines[0] and key in lines[0]
    assert "INPAINTLAB_OFFLINE=1" in lines[0]


@pytest.mark.parametrize("load", [load_lpips, load_fid])
def test_required_metric_without_weights_is_a_config_error_and_off_is_silent(
    no_weights, capsys, load
):
    with pytest.raises(ConfigError, match="cannot be computed") as error:
        load(True)
    assert "\n" not in str(error.value)
    assert load(False) is None
    assert capsys.readouterr().err == ""


def test_fid_weights_file_that_is_not_plain_tensors_is_refused(tmp_path, capsys):
    crafted = tmp_path / "inception.pth"
    torch.save({"weights": nn.Linear(2, 2)}, crafted)  # a pickled module, not a state dict
    assert load_fid("auto", crafted) is None
    assert "inception.pth is not available" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="does not exist"):
        load_fid(True, tmp_path / "missing.pth")


def test_bad_modes_and_backbones_are_config_errors():
    with pytest.raises(ConfigError, match="metrics.lpips must be auto, true or false"):
        load_lpips("maybe")
    with pytest.raises(ConfigError, match="metrics.lpips_net"):
        load_lpips(False, net="resnet")
