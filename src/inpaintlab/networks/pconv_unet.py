"""Partial Convolution U-Net (Liu et al., ECCV 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlab.errors import ConfigError, DataError
from inpaintlab.networks.partial_conv import PartialConv2d
from inpaintlab.networks.prefill import Prefill, check_residual, corrected, zero_init_

# kernel sizes of the first encoder levels (Liu et al.); every deeper level uses 3x3
FIRST_KERNELS = (7, 5, 5)


class PConvBlock(nn.Module):
    """Partial convolution, optional BatchNorm, optional activation; carries the valid mask."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        batch_norm: bool,
        activation: nn.Module | None,
        multi_channel: bool,
    ) -> None:
        super().__init__()
        self.conv = PartialConv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=not batch_norm,
            multi_channel=multi_channel,
        )
        self.norm = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.activation = activation or nn.Identity()

    def forward(self, x: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        x, valid = self.conv(x, valid)
        return self.activation(self.norm(x)), valid


class PConvUNet(nn.Module):
    """U-Net of partial convolutions: `depth` stride-2 encoder levels, nearest-upsampling decoder.

    Encoder (Liu et al.): 7x7/2 to 64 (no BatchNorm), 5x5/2 to 128, 5x5/2 to 256, 3x3/2 to 512,
    then 3x3/2 at 512 for the remaining levels (7 levels at 256 px, 8 at 512), BN + ReLU.
    Decoder: nearest x2 upsampling of features and mask, concatenation with the skip's
    features and mask, partial conv 3x3, BN, LeakyReLU 0.2; the last level concatenates the
    input image and outputs `channels` with a bias and no BN or activation.

    forward(image, mask) takes images in [0, 1] and the project's hole mask (1 = hole), which
    is inverted to the layers' valid mask here. It returns the raw prediction of the whole
    image (about [0, 1]; not clamped, so that the losses see its gradient everywhere).
    Input sides must be multiples of 2^depth. `freeze_encoder_bn` keeps the encoder's
    BatchNorm layers in eval mode with frozen affine parameters (the paper's fine-tuning).
    Extensions (not in the paper): with `prefill` ("mean", "harmonic" or "biharmonic") the
    last decoder level also concatenates the classically filled image, every pixel of it
    valid (all other layers still see only the known pixels); with `residual` that layer
    starts at zero and its output corrects the fill inside the holes.

    Example:
        >>> net = PConvUNet(depth=4, base_channels=8)
        >>> net(torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)).shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(
        self,
        channels: int = 3,
        depth: int = 7,
        base_channels: int = 64,
        max_channels: int = 512,
        freeze_encoder_bn: bool = False,
        prefill: str = "none",
        residual: bool = False,
    ) -> None:
        super().__init__()
        check_residual(prefill, residual)
        if depth < 1:
            raise ConfigError(f"PConvUNet depth must be at least 1, got {depth}")
        self.depth = depth
        self.freeze_encoder_bn = freeze_encoder_bn
        widths = [min(base_channels * 2**i, max_channels) for i in range(depth)]
        kernels = [FIRST_KERNELS[i] if i < len(FIRST_KERNELS) else 3 for i in range(depth)]
        outputs = [channels, *widths[:-1]]  # each decoder level's output, the encoder's input
        skips = list(outputs)  # what each decoder level concatenates
        if prefill != "none":
            skips[0] += channels  # the prefilled image beside the input image
        self.encoder = nn.ModuleList(
            PConvBlock(c_in, c_out, k, 2, i > 0, nn.ReLU(inplace=True), multi_channel=False)
            for i, (c_in, c_out, k) in enumerate(zip(outputs, widths, kernels, strict=True))
        )
        self.decoder = nn.ModuleList(
            PConvBlock(
                c_deep + c_skip,
                c_out,
                3,
                1,
                batch_norm=i > 0,
                activation=nn.LeakyReLU(0.2, inplace=True) if i > 0 else None,
                multi_channel=True,
            )
            for i, (c_deep, c_skip, c_out) in enumerate(zip(widths, skips, outputs, strict=True))
        )
        self.prefill = Prefill(prefill)
        self.residual = residual
        if residual:
            zero_init_(self.decoder[0].conv)
        if freeze_encoder_bn:
            self._freeze_encoder_bn()

    def _freeze_encoder_bn(self) -> None:
        for module in self.encoder.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.requires_grad_(False)

    def train(self, mode: bool = True) -> PConvUNet:
        """Train/eval mode; frozen encoder BatchNorm layers stay in eval mode."""
        super().train(mode)
        if self.freeze_encoder_bn:
            for module in self.encoder.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        """Raw prediction B x C x H x W for `image` with holes where `mask` is 1."""
        self._check_size(image)
        filled = None if self.prefill.kind == "none" else self.prefill(image, mask)
        valid = 1 - mask
        x = image * 2 - 1
        skips = [(x, valid)]
        for block in self.encoder:
            x, valid = block(x, valid)
            skips.append((x, valid))
        skips.pop()  # the deepest level is the decoder's input, not a skip
        if filled is not None:
            skips[0] = with_fill(*skips[0], filled * 2 - 1)
        for block in reversed(self.decoder):
            skip_x, skip_valid = skips.pop()
            x = torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), skip_x], dim=1)
            valid = per_channel_mask(
                F.interpolate(valid, scale_factor=2.0, mode="nearest"),
                x.shape[1] - skip_x.shape[1],
                skip_valid,
                skip_x.shape[1],
            )
            x, valid = block(x, valid)
        if self.residual:
            return corrected(filled, x / 2, mask)
        return (x + 1) / 2

    def _check_size(self, image: Tensor) -> None:
        multiple = 2**self.depth
        height, width = image.shape[-2:]
        if height % multiple or width % multiple:
            raise DataError(
                f"the PConv U-Net with depth {self.depth} needs image sides divisible by "
                f"{multiple}, got {height}x{width}: resize or pad the input"
            )


def with_fill(x: Tensor, valid: Tensor, filled: Tensor) -> tuple[Tensor, Tensor]:
    """The input level's skip with the filled image beside it: per-channel masks, every
    filled pixel valid."""
    channels = x.shape[1]
    masks = [valid.expand(-1, channels, -1, -1), torch.ones_like(filled)]
    return torch.cat([x, filled], dim=1), torch.cat(masks, dim=1)


def per_channel_mask(upper: Tensor, upper_channels: int, skip: Tensor, skip_channels: int):
    """The mask of concatenated features: each one-channel mask repeated over its channels
    (a skip mask that already has one channel per feature is kept as it is)."""
    return torch.cat(
        [upper.expand(-1, upper_channels, -1, -1), skip.expand(-1, skip_channels, -1, -1)], dim=1
    )
