"""Context Encoder generator (Pathak et al., CVPR 2016) and helpers for its centre patch."""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from inpaintlab.errors import ConfigError, DataError
from inpaintlab.networks.discriminators import dcgan_encoder, halvings_to_4x4
from inpaintlab.networks.init import init_dcgan_weights
from inpaintlab.networks.prefill import Prefill, check_residual, corrected, zero_init_

# Pathak et al.'s released code fills the hole with the ImageNet mean colour (117, 104, 123).
IMAGENET_MEAN_FILL = (117 / 255, 104 / 255, 123 / 255)


def center_patch_box(image_size: int) -> tuple[int, int, int]:
    """(top, left, size) of the centred image_size/2 square predicted in the centre setting."""
    size = image_size // 2
    offset = (image_size - size) // 2
    return offset, offset, size


def crop_center_patch(x: Tensor) -> Tensor:
    """The centre patch (see `center_patch_box`) of a B x C x S x S image or mask."""
    top, left, size = center_patch_box(x.shape[-1])
    return x[..., top : top + size, left : left + size]


def paste_center_patch(image: Tensor, patch: Tensor) -> Tensor:
    """A copy of `image` with its centre patch replaced by `patch` (differentiable in both)."""
    top, left, size = center_patch_box(image.shape[-1])
    out = image.clone()
    out[..., top : top + size, left : left + size] = patch
    return out


class ChannelWiseFC(nn.Module):
    """The paper's channel-wise fully connected layer: each channel gets its own dense map over
    its spatial positions; channels never mix (that is left to the 1x1 conv after it).

    Weights are N(0, 0.02) like every other DCGAN layer, biases zero.
    """

    def __init__(self, channels: int, spatial_size: int, std: float = 0.02) -> None:
        super().__init__()
        positions = spatial_size * spatial_size
        self.weight = nn.Parameter(torch.empty(channels, positions, positions))
        self.bias = nn.Parameter(torch.zeros(channels, positions))
        nn.init.normal_(self.weight, 0.0, std)

    def forward(self, x: Tensor) -> Tensor:
        """Apply channel c's positions x positions matrix to channel c of B x C x H x W."""
        flat = torch.einsum("bci,coi->bco", x.flatten(2), self.weight) + self.bias
        return flat.reshape(x.shape)


def _up_block(in_channels: int, out_channels: int, kernel: int, stride: int, padding: int):
    """Transposed conv, BatchNorm and ReLU: one decoder layer."""
    return [
        nn.ConvTranspose2d(in_channels, out_channels, kernel, stride, padding, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def _bottleneck(kind: str, width: int, bottleneck: int) -> nn.Sequential:
    """Maps the encoder's 4 x 4 x width output to the decoder's 4 x 4 x width input."""
    if kind == "conv":  # released code: 4x4 valid conv to 1 x 1 x bottleneck and back
        return nn.Sequential(
            nn.Conv2d(width, bottleneck, 4, bias=False),
            nn.BatchNorm2d(bottleneck),
            nn.LeakyReLU(0.2, inplace=True),
            *_up_block(bottleneck, width, 4, 1, 0),
        )
    if kind == "channel_fc":  # paper: channel-wise FC, then a stride-1 conv to mix channels
        return nn.Sequential(ChannelWiseFC(width, 4), *_up_block(width, width, 1, 1, 0))
    raise ConfigError(f"unknown bottleneck_type {kind!r}; use 'conv' or 'channel_fc'")


def _decoder(widths: Sequence[int], channels: int, residual: bool, skips: bool) -> nn.Sequential:
    """4x4 stride-2 transposed convs through `widths` to `channels`: Tanh out, or a raw
    residual from a zero-initialised last layer. With `skips` each transposed conv also takes
    the encoder's output of its input's size, as many channels again."""
    inputs = [2 * width if skips else width for width in widths]
    layers: list[nn.Module] = []
    for in_width, out_width in zip(inputs[:-1], widths[1:], strict=True):
        layers += _up_block(in_width, out_width, 4, 2, 1)
    layers.append(nn.ConvTranspose2d(inputs[-1], channels, 4, 2, 1))
    if not residual:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def _fill_colour(fill_value: Sequence[float], channels: int) -> Tensor:
    """The fill colour as a 1 x C x 1 x 1 tensor; one channel gets the mean of `fill_value`."""
    values = torch.tensor(fill_value, dtype=torch.float32)
    if channels == 1:
        values = values.mean(0, keepdim=True)
    elif values.numel() == 1:
        values = values.expand(channels)
    elif values.numel() != channels:
        raise ConfigError(f"fill_value has {values.numel()} values for {channels} channels")
    return values.reshape(1, channels, 1, 1)


class ContextEncoderGenerator(nn.Module):
    """Context Encoder generator: conv encoder, bottleneck, transposed-conv decoder.

    Encoder: 4x4 stride-2 convs from `image_size` down to 4 x 4 with widths base, base, 2 base,
    4 base, ... capped at `max_channels` (at 128: 64, 64, 128, 256, 512), the first without
    BatchNorm, all with LeakyReLU 0.2. Bottleneck `"conv"` (released code): 4x4 valid conv to
    `bottleneck` channels, BN + LeakyReLU, then a 4x4 transposed conv back to 4 x 4;
    `"channel_fc"` (paper): channel-wise FC + 1x1 conv (`bottleneck` is unused). Decoder: 4x4
    stride-2 transposed convs mirroring the encoder widths, BN + ReLU, Tanh out, up to
    image_size / 2 (`output="center"`, the centre patch) or image_size (`output="full"`, the
    random-region setting, reported hard to train).

    forward(image, mask) takes images in [0, 1] (masked or not) and a B x 1 x H x W mask
    (1 = hole); it overwrites the hole pixels with `fill_value` (the dataset mean colour), so
    they never reach the network, and returns the raw prediction in [0, 1]: the centre patch
    (see `center_patch_box`) or the full image. Compositing with the known pixels is the
    caller's job. Extensions (not in the paper): `prefill` ("mean", "harmonic",
    "biharmonic"; see `Prefill`) fills the holes classically instead of with `fill_value`;
    `residual` adds the decoder's raw output (its last layer zero-initialised, no Tanh) to
    that fill inside the holes, so an untrained generator returns the fill itself;
    `mask_input` gives the encoder the mask as one more channel (the paper's encoder sees
    only the filled image, so behind a classical fill it cannot tell where the holes are);
    `skips` concatenates each encoder output to the decoder input of the same size, a U-Net
    around the bottleneck (full output only: the centre patch's decoder has no encoder
    output of its own area).

    Example:
        >>> import torch
        >>> g = ContextEncoderGenerator(image_size=64, base_channels=8, bottleneck=32)
        >>> g(torch.rand(2, 3, 64, 64), torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(
        self,
        image_size: int = 128,
        channels: int = 3,
        base_channels: int = 64,
        bottleneck: int = 4000,
        bottleneck_type: str = "conv",
        output: str = "center",
        fill_value: Sequence[float] = IMAGENET_MEAN_FILL,
        max_channels: int = 512,
        prefill: str = "none",
        residual: bool = False,
        mask_input: bool = False,
        skips: bool = False,
    ) -> None:
        super().__init__()
        check_residual(prefill, residual)
        if output not in ("center", "full"):
            raise ConfigError(f"unknown output {output!r}; use 'center' or 'full'")
        if skips and output == "center":
            raise ConfigError(
                "model.generator.skips=true needs the full-image output: use "
                "model.setting=random_region (or a mask other than center)"
            )
        self.image_size = image_size
        self.output = output
        self.residual = residual
        self.mask_input = mask_input
        self.skips = skips
        self.prefill = Prefill(prefill)
        levels = halvings_to_4x4(image_size, minimum=32)
        widths = [min(base_channels * 2 ** max(i - 1, 0), max_channels) for i in range(levels)]
        up_levels = levels - 1 if output == "center" else levels
        self.encoder = dcgan_encoder(channels + mask_input, widths)
        self.bottleneck = _bottleneck(bottleneck_type, widths[-1], bottleneck)
        self.decoder = _decoder(widths[::-1][:up_levels], channels, residual, skips)
        self.register_buffer("fill", _fill_colour(fill_value, channels), persistent=False)
        init_dcgan_weights(self)
        if residual:
            zero_init_(self.decoder[-1])

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        """Predicted centre patch or full image in [0, 1] (see the class docstring)."""
        if image.shape[-2:] != (self.image_size, self.image_size):
            raise DataError(
                f"Context Encoder built for {self.image_size} px images got "
                f"{tuple(image.shape[-2:])}; resize the input to {self.image_size}"
            )
        filled = self._fill_holes(image, mask)
        x = filled * 2 - 1
        if self.mask_input:
            x = torch.cat([x, mask.to(x.dtype)], dim=1)
        out = self._decode(self._encode(x))
        if not self.residual:
            return (out + 1) / 2
        if self.output == "full":
            return corrected(filled, out / 2, mask)
        return corrected(crop_center_patch(filled), out / 2, crop_center_patch(mask))

    def _encode(self, x: Tensor) -> list[Tensor]:
        """The output of every encoder level, finest first."""
        levels = []
        for layer in self.encoder:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                levels.append(x)
        return levels

    def _decode(self, levels: list[Tensor]) -> Tensor:
        """The bottleneck and the decoder, each transposed conv taking its skip if asked."""
        x = self.bottleneck(levels[-1])
        for layer in self.decoder:
            if self.skips and isinstance(layer, nn.ConvTranspose2d):
                x = torch.cat([x, levels.pop()], dim=1)
            x = layer(x)
        return x

    def _fill_holes(self, image: Tensor, mask: Tensor) -> Tensor:
        """The encoder's input: the holes filled with `fill_value` or by the prefill."""
        if self.prefill.kind == "none":
            return torch.where(mask.bool(), self.fill.to(image.dtype), image)
        return self.prefill(image, mask)
