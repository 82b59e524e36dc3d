"""The Context Encoder's loss: an L2 (or L1) weighted per pixel, and the adversarial term."""

from __future__ import annotations

from torch import Tensor

from inpaintlab.errors import ConfigError
from inpaintlab.losses.adversarial import AdversarialLoss
from inpaintlab.losses.generator_loss import GeneratorLoss
from inpaintlab.losses.structural import structural_loss

SETTINGS = ("center", "random_region")


def check_setting(setting: str) -> None:
    """Raise a ConfigError unless `setting` is one of the Context Encoder's SETTINGS."""
    if setting not in SETTINGS:
        raise ConfigError(f"model.setting={setting!r} is not one of {', '.join(SETTINGS)}")


def overlap_weight_map(mask_patch: Tensor, overlap_weight: float = 10.0) -> Tensor:
    """Per-pixel L2 weights: 1 on hole pixels, `overlap_weight` on known pixels of the prediction.

    Centre setting: pass the mask cropped to the predicted patch; its known pixels are the 4 px
    overlap band, weighted 10x as in Pathak et al. Full-image (random-region) setting: pass the
    whole mask with `overlap_weight` 0 (L2 on the hole only) or a small known-pixel weight.
    """
    return mask_patch + overlap_weight * (1 - mask_patch)


def context_encoder_l2(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """mean(weight * (pred - target)^2) over all elements, `weight` broadcast to the images.

    This has the gradient of the released code (MSE whose gradient is multiplied by a weight
    matrix). The 0.999 reconstruction factor is not applied here: the model applies it.
    """
    return (weight * (pred - target).square()).mean()


def weighted_l1(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """mean(weight * |pred - target|) over all elements, `weight` broadcast to the images."""
    return (weight * (pred - target).abs()).mean()


# the paper's squared error, or the absolute error (an extension: see ContextEncoderLoss)
NORMS = {"l2": context_encoder_l2, "l1": weighted_l1}


class ContextEncoderLoss(GeneratorLoss):
    """L = reconstruction_weight L_rec + adversarial_weight L_adv (0.999 and 0.001, Pathak et
    al.), L_rec the weighted L2 of `context_encoder_l2`, or with `norm="l1"` the weighted L1
    (an extension: the squared error's optimum, the mean of the plausible fills, is blurrier
    and scores a lower SSIM; the CPU preset of experiment=cpu_quality uses L1).

    `forward(pred, target, mask)` takes the prediction, what it must reproduce and the hole
    mask of that region (1 = hole). In the "center" setting these are the centre patch, whose
    known pixels (the overlap band) weigh `overlap_weight` (10 in the paper); in the
    "random_region" setting the whole image, whose known pixels weigh `known_weight` (0: the
    hole only). The module building this loss passes its `setting`. `ssim` weighs an added
    1 - SSIM of the composite (`structural_loss`; 0 in the paper's setting).

    Example:
        >>> import torch
        >>> mask = torch.tensor([[[[1.0, 0.0]]]])
        >>> loss = ContextEncoderLoss("center", reconstruction_weight=1.0)
        >>> loss(torch.zeros(1, 1, 1, 2), torch.ones(1, 1, 1, 2), mask)["reconstruction"]
        tensor(5.5000)
    """

    def __init__(
        self,
        setting: str = "center",
        reconstruction_weight: float = 0.999,
        overlap_weight: float = 10.0,
        known_weight: float = 0.0,
        adversarial: AdversarialLoss | None = None,
        adversarial_weight: float = 0.001,
        norm: str = "l2",
        ssim: float = 0.0,
    ) -> None:
        check_setting(setting)
        if norm not in NORMS:
            raise ConfigError(f"loss.norm={norm!r} is not one of {', '.join(NORMS)}")
        super().__init__(adversarial, adversarial_weight)
        self.reconstruction_weight = reconstruction_weight
        self.norm = norm
        self.ssim_weight = ssim
        self.known_pixel_weight = overlap_weight if setting == "center" else known_weight

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """{"reconstruction": L_rec, "ssim": L_ssim if weighted, "total": their weighted sum}."""
        weight = overlap_weight_map(mask, self.known_pixel_weight)
        reconstruction = NORMS[self.norm](pred, target, weight)
        terms = {"reconstruction": reconstruction}
        total = self.reconstruction_weight * reconstruction
        if self.ssim_weight:
            terms["ssim"] = structural_loss(pred, target, mask)
            total = total + self.ssim_weight * terms["ssim"]
        return {**terms, "total": total}

    def extra_repr(self) -> str:
        return (
            f"reconstruction_weight={self.reconstruction_weight}, norm={self.norm!r}, "
            f"ssim={self.ssim_weight}, "
            f"known_pixel_weight={self.known_pixel_weight}, {super().extra_repr()}"
        )
