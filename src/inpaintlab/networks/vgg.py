"""Frozen VGG16/VGG19 features for perceptual and style losses, one shared copy per process.

Weights (`weights` argument, the `loss.vgg_weights` config value):

- "imagenet": torchvision's IMAGENET1K_V1 weights, fetched as torchvision fetches them: from
  the torch hub cache `torch.hub.get_dir()/checkpoints/` (TORCH_HOME), downloaded there on first
  use. With `INPAINTLAB_OFFLINE=1` the download is not attempted: a file missing from the cache
  fails at once. Without network the download fails in under a second where name lookup fails;
  behind a firewall that drops packets it may wait for the system's TCP timeout (about two
  minutes on Linux), which `INPAINTLAB_OFFLINE=1` avoids. Either way a one-line ConfigError
  names the missing file, the cache path and the alternatives.
- "none": random weights (torchvision's initialisation drawn from a fixed seed, leaving the
  global RNG untouched so seeded runs stay reproducible). For tests and offline smoke runs.
- a file path: a state_dict of torchvision's vgg16()/vgg19(), for example the hub cache file
  itself or one made with
  `torch.save(torchvision.models.vgg16(weights="IMAGENET1K_V1").state_dict(), path)`.
  Only its `features.*` entries are used.

Checkpoints: `VGGFeatures` holds no parameters and no persistent buffers; the network lives in
a process-wide cache keyed by (arch, weights, device, dtype) and is looked up on each call. So
the VGG never reaches an optimiser, is never saved in a checkpoint (checkpoints stay small and
load without it), is shared by every loss that uses the same arch and weights, and is moved to
the input's device and dtype on first use there.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision.models import VGG, VGG16_Weights, VGG19_Weights, WeightsEnum, vgg16, vgg19

from inpaintlab.errors import ConfigError

ARCHS: dict[str, tuple[Callable[..., VGG], WeightsEnum]] = {
    "vgg16": (vgg16, VGG16_Weights.IMAGENET1K_V1),
    "vgg19": (vgg19, VGG19_Weights.IMAGENET1K_V1),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OFFLINE_ENV = "INPAINTLAB_OFFLINE"
RANDOM_SEED = 0
CPU = torch.device("cpu")


class VGGFeatures(nn.Module):
    """Named VGG feature maps of images in [0, 1] (C = 3, or C = 1 repeated to RGB).

    Layer names count blocks and convolutions as in the papers: conv3_2, relu3_2 (after
    conv3_2), pool3 (end of block 3). The network runs only up to the deepest requested layer.
    The network is frozen and always in eval mode: it is not a submodule, so a parent's
    `.train()` never reaches it (and Lightning sees no module left in eval mode); gradients
    flow to the input images.

    Example:
        >>> import torch
        >>> vgg = VGGFeatures("vgg16", ["pool1", "pool3"], weights="none")
        >>> {name: tuple(f.shape) for name, f in vgg(torch.rand(2, 3, 32, 32)).items()}
        {'pool1': (2, 64, 16, 16), 'pool3': (2, 256, 4, 4)}
    """

    def __init__(
        self,
        arch: str = "vgg16",
        layers: Sequence[str] = ("pool1", "pool2", "pool3"),
        weights: str | os.PathLike = "imagenet",
    ) -> None:
        super().__init__()
        table = layer_table(arch)
        unknown = sorted(set(layers) - set(table))
        if unknown or not layers:
            raise ConfigError(
                f"unknown {arch} layers {unknown or '(none given)'}; choose from {', '.join(table)}"
            )
        self.arch = arch
        self.weights = _weights_key(weights)
        self.layers = tuple(layers)
        self._names_at = {table[name]: name for name in self.layers}
        self.depth = max(self._names_at) + 1
        shared_vgg(arch, self.weights)  # load now: missing weights fail at construction
        self.register_buffer("mean", _channel_vector(IMAGENET_MEAN), persistent=False)
        self.register_buffer("std", _channel_vector(IMAGENET_STD), persistent=False)

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, layers={list(self.layers)}, weights={self.weights!r}"

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Map images (B x C x H x W in [0, 1]) to {layer name: feature map}."""
        x = (images.expand(-1, 3, -1, -1) - self.mean) / self.std
        stack = _stack(self.arch, self.weights, x.device, x.dtype)
        features = {}
        for index in range(self.depth):
            x = stack[index](x)
            if index in self._names_at:
                features[self._names_at[index]] = x
        return features


def layer_names(features: nn.Sequential) -> list[str]:
    """Name every layer of a torchvision VGG `features` stack (conv1_1, relu1_1, ..., pool5)."""
    names, block, conv = [], 1, 0
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            conv += 1
            names.append(f"conv{block}_{conv}")
        elif isinstance(layer, nn.ReLU):
            names.append(f"relu{block}_{conv}")
        elif isinstance(layer, nn.MaxPool2d):
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            raise ValueError(f"unexpected layer in a VGG feature stack: {layer}")
    return names


@functools.cache
def layer_table(arch: str) -> dict[str, int]:
    """{layer name: index in torchvision's `features`} for "vgg16" or "vgg19"."""
    with torch.device("meta"):
        features = _arch(arch)[0]().features
    return {name: index for index, name in enumerate(layer_names(features))}


def shared_vgg(arch: str, weights: str | os.PathLike = "imagenet") -> nn.Sequential:
    """The process-wide frozen CPU float32 `features` stack of `arch` with `weights`."""
    _arch(arch)
    return _stack(arch, _weights_key(weights), CPU, torch.float32)


def hub_cache_file(url: str) -> Path:
    """Where torch.hub caches (and looks for) the file downloaded from `url`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def imagenet_cache_file(arch: str) -> Path:
    """Where torchvision caches (and looks for) the ImageNet weights of `arch`."""
    return hub_cache_file(_arch(arch)[1].url)


@functools.cache
def _stack(arch: str, weights: str, device: torch.device, dtype: torch.dtype) -> nn.Sequential:
    """Cached stack on `device` in `dtype`; other placements are copies of the CPU one."""
    if device == CPU and dtype == torch.float32:
        return _load_features(arch, weights)
    return copy.deepcopy(_stack(arch, weights, CPU, torch.float32)).to(device, dtype)


def _load_features(arch: str, weights: str) -> nn.Sequential:
    """Build `arch`'s features with `weights` ("imagenet", "none" or a resolved file path)."""
    if weights == "none":
        return _frozen(_random_features(arch))
    # fetched before the build so that missing weights fail at once
    state = _imagenet_state(arch) if weights == "imagenet" else _file_state(weights)
    features = _random_features(arch)
    try:
        features.load_state_dict(state)
    except RuntimeError as err:
        raise ConfigError(
            f"{weights} does not hold {arch} weights: {_one_line(err)}; save "
            f"torchvision.models.{arch}().state_dict() or pick the matching arch"
        ) from err
    return _frozen(features)


def _frozen(features: nn.Sequential) -> nn.Sequential:
    """`features` in eval mode without gradients, its ReLUs made out-of-place."""
    for module in features.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False  # an in-place ReLU would overwrite a returned conv output
    return features.requires_grad_(False).eval()


def _random_features(arch: str) -> nn.Sequential:
    """torchvision's randomly initialised features, drawn without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return _arch(arch)[0]().features


def _imagenet_state(arch: str) -> dict[str, Tensor]:
    """Features state of torchvision's ImageNet weights, or a ConfigError saying what to do."""
    enum, cached = _arch(arch)[1], imagenet_cache_file(arch)
    if os.environ.get(OFFLINE_ENV) == "1" and not cached.is_file():
        raise ConfigError(_missing_message(arch, cached, f"{OFFLINE_ENV}=1 forbids the download"))
    try:
        state = enum.get_state_dict(progress=True, check_hash=True)
    except (URLError, OSError, RuntimeError) as err:
        raise ConfigError(_missing_message(arch, cached, _one_line(err))) from err
    return _features_state(state)


def _file_state(path: str) -> dict[str, Tensor]:
    """Features state of a torchvision VGG state_dict saved at `path`."""
    try:  # any failure to unpickle a user's file becomes a one-line ConfigError
        return _features_state(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:
        raise ConfigError(f"cannot read VGG weights {path}: {_one_line(err)}") from err


def _features_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The `features.*` entries of a torchvision VGG state_dict, prefix removed."""
    prefix = "features."
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def _missing_message(arch: str, cached: Path, reason: str) -> str:
    """One line: which weights file is missing, where torchvision looks, what to do."""
    return (
        f"{arch} ImageNet weights {cached.name} are not available ({reason}); torchvision looks "
        f"for them at {cached}: copy the file there, or set loss.vgg_weights=/path/to/"
        f"{cached.name}, or loss.vgg_weights=none for random weights (tests only)"
    )


def _weights_key(weights: str | os.PathLike) -> str:
    """ "imagenet", "none", or the resolved path of an existing weights file."""
    if weights in ("imagenet", "none"):
        return str(weights)
    path = Path(weights).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(
            f"VGG weights {weights!r} are neither imagenet, none nor an existing file; "
            "set loss.vgg_weights to one of these"
        )
    return str(path)


def _arch(arch: str) -> tuple[Callable[..., VGG], WeightsEnum]:
    """Constructor and ImageNet weights enum of `arch`, or a ConfigError."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown VGG arch {arch!r}; use one of {', '.join(ARCHS)}")
    return ARCHS[arch]


def _channel_vector(values: tuple[float, float, float]) -> Tensor:
    """1 x 3 x 1 x 1 tensor for per-channel normalisation."""
    return torch.tensor(values).view(1, 3, 1, 1)


def _one_line(err: BaseException, limit: int = 200) -> str:
    """`Type: message` of an exception on one line, cut to about `limit` characters."""
    message = " ".join(str(err).split())
    if len(message) > limit:
        message = message[:limit] + "..."
    return f"{type(err).__name__}: {message}"
