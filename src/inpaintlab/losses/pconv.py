"""Partial Convolution's total loss (Liu et al. 2018): pixel L1, VGG16 perceptual, style, TV."""

from __future__ import annotations

import os

from torch import Tensor, nn

from inpaintlab.errors import ConfigError
from inpaintlab.losses.adversarial import AdversarialLoss
from inpaintlab.losses.generator_loss import GeneratorLoss, weighted_total
from inpaintlab.losses.perceptual import features_of, perceptual_loss, style_loss
from inpaintlab.losses.total_variation import dilate_holes, total_variation
from inpaintlab.networks.vgg import VGGFeatures
from inpaintlab.ops.compositing import composite

VGG_LAYERS = ("pool1", "pool2", "pool3")
TV_REGIONS = ("dilated_hole", "image")
# which configured weight scales each returned term
WEIGHT_OF = {
    "valid": "valid",
    "hole": "hole",
    "hole_l2": "hole_l2",
    "perceptual": "perceptual",
    "style_out": "style",
    "style_comp": "style",
    "tv": "tv",
}


class PartialConvLoss(GeneratorLoss):
    """L = valid L_valid + hole L_hole + perceptual L_perc + style (L_style_out + L_style_comp)
    + tv L_tv, the paper's weights by default, plus hole_l2 L_hole_l2 (not in the paper;
    weight 0 by default): the mean squared error on the holes, whose optimum is the
    conditional mean that PSNR rewards, where L1's is the median (for a residual over a
    classical fill, mostly 0). The paper trains without a discriminator: `adversarial_weight`
    0 by default (a module that sees a positive weight builds a PatchGAN).

    `forward(output, target, mask)` takes the generator's raw output, the ground truth and the
    mask (1 = hole) and builds the composite itself. L1 terms are size-averaged over B*C*H*W;
    perceptual and style terms sum over the feature layers (VGG16 pool1-3) for both the output
    and the composite against the ground truth, Gram matrices divided by C*H*W; TV is on the
    composite, over the 1-px dilated holes ("dilated_hole", the paper) or the whole "image".
    Output, composite and ground truth go through the feature network in one batched call.
    A term whose weight is 0 is neither computed nor returned; with perceptual and style both 0
    no feature network is built. `features` replaces the VGG (any module mapping images to a
    dict of feature maps; used by tests).

    Example:
        >>> import torch
        >>> loss = PartialConvLoss(perceptual=0.0, style=0.0)
        >>> sorted(loss(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), torch.ones(2, 1, 8, 8)))
        ['hole', 'total', 'tv', 'valid']
    """

    def __init__(
        self,
        valid: float = 1.0,
        hole: float = 6.0,
        hole_l2: float = 0.0,
        perceptual: float = 0.05,
        style: float = 120.0,
        tv: float = 0.1,
        vgg_weights: str | os.PathLike = "imagenet",
        tv_region: str = "dilated_hole",
        features: nn.Module | None = None,
        adversarial: AdversarialLoss | None = None,
        adversarial_weight: float = 0.0,
    ) -> None:
        super().__init__(adversarial, adversarial_weight)
        if tv_region not in TV_REGIONS:
            raise ConfigError(
                f"unknown tv_region {tv_region!r}; use one of {', '.join(TV_REGIONS)}"
            )
        self.weights = dict(
            valid=valid, hole=hole, hole_l2=hole_l2, perceptual=perceptual, style=style, tv=tv
        )
        self.tv_region = tv_region
        if not (perceptual or style):
            features = None
        elif features is None:
            features = VGGFeatures("vgg16", VGG_LAYERS, vgg_weights)
        self.features = features

    def extra_repr(self) -> str:
        return f"weights={self.weights}, tv_region={self.tv_region!r}, {super().extra_repr()}"

    def forward(self, output: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """{term name: unweighted value} for the non-zero weights, plus the weighted "total"."""
        composed = composite(output, target, mask)
        terms = self._pixel_terms(output, target, mask)
        if self.features is not None:
            terms.update(self._feature_terms(output, composed, target))
        if self.weights["tv"]:
            region = dilate_holes(mask) if self.tv_region == "dilated_hole" else None
            terms["tv"] = total_variation(composed, region)
        weights = {name: self.weights[WEIGHT_OF[name]] for name in terms}
        return {**terms, "total": weighted_total(terms, weights, output)}

    def _pixel_terms(self, output: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """L1 on known ("valid") and hole pixels and the squared error on hole pixels
        ("hole_l2"), each a mean over all B*C*H*W elements."""
        difference = output - target
        terms = {
            "valid": lambda: (difference.abs() * (1 - mask)).mean(),
            "hole": lambda: (difference.abs() * mask).mean(),
            "hole_l2": lambda: (difference.square() * mask).mean(),
        }
        return {name: term() for name, term in terms.items() if self.weights[name]}

    def _feature_terms(
        self, output: Tensor, composite: Tensor, target: Tensor
    ) -> dict[str, Tensor]:
        """Perceptual and style terms from a feature pass over output and composite, and one
        over the target."""
        (f_out, f_comp), (f_gt,) = features_of(self.features, [output, composite], [target])
        layers = tuple(f_gt)
        terms = {}
        if self.weights["perceptual"]:
            terms["perceptual"] = perceptual_loss(f_out, f_gt, layers) + perceptual_loss(
                f_comp, f_gt, layers
            )
        if self.weights["style"]:
            terms["style_out"] = style_loss(f_out, f_gt, layers)
            terms["style_comp"] = style_loss(f_comp, f_gt, layers)
        return terms
