"""Full precision for the computations that are not learned layers.

Under mixed precision (`trainer.precision=bf16-mixed` or `16-mixed`) autocast runs every
convolution and matrix product in half precision. That suits network layers, but statistics
that subtract large numbers (SSIM's local variances, Gram matrices, a Laplace solver's
averages, Canny's gradients) lose their meaning. `full_precision` wraps such a function: its
floating tensor arguments arrive in fp32 and autocast is off inside it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """A context with autocast off for `device_type` (a no-op where it is already off)."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _to_fp32(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.float()
    return value


def _device_type(values: Any) -> str:
    """The device type of the first tensor among `values` ("cpu" when there is none)."""
    for value in values:
        if isinstance(value, torch.Tensor):
            return value.device.type
    return "cpu"


def full_precision(fn: F) -> F:
    """Run `fn` with autocast off and its floating tensor arguments cast to fp32.

    Example:
        >>> @full_precision
        ... def dtype_of(x):
        ...     return (x @ x).dtype
        >>> with torch.autocast("cpu", dtype=torch.bfloat16):
        ...     dtype_of(torch.ones(2, 2, dtype=torch.bfloat16))
        torch.float32
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args = tuple(_to_fp32(a) for a in args)
        kwargs = {k: _to_fp32(v) for k, v in kwargs.items()}
        with autocast_off(_device_type((*args, *kwargs.values()))):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
