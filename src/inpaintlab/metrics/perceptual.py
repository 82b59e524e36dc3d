"""LPIPS and FID for the evaluation: torchmetrics' networks, and their weights found or explained.

Both metrics need pretrained backbones that torchvision / torch-fidelity download on first use
into the torch hub cache, `torch.hub.get_dir()/checkpoints/` (TORCH_HOME moves it):

- LPIPS (`LearnedPerceptualImagePatchSimilarity`): torchvision's ImageNet AlexNet (default),
  VGG16 or SqueezeNet weights; its small linear heads ship inside torchmetrics.
- FID (`FrechetInceptionDistance`): torch-fidelity's Inception v3 weights, from the hub cache or
  from a file named by `metrics.fid_weights`.

Each metric has a mode (`metrics.lpips`, `metrics.fid`): false = not computed; true = the
weights must be had, otherwise a one-line ConfigError; "auto" = computed when the weights can
be had, otherwise one warning line on stderr says which file is missing and where to put it,
and the evaluation goes on without that metric. With `INPAINTLAB_OFFLINE=1` no download is
attempted. A metric is never computed with random weights in their place: the networks are
handed to `LPIPSScore` / `FIDFeatures` ready made, which is also how tests pass stand-ins.
"""

from __future__ import annotations

import math
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.error import URLError

import torch
from torch import Tensor, nn
from torchvision.models import AlexNet_Weights, SqueezeNet1_1_Weights, VGG16_Weights

from inpaintlab.data.io import to_uint8
from inpaintlab.errors import ConfigError, flat_message
from inpaintlab.networks.vgg import OFFLINE_ENV, hub_cache_file
from inpaintlab.ops.precision import full_precision

LPIPS_BACKBONES = {
    "alex": AlexNet_Weights.IMAGENET1K_V1,
    "vgg": VGG16_Weights.IMAGENET1K_V1,
    "squeeze": SqueezeNet1_1_Weights.IMAGENET1K_V1,
}
FID_FEATURES = 2048
MODES = (True, False, "auto")
# what a failed download or a bad weights file raises
LOAD_ERRORS = (URLError, OSError, RuntimeError, ValueError, pickle.UnpicklingError)

T = TypeVar("T")


class WeightsUnavailable(Exception):
    """The weights file is missing and may not be downloaded."""


class LPIPSScore:
    """Per-image LPIPS of images in [0, 1] (grey images repeated to RGB); lower is closer.

    `network` is torchmetrics' LPIPS network: called as `network(a, b, normalize=True)` on
    B x 3 x H x W images in [0, 1], it returns B x 1 x 1 x 1 distances.
    """

    def __init__(self, network: nn.Module) -> None:
        self.network = network.eval()

    def to(self, device: torch.device | str) -> LPIPSScore:
        self.network.to(device)
        return self

    @torch.inference_mode()
    @full_precision
    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        """LPIPS of each pair of images: shape B, on the CPU (fp32, autocast off)."""
        scores = self.network(rgb(pred), rgb(target), normalize=True)
        return scores.flatten().float().cpu()


class FIDFeatures:
    """Feature vectors for FID of images in [0, 1] (grey images repeated to RGB).

    `extractor` maps uint8 B x 3 x H x W images to B x D features, as torchmetrics' Inception
    network does (it resizes to 299 x 299 itself). Images are rounded to uint8 first.
    """

    def __init__(self, extractor: nn.Module) -> None:
        self.extractor = extractor.eval()

    def to(self, device: torch.device | str) -> FIDFeatures:
        self.extractor.to(device)
        return self

    @torch.inference_mode()
    @full_precision
    def __call__(self, images: Tensor) -> Tensor:
        """B x D float64 CPU features (computed in fp32 with autocast off)."""
        return self.extractor(to_uint8(rgb(images))).flatten(1).double().cpu()


def rgb(images: Tensor) -> Tensor:
    """B x 3 x H x W: grey images repeated to three channels, colour images unchanged."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """Fréchet distance between two feature sets (N x D, at least 2 rows each), in float64.

    The same number as torchmetrics' FrechetInceptionDistance (a test checks it), computed
    without its D x D eigendecomposition (seconds per call at D = 2048): with each covariance
    written as S = F F^T, the eigenvalues of S_r S_f are the squared singular values of
    F_r^T F_f, so tr sqrt(S_r S_f) is the nuclear norm of that small matrix. The centred
    features / sqrt(N - 1) are such an F; sets larger than D use an eigh factor instead.
    """
    mean_real, factor_real = mean_and_factor(real)
    mean_fake, factor_fake = mean_and_factor(fake)
    cross = torch.linalg.matrix_norm(factor_real.T @ factor_fake, ord="nuc")
    spread = factor_real.square().sum() + factor_fake.square().sum()
    return ((mean_real - mean_fake).square().sum() + spread - 2 * cross).item()


def mean_and_factor(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and a D x k factor F of the unbiased covariance (S = F F^T) of N x D features."""
    count, dims = features.shape
    if count < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {count}")
    x = features.double()
    mean = x.mean(0)
    centred = (x - mean) / math.sqrt(count - 1)
    if count <= dims:
        return mean, centred.T
    eigenvalues, eigenvectors = torch.linalg.eigh(centred.T @ centred)
    return mean, eigenvectors * eigenvalues.clamp_min(0).sqrt()


def check_mode(mode: bool | str, key: str) -> bool | str:
    """A metric mode as True, False or "auto", or a ConfigError naming `key`."""
    if mode not in MODES:
        raise ConfigError(f"{key} must be auto, true or false, got {mode!r}")
    return mode


def load_lpips(mode: bool | str = "auto", net: str = "alex") -> LPIPSScore | None:
    """torchmetrics' LPIPS with the `net` backbone (alex, vgg, squeeze), as described above."""
    check_mode(mode, "metrics.lpips")
    if net not in LPIPS_BACKBONES:
        raise ConfigError(f"metrics.lpips_net must be one of {', '.join(LPIPS_BACKBONES)}")
    cached = hub_cache_file(LPIPS_BACKBONES[net].url)

    def build() -> LPIPSScore:
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        return LPIPSScore(LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True).net)

    remedy = f"put it at {cached} (TORCH_HOME moves that folder), or set metrics.lpips=false"
    return load_or_explain(f"LPIPS ({net})", mode, build, cached, remedy)


def load_fid(
    mode: bool | str = "auto", weights: str | os.PathLike | None = None
) -> FIDFeatures | None:
    """torchmetrics' FID Inception network, weights from the hub cache or the file `weights`."""
    check_mode(mode, "metrics.fid")
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    cached = hub_cache_file(URL_INCEPTION_V3)
    path = Path(weights).expanduser() if weights else None

    def build() -> FIDFeatures:
        from torchmetrics.image.fid import FrechetInceptionDistance

        if path is not None:
            if not path.is_file():
                raise WeightsUnavailable(f"metrics.fid_weights={path} does not exist")
            # torch-fidelity unpickles the file in full: check first that it is plain tensors
            torch.load(path, map_location="cpu", weights_only=True)
        metric = FrechetInceptionDistance(
            feature=FID_FEATURES, feature_extractor_weights_path=str(path) if path else None
        )
        return FIDFeatures(metric.inception)

    remedy = (
        f"put it at {cached} (TORCH_HOME moves that folder) or set "
        f"metrics.fid_weights=/path/to/{cached.name}, or set metrics.fid=false"
    )
    return load_or_explain("FID", mode, build, path or cached, remedy, downloads=path is None)


def load_or_explain(
    metric: str,
    mode: bool | str,
    build: Callable[[], T],
    wanted: Path,
    remedy: str,
    downloads: bool = True,
) -> T | None:
    """`build()` unless mode is false. When the weights file `wanted` cannot be had (missing
    and not downloadable, or unreadable), raise a ConfigError (mode true) or print one warning
    line (mode auto) and return None."""
    if mode is False:
        return None
    try:
        if downloads and os.environ.get(OFFLINE_ENV) == "1" and not wanted.is_file():
            raise WeightsUnavailable(f"{OFFLINE_ENV}=1 forbids the download")
        return build()
    except (WeightsUnavailable, *LOAD_ERRORS) as error:
        reason = flat_message(error, limit=200)
    message = f"{wanted.name} is not available ({reason}): {remedy}"
    if mode is True:
        raise ConfigError(f"{metric} cannot be computed: {message}")
    print(f"warning: {metric} skipped: {message}", file=sys.stderr)
    return None
