"""EdgeConnect's generator losses (Nazeri et al. 2019): the edge model's adversarial and
discriminator feature-matching terms, the inpainting model's L1, perceptual, style and
adversarial terms (and an optional SSIM term, not in the paper)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlab.losses.adversarial import AdversarialLoss
from inpaintlab.losses.generator_loss import GeneratorLoss, weighted_total
from inpaintlab.losses.perceptual import features_of, perceptual_loss, style_loss
from inpaintlab.losses.structural import structural_loss
from inpaintlab.networks.vgg import VGGFeatures

PERCEPTUAL_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE_LAYERS = ("relu2_2", "relu3_4", "relu4_4", "relu5_2")
# feature term name -> (loss on two feature dicts, the layers it sums over)
FEATURE_TERMS = {
    "perceptual": (perceptual_loss, PERCEPTUAL_LAYERS),
    "style": (style_loss, STYLE_LAYERS),
}


def feature_matching_loss(
    fake_features: Sequence[Tensor], real_features: Sequence[Tensor]
) -> Tensor:
    """Sum over discriminator layers of the mean |fake - real|, the real features detached
    (they are targets: no gradient reaches the discriminator's pass on real data).

    EdgeConnect's edge generator loss is adversarial + 10 x this, over every layer that
    `PatchDiscriminator.forward_with_features` returns (the logit map included, as released).

    Example:
        >>> feature_matching_loss([torch.zeros(2), torch.ones(3)], [torch.ones(2), torch.ones(3)])
        tensor(1.)
    """
    pairs = zip(fake_features, real_features, strict=True)
    return torch.stack([F.l1_loss(fake, real.detach()) for fake, real in pairs]).sum()


class EdgeConnectEdgeLoss(GeneratorLoss):
    """The edge generator's loss: feature_matching L_FM + adversarial_weight L_adv, the
    paper's weights by default (10 and 1).

    `forward(fake_features, real_features)` takes the edge discriminator's features of the
    fake and the real (grey image, edges) pairs; `with_adversarial` adds L_adv.

    Example:
        >>> EdgeConnectEdgeLoss()([torch.zeros(2)], [torch.ones(2)])
        {'feature_matching': tensor(1.), 'total': tensor(10.)}
    """

    def __init__(
        self,
        feature_matching: float = 10.0,
        adversarial: AdversarialLoss | None = None,
        adversarial_weight: float = 1.0,
    ) -> None:
        super().__init__(adversarial, adversarial_weight)
        self.feature_matching = feature_matching

    def forward(
        self, fake_features: Sequence[Tensor], real_features: Sequence[Tensor]
    ) -> dict[str, Tensor]:
        """{"feature_matching": L_FM, "total": its weighted value}."""
        matching = feature_matching_loss(fake_features, real_features)
        return {"feature_matching": matching, "total": self.feature_matching * matching}

    def extra_repr(self) -> str:
        return f"feature_matching={self.feature_matching}, {super().extra_repr()}"


class EdgeConnectInpaintLoss(GeneratorLoss):
    """The inpainting generator's loss: l1 L_l1 + perceptual L_perc + style L_style
    + adversarial_weight L_adv, the paper's weights by default (style 250, confirmed by the
    authors; adversarial 0.1).

    `forward(output, target, mask)` takes G2's raw output, the ground truth and the mask
    (1 = hole). "l1" is the mean |output - target| over the whole image divided by the hole
    fraction of the batch, as in the released code (a batch without holes leaves it unscaled).
    "perceptual" sums the mean L1 between VGG19 relu1_1..relu5_1 features of output and target;
    "style" sums the mean L1 between Gram matrices of relu2_2, relu3_4, relu4_4 and relu5_2
    features of output * mask and target * mask (the released code's style is on the holes).
    All images go through the feature network in one batched call. A term whose weight is 0 is
    neither computed nor returned; with perceptual and style both 0 no VGG is built.
    `features` replaces the VGG: any module mapping images to a dict holding those layers.
    "ssim" (weight 0 in the paper's setting) is 1 - the SSIM of the composite, as scored
    (`structural_loss`).

    The adversarial term is added by `with_adversarial` from the discriminator's logits (the
    LightningModule owns the discriminator). The released code fed VGG19 unnormalised [0, 1]
    images; here VGGFeatures normalises with the ImageNet statistics that torchvision's
    weights expect.

    Example:
        >>> loss = EdgeConnectInpaintLoss(perceptual=0.0, style=0.0)
        >>> mask = torch.zeros(1, 1, 4, 4)
        >>> mask[..., :2, :] = 1  # half the pixels are holes: the L1 is doubled
        >>> loss(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.25), mask)
        {'l1': tensor(0.5000), 'total': tensor(0.5000)}
    """

    def __init__(
        self,
        l1: float = 1.0,
        perceptual: float = 0.1,
        style: float = 250.0,
        vgg_weights: str | os.PathLike = "imagenet",
        features: nn.Module | None = None,
        adversarial: AdversarialLoss | None = None,
        adversarial_weight: float = 0.1,
        ssim: float = 0.0,
    ) -> None:
        super().__init__(adversarial, adversarial_weight)
        self.weights = dict(l1=l1, perceptual=perceptual, style=style, ssim=ssim)
        if not (perceptual or style):
            features = None
        elif features is None:
            features = VGGFeatures("vgg19", PERCEPTUAL_LAYERS + STYLE_LAYERS, vgg_weights)
        self.features = features

    def extra_repr(self) -> str:
        return f"weights={self.weights}, {super().extra_repr()}"

    def forward(self, output: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """{term name: unweighted value} for the non-zero weights, plus the weighted "total"."""
        terms = {}
        if self.weights["l1"]:
            terms["l1"] = _hole_scaled_l1(output, target, mask)
        if self.weights["ssim"]:
            terms["ssim"] = structural_loss(output, target, mask)
        if self.features is not None:
            terms.update(self._feature_terms(output, target, mask))
        return {**terms, "total": weighted_total(terms, self.weights, output)}

    def _feature_terms(self, output: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Perceptual and style terms (those weighted) from two feature passes: fakes, reals."""
        pairs = {"perceptual": (output, target), "style": (output * mask, target * mask)}
        names = [name for name in FEATURE_TERMS if self.weights[name]]
        fakes, reals = features_of(
            self.features, [pairs[name][0] for name in names], [pairs[name][1] for name in names]
        )
        terms = {}
        for name, fake, real in zip(names, fakes, reals, strict=True):
            loss, layers = FEATURE_TERMS[name]
            terms[name] = loss(fake, real, layers)
        return terms


def _hole_scaled_l1(output: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean |output - target| divided by the mean of the mask (by 1 when it has no holes)."""
    fraction = mask.mean()
    return F.l1_loss(output, target) / torch.where(fraction > 0, fraction, 1.0)
