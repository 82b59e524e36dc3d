"""Per-image PSNR, SSIM and hole L1 on composites in [0, 1], aggregated by hole-ratio bin.

Every score is computed in fp32 with autocast off, whatever the trainer's precision: under
bf16 autocast SSIM's Gaussian-window convolutions lose the local variances it compares.
"""

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.utilities import dim_zero_cat

from inpaintlab.metrics.bins import BIN_NAMES, bin_index
from inpaintlab.ops.precision import full_precision

MIN_MSE = 1e-10  # caps PSNR at 100 dB for data_range 1 when an image is reproduced exactly
SSIM_SIGMA = 1.5
SSIM_BORDER = 5  # half of the 11 px Gaussian window torchmetrics derives from sigma 1.5


@full_precision
def psnr_per_image(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR (dB) of each image, from its MSE over all pixels and channels; shape B."""
    mse = (pred - target).square().flatten(1).mean(1).clamp_min(MIN_MSE)
    return 10 * torch.log10(data_range**2 / mse)


@full_precision
def ssim_per_image(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Standard SSIM of each image (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03); shape B.

    The SSIM map is averaged over channels and the window positions that lie inside the image
    (a 5 px border is dropped), as in Wang et al.'s MATLAB code and skimage. torchmetrics'
    own reduction also averages the reflect-padded border, which moves small images' scores.
    """
    _, ssim_map = structural_similarity_index_measure(
        pred,
        target,
        gaussian_kernel=True,
        sigma=SSIM_SIGMA,
        data_range=data_range,
        k1=0.01,
        k2=0.03,
        return_full_image=True,
    )
    return ssim_map[..., SSIM_BORDER:-SSIM_BORDER, SSIM_BORDER:-SSIM_BORDER].mean((1, 2, 3))


@full_precision
def hole_l1_per_image(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean |pred - target| over each image's hole pixels and channels; nan with no hole."""
    error = ((pred - target).abs() * mask).sum((1, 2, 3))
    area = mask.sum((1, 2, 3)) * pred.shape[1]
    return torch.where(area > 0, error / area, torch.nan)


@full_precision
def image_scores(pred: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Per-image psnr, ssim, hole_l1x100 (hole L1 x 100) and hole_ratio of composites `pred`."""
    pred, target, mask = (t.detach() for t in (pred, target, mask))
    return {
        "psnr": psnr_per_image(pred, target),
        "ssim": ssim_per_image(pred, target),
        "hole_l1x100": 100 * hole_l1_per_image(pred, target, mask),
        "hole_ratio": mask.flatten(1).mean(1),
    }


def bin_groups(hole_ratio: Tensor) -> dict[str, Tensor]:
    """{"all": every image, bin name: the images in that bin} as bool masks; empty bins left out."""
    bins = bin_index(hole_ratio)
    groups = {"all": torch.ones_like(bins, dtype=torch.bool)}
    groups |= {name: bins == i for i, name in enumerate(BIN_NAMES)}
    return {name: members for name, members in groups.items() if members.any()}


def group_means(values: dict[str, Tensor], hole_ratio: Tensor) -> dict[str, dict[str, float]]:
    """{group: {"count": images, name: mean of values[name]}} for the groups of `bin_groups`.

    NaN values (hole L1 of an image without a hole) are left out of the means; a metric
    with no value in a group is left out of that group.
    """
    results: dict[str, dict[str, float]] = {}
    for group, members in bin_groups(hole_ratio).items():
        row = {"count": float(members.sum())}
        for name, value in values.items():
            kept = value[members]
            kept = kept[~kept.isnan()]
            if kept.numel():
                row[name] = kept.double().mean().item()
        results[group] = row
    return results


class BinnedMetrics(Metric):
    """PSNR, SSIM and hole L1 x 100 per image, averaged overall and per hole-ratio bin.

    `compute()` returns floats keyed "psnr/<group>", "ssim/<group>", "hole_l1x100/<group>"
    (hole L1 in [0, 1] units times 100, as the papers report it) and "count/<group>", where
    <group> is "all" or a name from `BIN_NAMES`. Bins with no images are left out, and images
    without a hole are left out of the hole L1 means. Per-image values are kept as "cat"
    states, so the results cover all processes under DDP.
    """

    full_state_update = False
    _VALUES = ("psnr", "ssim", "hole_l1x100", "hole_ratio")

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in self._VALUES:
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, pred: Tensor, target: Tensor, mask: Tensor) -> None:
        """Add a batch of composites `pred`, ground truths `target` and hole masks `mask`."""
        scores = image_scores(pred, target, mask)
        for name in self._VALUES:
            getattr(self, name).append(scores[name])

    def _gathered(self) -> dict[str, Tensor]:
        """Each state as one CPU tensor (empty before any update)."""
        return {
            name: dim_zero_cat(state).cpu() if len(state) else torch.empty(0)
            for name in self._VALUES
            for state in [getattr(self, name)]
        }

    def compute(self) -> dict[str, float]:
        """Means by group and image counts, as described in the class docstring."""
        values = self._gathered()
        hole_ratio = values.pop("hole_ratio")
        groups = group_means(values, hole_ratio)
        return {
            f"{name}/{group}": value for group, row in groups.items() for name, value in row.items()
        }

    def per_image_records(self) -> list[dict[str, float | str]]:
        """One dict per image (psnr, ssim, hole_l1x100, hole_ratio, bin), e.g. for a CSV file."""
        with self.sync_context():
            values = self._gathered()
        columns: dict[str, list] = {name: value.tolist() for name, value in values.items()}
        columns["bin"] = [BIN_NAMES[i] for i in bin_index(values["hole_ratio"]).tolist()]
        return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
