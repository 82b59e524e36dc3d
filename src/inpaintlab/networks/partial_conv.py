"""Partial convolution (Liu et al., ECCV 2018): a convolution that only sees valid pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlab.ops.precision import autocast_off

_HALF_DTYPES = (torch.float16, torch.bfloat16)


def window_sums(
    mask: Tensor,
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...] | str,
    dilation: tuple[int, ...],
) -> Tensor:
    """Sum of a B x 1 x H x W mask over every convolution window, zero padded (exact for 0/1)."""
    # A 1 x 1 x kh x kw ones kernel beat avg_pool2d(divisor_override=1) on CPU at the U-Net's
    # sizes, and it handles dilation and any padding with one code path.
    ones = mask.new_ones(1, 1, *kernel_size)
    return F.conv2d(mask, ones, None, stride, padding, dilation)


def _is_half_precision(x: Tensor) -> bool:
    """Whether `x` is (or its convolution will be computed) in float16/bfloat16."""
    return x.dtype in _HALF_DTYPES or torch.is_autocast_enabled(x.device.type)


class PartialConv2d(nn.Conv2d):
    """Partial convolution: renormalised over the valid pixels of each window, updates the mask.

    Mask convention: M = 1 for VALID pixels, 0 for holes (the paper's). The project's masks
    use 1 = hole, so the PConv U-Net passes ``1 - mask`` at its input. With ``sumM`` the sum
    of M over a window (over all input channels for a per-channel mask) and ``window_size``
    the number of pixels it sums (``C_in * kh * kw`` per-channel, ``kh * kw`` otherwise)::

        ratio = window_size / (sumM + eps) * clamp(sumM, 0, 1)
        out = ((conv(X * M) - bias) * ratio + bias) * clamp(sumM, 0, 1)
        new_mask = clamp(sumM, 0, 1)

    so a window without a valid pixel outputs exactly 0 (no bias) and stays a hole, and
    zero padding counts as hole (border windows are renormalised over fewer pixels).

    ``mask`` is B x 1 x H x W (one mask for every input channel; ``multi_channel=False``) or
    B x C_in x H x W (one per channel; ``multi_channel=True``); any other shape raises
    ValueError rather than being guessed. ``new_mask`` is always B x 1 x H' x W': the paper's
    updated mask is the same for every output channel. Masks should be in [0, 1] (binary in
    the paper); the mask maths runs without autograd in float32 (float64 for float64 inputs),
    and ``new_mask`` has that dtype. Under autocast or for float16/bfloat16 inputs ``eps`` is
    ``mixed_precision_eps``, and the float32 ratio is cast to the output dtype.

    Example:
        >>> layer = PartialConv2d(3, 8, 3, padding=1)
        >>> valid = torch.ones(2, 1, 16, 16)
        >>> valid[:, :, 4:12, 4:12] = 0  # an 8 x 8 hole
        >>> out, new_valid = layer(torch.rand(2, 3, 16, 16), valid)
        >>> tuple(out.shape), tuple(new_valid.shape)
        ((2, 8, 16, 16), (2, 1, 16, 16))
        >>> int(16 * 16 - new_valid[0].sum())  # the hole lost one pixel on each side
        36
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        multi_channel: bool = False,
        eps: float = 1e-8,
        mixed_precision_eps: float = 1e-6,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, bias=bias
        )
        self.multi_channel = multi_channel
        self.eps = eps
        self.mixed_precision_eps = mixed_precision_eps

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(output, new mask) for input `x` and its validity mask `mask` (1 = valid)."""
        self._check_mask(x, mask)
        scale, new_mask = self._mask_terms(x, mask)
        # X * M on every call: knowing that a mask is all ones would need a device-host sync.
        out = F.conv2d(
            x * mask.to(x.dtype), self.weight, None, self.stride, self.padding, self.dilation
        )
        # ((raw + b - b) * ratio + b) * new_mask == raw * (ratio * new_mask) + b * new_mask
        out = out.mul_(scale.to(out.dtype))
        if self.bias is not None:
            out = out.addcmul_(self.bias.to(out.dtype).view(1, -1, 1, 1), new_mask.to(out.dtype))
        return out, new_mask

    def extra_repr(self) -> str:
        """nn.Conv2d's description plus the mask options."""
        return f"{super().extra_repr()}, multi_channel={self.multi_channel}, eps={self.eps}"

    def _check_mask(self, x: Tensor, mask: Tensor) -> None:
        """Raise ValueError unless `mask` is B x (C_in or 1, by multi_channel) x H x W of `x`."""
        channels = self.in_channels if self.multi_channel else 1
        expected = (x.shape[0], channels, *x.shape[2:])
        if mask.dim() != 4 or tuple(mask.shape) != expected:
            raise ValueError(
                f"PartialConv2d(multi_channel={self.multi_channel}) needs a mask of shape "
                f"{expected} for an input of shape {tuple(x.shape)}, got {tuple(mask.shape)}; "
                "use multi_channel=True for one mask channel per input channel"
            )

    def _mask_terms(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(ratio * new_mask, new_mask) for `mask`, in float32 (float64 for float64 inputs)."""
        eps = self.mixed_precision_eps if _is_half_precision(x) else self.eps
        return self._compute_mask_terms(mask, eps, torch.promote_types(x.dtype, torch.float32))

    @torch.no_grad()
    def _compute_mask_terms(
        self, mask: Tensor, eps: float, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        """(ratio * new_mask, new_mask) for `mask`, computed in `dtype` without autocast."""
        with autocast_off(mask.device.type):
            valid = mask.to(dtype)
            if valid.shape[1] > 1:
                valid = valid.sum(1, keepdim=True)
            sum_m = window_sums(valid, self.kernel_size, self.stride, self.padding, self.dilation)
        window_size = mask.shape[1] * self.kernel_size[0] * self.kernel_size[1]
        new_mask = sum_m.clamp(0, 1)
        ratio = window_size / (sum_m + eps) * new_mask
        return ratio * new_mask, new_mask
