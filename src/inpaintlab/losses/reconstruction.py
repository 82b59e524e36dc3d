"""The Context Encoder's pixel reconstruction loss: an L2 weighted per pixel."""

from torch import Tensor


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
