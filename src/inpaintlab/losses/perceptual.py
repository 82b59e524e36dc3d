"""Perceptual and style losses on named feature maps (VGG features, or any feature dict)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from inpaintlab.ops.precision import full_precision

FeatureMaps = dict[str, Tensor]


def features_of(
    features: Callable[[Tensor], FeatureMaps], fakes: Sequence[Tensor], reals: Sequence[Tensor]
) -> tuple[list[FeatureMaps], list[FeatureMaps]]:
    """The feature maps of each fake and of each real image (batches of one shape).

    The fakes go through one batched pass that gradients flow back through, the reals through
    a second pass without a graph: in a single pass autograd would also compute the input
    gradients of the reals' half of every layer (an eighth of an EdgeConnect inpaint step's FLOPs).
    """
    with torch.no_grad():
        real = _per_image(features, reals)
    return _per_image(features, fakes), real


def _per_image(
    features: Callable[[Tensor], FeatureMaps], images: Sequence[Tensor]
) -> list[FeatureMaps]:
    """One pass of `features` over the images stacked, split back into one dict per image."""
    chunks = {name: maps.chunk(len(images)) for name, maps in features(torch.cat(images)).items()}
    return [{name: maps[i] for name, maps in chunks.items()} for i in range(len(images))]


@full_precision
def gram_matrix(features: Tensor) -> Tensor:
    """B x C x C Gram matrices F F^T / (C * H * W) of B x C x H x W features, in float32.

    Computed with autocast off: products of many bf16 activations lose the style signal.

    Example:
        >>> gram_matrix(torch.ones(1, 2, 2, 2))
        tensor([[[0.5000, 0.5000],
                 [0.5000, 0.5000]]])
    """
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width)
    return flat @ flat.transpose(1, 2) / (channels * height * width)


def perceptual_loss(
    feats_a: Mapping[str, Tensor], feats_b: Mapping[str, Tensor], layers: Iterable[str]
) -> Tensor:
    """Sum over `layers` of the mean absolute difference between the two feature maps."""
    return _summed_l1(feats_a, feats_b, layers, lambda features: features)


def style_loss(
    feats_a: Mapping[str, Tensor], feats_b: Mapping[str, Tensor], layers: Iterable[str]
) -> Tensor:
    """Sum over `layers` of the mean absolute difference between the Gram matrices."""
    return _summed_l1(feats_a, feats_b, layers, gram_matrix)


def _summed_l1(
    feats_a: Mapping[str, Tensor],
    feats_b: Mapping[str, Tensor],
    layers: Iterable[str],
    transform: Callable[[Tensor], Tensor],
) -> Tensor:
    """Sum over `layers` of mean |transform(a) - transform(b)|."""
    terms = [F.l1_loss(transform(feats_a[name]), transform(feats_b[name])) for name in layers]
    return torch.stack(terms).sum()
