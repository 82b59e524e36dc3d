"""Partial Convolution U-Net (Liu et al., ECCV 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlab.errors import ConfigError, DataError
from inpaintlab.networks.partial_conv import PartialConv2d

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
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ConfigError(f"PConvUNet depth must be at least 1, got {depth}")
        self.depth = depth
        self.freeze_encoder_bn = freeze_encoder_bn
        widths = [min(base_channels * 2**i, max_channels) for i in range(depth)]
        kernels = [FIRST_KERNELS[i] if i < len(FIRST_KERNELS) else 3 for i in range(depth)]
        skips = [channels, *widths[:-1]]  # what each decoder level concatenates
        self.encoder = nn.ModuleList(
            PConvBlock(c_in, c_out, k, 2, i > 0, nn.ReLU(inplace=True), multi_channel=False)
            for i, (c_in, c_out, k) in enumerate(zip(skips, widths, kernels, strict=True))
        )
        self.decoder = nn.ModuleList(
            PConvBlock(
                c_deep + c_skip,
                c_skip,
                3,
                1,
                batch_norm=i > 0,
                activation=nn.LeakyReLU(0.2, inplace=True) if i > 0 else None,
                multi_channel=True,
            )
            for i, (c_deep, c_skip) in enumerate(zip(widths, skips, strict=True))
        )
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
        valid = 1 - mask
        x = image * 2 - 1
        skips = [(x, valid)]
        for block in self.encoder:
            x, valid = block(x, valid)
            skips.append((x, valid))
        skips.pop()  # the deepest level is the decoder's input, not a skip
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
        return (x + 1) / 2

    def _check_size(self, image: Tensor) -> None:
        multiple = 2**self.depth
        height, width = image.shape[-2:]
        if height % multiple or width % multiple:
            raise DataError(
                f"the PConv U-Net with depth {self.depth} needs image sides divisible by "
                f"{multiple}, got {height}x{width}: resize or pad the input"
            )


def per_channel_mask(upper: Tensor, upper_channels: int, skip: Tensor, skip_channels: int):
    """The mask of concatenated features: each one-channel mask repeated over its channels."""
    return torch.cat(
        [upper.expand(-1, upper_channels, -1, -1), skip.expand(-1, skip_channels, -1, -1)], dim=1
    )
