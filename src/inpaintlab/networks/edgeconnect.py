"""EdgeConnect's generators (Nazeri et al. 2019): the edge generator G1 and the inpainting
generator G2, both one encoder / dilated residual blocks / decoder layout built here once.

Layout: reflection pad 3, 7x7 conv to `base_channels`, two 4x4 stride-2 convs (x2 channels
each), residual blocks at 4 * `base_channels` with dilation 2, two 4x4 stride-2 transposed
convs back, reflection pad 3, 7x7 conv to the output. Every conv but the last is followed by
InstanceNorm (no affine, no running stats) and ReLU (none after a residual block's second
conv). Weights are N(0, 0.02) and biases 0 as in the released code's `init_weights`. The
convs followed by InstanceNorm have no bias: the norm subtracts each channel's mean, so a bias
there (the released code keeps some) never changes the output and never gets a gradient.
"""

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as with_spectral_norm

from inpaintlab.errors import DataError
from inpaintlab.networks.init import init_dcgan_weights
from inpaintlab.networks.prefill import Prefill, check_residual, corrected, zero_init_
from inpaintlab.ops.compositing import composite

DILATION = 2
SIDE_MULTIPLE = 4  # two stride-2 levels
# a residual block's reflection pad by DILATION needs more than DILATION pixels at 1/4 scale
MIN_SIDE = SIDE_MULTIPLE * (DILATION + 1)


def edge_generator_input(grey: Tensor, edges: Tensor, mask: Tensor) -> Tensor:
    """G1's input [grey * (1 - M) + M, edges * (1 - M), M]: white holes, no edges in them.

    Example:
        >>> mask = torch.tensor([[[[0.0, 1.0]]]])
        >>> edge_generator_input(torch.full((1, 1, 1, 2), 0.5), torch.ones(1, 1, 1, 2), mask)
        tensor([[[[0.5000, 1.0000]],
        <BLANKLINE>
                 [[1.0000, 0.0000]],
        <BLANKLINE>
                 [[0.0000, 1.0000]]]])
    """
    known = 1 - mask
    return torch.cat([grey * known + mask, edges * known, mask], dim=1)


def inpaint_generator_input(image: Tensor, edges: Tensor, mask: Tensor) -> Tensor:
    """G2's input [image * (1 - M) + M, edges]: white holes, the edges given everywhere.

    Example:
        >>> mask = torch.tensor([[[[0.0, 1.0]]]])
        >>> inpaint_generator_input(torch.full((1, 1, 1, 2), 0.5), torch.ones(1, 1, 1, 2), mask)
        tensor([[[[0.5000, 1.0000]],
        <BLANKLINE>
                 [[1.0000, 1.0000]]]])
    """
    return torch.cat([image * (1 - mask) + mask, edges], dim=1)


def composite_edges(predicted: Tensor, true_edges: Tensor, mask: Tensor) -> Tensor:
    """Predicted edges in the holes, true edges elsewhere (G2's input in stages 3 and 4).

    Example:
        >>> composite_edges(torch.zeros(1, 1, 1, 2), torch.ones(1, 1, 1, 2),
        ...                 torch.tensor([[[[0.0, 1.0]]]]))
        tensor([[[[1., 0.]]]])
    """
    return composite(predicted, true_edges, mask)


def check_side_lengths(height: int, width: int) -> None:
    """Raise a DataError unless both sides are multiples of 4 and at least MIN_SIDE."""
    if height % SIDE_MULTIPLE or width % SIDE_MULTIPLE or min(height, width) < MIN_SIDE:
        raise DataError(
            f"EdgeConnect's generators need image sides that are multiples of {SIDE_MULTIPLE} "
            f"and at least {MIN_SIDE}, got {height}x{width}: resize or pad the input"
        )


def _prepared(layer: nn.Module, spectral_norm: bool) -> nn.Module:
    """`layer` with N(0, 0.02) weights and zero bias, spectral-normalised if asked."""
    init_dcgan_weights(layer)  # before the parametrisation, so that it reaches the raw weight
    return with_spectral_norm(layer) if spectral_norm else layer


def _normed(layer: nn.Module, spectral_norm: bool, relu: bool = True) -> list[nn.Module]:
    """`layer` (a conv without bias), InstanceNorm without affine or running stats, ReLU."""
    norm = nn.InstanceNorm2d(layer.out_channels, affine=False, track_running_stats=False)
    tail = [nn.ReLU(inplace=True)] if relu else []
    return [_prepared(layer, spectral_norm), norm, *tail]


def encoder(
    in_channels: int, base_channels: int = 64, spectral_norm: bool = False
) -> nn.Sequential:
    """7x7 conv to `base_channels`, then two 4x4 stride-2 convs doubling the channels."""
    b = base_channels
    return nn.Sequential(
        nn.ReflectionPad2d(3),
        *_normed(nn.Conv2d(in_channels, b, 7, bias=False), spectral_norm),
        *_normed(nn.Conv2d(b, 2 * b, 4, 2, 1, bias=False), spectral_norm),
        *_normed(nn.Conv2d(2 * b, 4 * b, 4, 2, 1, bias=False), spectral_norm),
    )


def decoder(
    out_channels: int, base_channels: int = 64, spectral_norm: bool = False
) -> nn.Sequential:
    """Two 4x4 stride-2 transposed convs halving the channels, then a plain 7x7 conv (with bias,
    never spectral-normalised) to `out_channels` raw outputs."""
    b = base_channels
    return nn.Sequential(
        *_normed(nn.ConvTranspose2d(4 * b, 2 * b, 4, 2, 1, bias=False), spectral_norm),
        *_normed(nn.ConvTranspose2d(2 * b, b, 4, 2, 1, bias=False), spectral_norm),
        nn.ReflectionPad2d(3),
        _prepared(nn.Conv2d(b, out_channels, 7), spectral_norm=False),
    )


class ResidualBlock(nn.Module):
    """x + [reflection pad `dilation`, 3x3 conv dilated by `dilation`, IN, ReLU, reflection pad
    1, 3x3 conv, IN](x), no activation after the sum (as in the released code).

    Example:
        >>> ResidualBlock(8)(torch.rand(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(
        self, channels: int, dilation: int = DILATION, spectral_norm: bool = False
    ) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(dilation),
            *_normed(
                nn.Conv2d(channels, channels, 3, dilation=dilation, bias=False), spectral_norm
            ),
            nn.ReflectionPad2d(1),
            *_normed(nn.Conv2d(channels, channels, 3, bias=False), spectral_norm, relu=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        """The input plus the block's residual."""
        return x + self.block(x)


class EncoderDecoder(nn.Module):
    """Encoder, `residual_blocks` residual blocks, decoder: the body of both generators.

    Spectral norm, when asked, goes on every conv but the last. Returns the last conv's raw
    output at the input's size; sides must be multiples of 4 and at least MIN_SIDE.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        residual_blocks: int = 8,
        base_channels: int = 64,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        width = 4 * base_channels
        self.encoder = encoder(in_channels, base_channels, spectral_norm)
        self.middle = nn.Sequential(
            *(ResidualBlock(width, DILATION, spectral_norm) for _ in range(residual_blocks))
        )
        self.decoder = decoder(out_channels, base_channels, spectral_norm)

    def forward(self, x: Tensor) -> Tensor:
        """Raw outputs B x out_channels x H x W of inputs B x in_channels x H x W."""
        check_side_lengths(*x.shape[-2:])
        return self.decoder(self.middle(self.encoder(x)))


class EdgeGenerator(nn.Module):
    """G1: completes the edge map in the holes from the masked grey image and edges.

    `forward(grey, edges, mask)` takes B x 1 x H x W each (mask 1 = hole), builds the paper's
    input with `edge_generator_input` and returns edge probabilities in [0, 1] (sigmoid) for
    the whole image. Spectral norm on every conv but the last, as in the released code.

    Example:
        >>> g1 = EdgeGenerator(residual_blocks=1, base_channels=8)
        >>> grey, edges = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
        >>> g1(grey, edges, torch.ones(2, 1, 16, 16)).shape
        torch.Size([2, 1, 16, 16])
    """

    def __init__(
        self, residual_blocks: int = 8, base_channels: int = 64, spectral_norm: bool = True
    ) -> None:
        super().__init__()
        self.body = EncoderDecoder(3, 1, residual_blocks, base_channels, spectral_norm)

    def forward(self, grey: Tensor, edges: Tensor, mask: Tensor) -> Tensor:
        """Edge probabilities B x 1 x H x W."""
        return torch.sigmoid(self.body(edge_generator_input(grey, edges, mask)))


class InpaintGenerator(nn.Module):
    """G2: fills the holes of an image guided by a full edge map; no spectral norm.

    `forward(image, edges, mask)` takes B x C x H x W images in [0, 1], B x 1 x H x W edges
    and mask (1 = hole), builds the input with `inpaint_generator_input` and returns the
    whole predicted image (tanh + 1) / 2 in [0, 1], not yet composited with the known pixels.

    Extensions (not in the paper): `prefill` ("mean", "harmonic", "biharmonic") gives the
    network the classically filled image and the mask, [fill, edges, M], instead of white
    holes; `residual` adds the last conv's raw output (zero-initialised) to that fill inside
    the holes.

    Example:
        >>> g2 = InpaintGenerator(residual_blocks=1, base_channels=8)
        >>> g2(torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16), torch.ones(2, 1, 16, 16)).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(
        self,
        channels: int = 3,
        residual_blocks: int = 8,
        base_channels: int = 64,
        prefill: str = "none",
        residual: bool = False,
    ) -> None:
        super().__init__()
        check_residual(prefill, residual)
        self.prefill = Prefill(prefill)
        self.residual = residual
        inputs = channels + (1 if prefill == "none" else 2)
        self.body = EncoderDecoder(inputs, channels, residual_blocks, base_channels)
        if residual:
            zero_init_(self.body.decoder[-1])

    def forward(self, image: Tensor, edges: Tensor, mask: Tensor) -> Tensor:
        """Predicted image B x C x H x W (in [0, 1] unless residual)."""
        if self.prefill.kind == "none":
            return (torch.tanh(self.body(inpaint_generator_input(image, edges, mask))) + 1) / 2
        filled = self.prefill(image, mask)
        out = self.body(torch.cat([filled, edges, mask], dim=1))
        return corrected(filled, out / 2, mask) if self.residual else (torch.tanh(out) + 1) / 2
