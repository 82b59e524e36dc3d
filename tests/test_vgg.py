"""VGG feature extractor: layer names, truncation, freezing, normalisation, weights loading."""

from __future__ import annotations

import functools
import re
from urllib.error import URLError

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inpaintlab.errors import ConfigError
from inpaintlab.networks import vgg as vgg_module
from inpaintlab.networks.vgg import VGGFeatures, imagenet_cache_file, layer_table, shared_vgg

# indices into torchvision's `features`, read off its printed vgg16/vgg19 (EdgeConnect slices
# vgg19 at the same relu indices)
VGG16_INDICES = {"conv1_1": 0, "relu1_2": 3, "pool1": 4, "pool2": 9, "conv3_3": 14, "pool3": 16}
VGG19_INDICES = {
    "relu1_1": 1,
    "relu2_1": 6,
    "relu2_2": 8,
    "relu3_1": 11,
    "relu3_4": 17,
    "relu4_1": 20,
    "relu4_4": 26,
    "relu5_1": 29,
    "relu5_2": 31,
    "pool5": 36,
}
MODULE_TYPES = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}


@pytest.fixture
def fresh_cache(monkeypatch):
    """An empty VGG cache for one test, the process-wide one restored afterwards."""
    monkeypatch.setattr(vgg_module, "_stack", functools.cache(vgg_module._stack.__wrapped__))


@pytest.fixture
def no_hub(tmp_path, monkeypatch):
    """An empty torch hub cache under tmp_path and a download that fails as without network."""
    attempts = []

    def fail_download(url, *args, **kwargs):
        attempts.append(url)
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(vgg_module.OFFLINE_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", fail_download)
    return attempts


@pytest.mark.parametrize(("arch", "indices"), [("vgg16", VGG16_INDICES), ("vgg19", VGG19_INDICES)])
def test_layer_names_point_at_the_right_modules(arch, indices):
    table = layer_table(arch)
    stack = shared_vgg(arch, "none")
    assert {name: table[name] for name in indices} == indices
    assert len(table) == len(stack)
    for name, index in table.items():
        assert isinstance(stack[index], MODULE_TYPES[name[:4]]), name


@pytest.mark.parametrize(
    ("arch", "layer", "shape"),
    [
        ("vgg16", "pool1", (2, 64, 16, 16)),
        ("vgg16", "pool3", (2, 256, 4, 4)),
        ("vgg19", "relu1_1", (2, 64, 32, 32)),
        ("vgg19", "relu3_4", (2, 256, 8, 8)),
        ("vgg19", "relu5_1", (2, 512, 2, 2)),
        ("vgg19", "relu5_2", (2, 512, 2, 2)),
    ],
)
def test_feature_shapes(arch, layer, shape):
    features = VGGFeatures(arch, [layer], weights="none")(torch.rand(2, 3, 32, 32))
    assert list(features) == [layer]
    assert features[layer].shape == shape


def test_runs_only_up_to_the_deepest_requested_layer():
    stack = shared_vgg("vgg16", "none")
    calls = []
    hooks = [stack[i].register_forward_hook(lambda *_, i=i: calls.append(i)) for i in (8, 9, 10)]
    try:
        VGGFeatures("vgg16", ["pool2", "relu1_1"], weights="none")(torch.rand(1, 3, 16, 16))
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == [8, 9]


def test_frozen_always_eval_and_absent_from_parent_state():
    vgg = VGGFeatures("vgg16", ["pool1"], weights="none")
    parent = nn.ModuleDict({"head": nn.Conv2d(3, 3, 1), "vgg": vgg}).train()
    assert list(vgg.parameters()) == []
    assert list(vgg.children()) == []
    assert set(parent.state_dict()) == {"head.weight", "head.bias"}
    stack = shared_vgg("vgg16", "none")
    assert not stack.training
    assert not any(p.requires_grad for p in stack.parameters())


def test_gradients_reach_the_input_not_the_weights():
    images = torch.rand(1, 3, 16, 16, requires_grad=True)
    VGGFeatures("vgg16", ["pool2"], weights="none")(images)["pool2"].square().sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in shared_vgg("vgg16", "none").parameters())


def test_normalises_with_imagenet_statistics():
    images = torch.rand(2, 3, 8, 8)
    conv = shared_vgg("vgg16", "none")[0]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = F.conv2d((images - mean) / std, conv.weight, conv.bias, padding=1)
    actual = VGGFeatures("vgg16", ["conv1_1"], weights="none")(images)["conv1_1"]
    torch.testing.assert_close(actual, expected)


def test_conv_output_is_not_overwritten_by_the_following_relu():
    features = VGGFeatures("vgg16", ["conv1_1", "relu1_1"], weights="none")(torch.rand(1, 3, 8, 8))
    assert (features["conv1_1"] < 0).any()
    torch.testing.assert_close(features["relu1_1"], features["conv1_1"].relu())


def test_greyscale_input_is_repeated_to_rgb():
    vgg = VGGFeatures("vgg16", ["pool2"], weights="none")
    grey = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(vgg(grey)["pool2"], vgg(grey.repeat(1, 3, 1, 1))["pool2"])


def test_follows_the_input_dtype_and_shares_one_stack():
    images = torch.rand(1, 3, 16, 16)
    a = VGGFeatures("vgg16", ["pool2"], weights="none")
    b = VGGFeatures("vgg16", ["pool1", "pool2"], weights="none")
    double = a.double()(images.double())["pool2"]
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), b(images)["pool2"], rtol=1e-4, atol=1e-5)
    assert next(shared_vgg("vgg16", "none").parameters()).dtype == torch.float32
    assert shared_vgg("vgg16", "none") is shared_vgg("vgg16", "none")


def test_random_weights_are_fixed_and_leave_the_global_rng_alone(monkeypatch):
    reference = shared_vgg("vgg16", "none")
    monkeypatch.setattr(vgg_module, "_stack", functools.cache(vgg_module._stack.__wrapped__))
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    rebuilt = shared_vgg("vgg16", "none")
    assert torch.equal(torch.rand(3), expected_draw)
    assert rebuilt is not reference
    for ours, theirs in zip(rebuilt.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def _save_vgg16_state(path, scale: float = 2.0) -> dict[str, torch.Tensor]:
    """Save the random vgg16 features times `scale` keyed like torchvision's state_dict."""
    state = {
        f"features.{k}": scale * v for k, v in shared_vgg("vgg16", "none").state_dict().items()
    }
    torch.save({**state, "classifier.0.bias": torch.zeros(4)}, path)
    return state


def test_loads_a_torchvision_state_dict_file(tmp_path):
    path = tmp_path / "vgg16.pth"
    state = _save_vgg16_state(path)
    images = torch.rand(1, 3, 8, 8)
    actual = VGGFeatures("vgg16", ["conv1_1"], weights=str(path))(images)["conv1_1"]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    weight, bias = state["features.0.weight"], state["features.0.bias"]
    torch.testing.assert_close(actual, F.conv2d((images - mean) / std, weight, bias, padding=1))


@pytest.mark.parametrize(
    ("arch", "layers", "weights", "message"),
    [
        ("vgg16", ["pool6"], "none", "unknown vgg16 layers ['pool6']"),
        ("vgg16", [], "none", "unknown vgg16 layers"),
        ("vgg11", ["pool1"], "none", "unknown VGG arch 'vgg11'"),
        ("vgg16", ["pool1"], "imagnet", "neither imagenet, none nor an existing file"),
    ],
)
def test_bad_arguments_raise_config_errors(arch, layers, weights, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        VGGFeatures(arch, layers, weights)


def test_unusable_weight_files_raise_config_errors(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read VGG weights"):
        VGGFeatures("vgg16", ["pool1"], weights=str(garbage))
    vgg16_file = tmp_path / "vgg16.pth"
    _save_vgg16_state(vgg16_file)
    with pytest.raises(ConfigError, match="does not hold vgg19 weights"):
        VGGFeatures("vgg19", ["pool1"], weights=str(vgg16_file))


def _assert_missing_weights_message(error: ConfigError, tmp_path) -> None:
    """One line naming the file, the cache path torchvision reads, and both alternatives."""
    message = str(error)
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert "\n" not in message
    assert str(cached) in message
    assert "loss.vgg_weights=/path/to/vgg16-397923af.pth" in message
    assert "loss.vgg_weights=none" in message


def test_imagenet_without_network_fails_with_one_line_config_error(no_hub, tmp_path):
    with pytest.raises(ConfigError) as caught:
        VGGFeatures("vgg16", ["pool1"], weights="imagenet")
    assert no_hub == [vgg_module.VGG16_Weights.IMAGENET1K_V1.url]
    assert "URLError" in str(caught.value)
    _assert_missing_weights_message(caught.value, tmp_path)


def test_offline_switch_fails_before_trying_the_download(no_hub, tmp_path, monkeypatch):
    monkeypatch.setenv(vgg_module.OFFLINE_ENV, "1")
    with pytest.raises(ConfigError, match="INPAINTLAB_OFFLINE=1") as caught:
        VGGFeatures("vgg16", ["pool1"], weights="imagenet")
    assert no_hub == []
    _assert_missing_weights_message(caught.value, tmp_path)


def test_imagenet_weights_come_from_the_torch_hub_cache(no_hub, fresh_cache, monkeypatch):
    monkeypatch.setenv(vgg_module.OFFLINE_ENV, "1")
    cached = imagenet_cache_file("vgg16")
    cached.parent.mkdir(parents=True)
    state = _save_vgg16_state(cached, scale=3.0)
    stack = shared_vgg("vgg16", "imagenet")
    assert no_hub == []
    torch.testing.assert_close(stack[0].weight, state["features.0.weight"])
