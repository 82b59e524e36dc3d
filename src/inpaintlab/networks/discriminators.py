"""Discriminators: the Context Encoder's DCGAN one (with the stride-2 conv stack it shares with
its generator) and the PatchGAN used by EdgeConnect and the optional PConv adversarial term."""

from collections.abc import Sequence

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as with_spectral_norm

from inpaintlab.errors import ConfigError
from inpaintlab.networks.init import init_dcgan_weights


def halvings_to_4x4(size: int, minimum: int) -> int:
    """Number of stride-2 layers that take a `size` x `size` map down to 4 x 4."""
    if size < minimum or size & (size - 1):
        nearest = max(minimum, 1 << max(size, 1).bit_length() - 1)
        raise ConfigError(
            f"image size {size} is not a power of two >= {minimum}, which these networks need: "
            f"set data.image_size={nearest} (or another such power)"
        )
    return size.bit_length() - 3


def dcgan_encoder(in_channels: int, widths: Sequence[int]) -> nn.Sequential:
    """4x4 stride-2 convs to `widths`, LeakyReLU 0.2, BatchNorm on all but the first layer."""
    layers: list[nn.Module] = []
    for i, width in enumerate(widths):
        norm = i > 0
        layers.append(nn.Conv2d(in_channels, width, 4, 2, 1, bias=not norm))
        if norm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        in_channels = width
    return nn.Sequential(*layers)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: stride-2 convs down to 4 x 4, then a 4x4 valid conv to one logit.

    At `input_size` 64 (the centre patch) the widths are 64, 128, 256, 512 as in Pathak et al.;
    each doubling of the input adds one layer, widths capped at `max_channels`. Takes images in
    [0, 1] (shifted to [-1, 1] inside, as the released code's discriminator saw them) and
    returns raw logits of shape B.

    Example:
        >>> import torch
        >>> d = DCGANDiscriminator(input_size=64)
        >>> d(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2])
    """

    def __init__(
        self,
        input_size: int = 64,
        channels: int = 3,
        base_channels: int = 64,
        max_channels: int = 512,
    ) -> None:
        super().__init__()
        levels = halvings_to_4x4(input_size, minimum=8)
        widths = [min(base_channels * 2**i, max_channels) for i in range(levels)]
        self.features = dcgan_encoder(channels, widths)
        self.head = nn.Conv2d(widths[-1], 1, 4)
        init_dcgan_weights(self)

    def forward(self, image: Tensor) -> Tensor:
        """Logits (B,) for images B x C x input_size x input_size in [0, 1]."""
        return self.head(self.features(image * 2 - 1)).flatten()


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator: 4x4 convs to 64/2, 128/2, 256/2, 512/1, then 1/1 (one logit per
    overlapping 70 x 70 patch), LeakyReLU 0.2, no normalisation layers, spectral norm on every
    conv when `spectral_norm` (EdgeConnect, Nazeri et al. 2019; biases are dropped then, as in
    its released code).

    `forward` returns the logit map B x 1 x h x w; `forward_with_features` also returns the
    activations of every layer, for a feature-matching loss. Takes inputs in [0, 1] as they are.

    Example:
        >>> import torch
        >>> d = PatchDiscriminator(channels=3)
        >>> d(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 1, 6, 6])
    """

    def __init__(
        self, channels: int = 3, base_channels: int = 64, spectral_norm: bool = True
    ) -> None:
        super().__init__()
        widths = [base_channels * m for m in (1, 2, 4, 8)] + [1]
        strides = (2, 2, 2, 1, 1)
        layers: list[nn.Module] = []
        for i, (width, stride) in enumerate(zip(widths, strides, strict=True)):
            conv = nn.Conv2d(channels, width, 4, stride, 1, bias=not spectral_norm)
            conv = with_spectral_norm(conv) if spectral_norm else conv
            last = i == len(widths) - 1
            layers.append(conv if last else nn.Sequential(conv, nn.LeakyReLU(0.2, inplace=True)))
            channels = width
        self.layers = nn.ModuleList(layers)

    def forward_with_features(self, image: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logit map and the output of every layer (the last one is the logit map)."""
        features = []
        for layer in self.layers:
            image = layer(image)
            features.append(image)
        return image, features

    def forward(self, image: Tensor) -> Tensor:
        """Logit map B x 1 x h x w."""
        return self.forward_with_features(image)[0]
