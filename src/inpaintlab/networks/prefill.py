"""Classical fills of the holes from the known pixels, batched in torch on the batch's device.

A generator can take such a fill as its input (instead of a blank or mean-colour hole) and as
the base it corrects (a residual output). Kinds:

- "mean": each image's mean known colour;
- "harmonic": the Laplace equation (the smoothest membrane through the known pixels);
- "biharmonic": the biharmonic equation (a thin plate: it also continues the border's
  gradients), the fill scikit-image's `inpaint_biharmonic` solves exactly;
- "blended": the biharmonic fill at the hole's border, moving to the mean of the biharmonic
  and harmonic fills 6 px inside it. The plate continues the border's gradients, which is
  what a thin hole needs, but carries them too far across a wide one; the membrane's flat
  interior and the plate's errors partly cancel there. On 200 BSDS500 training photos the
  blend scores 0.04-0.21 dB above the biharmonic fill with each of the project's mask
  generators at 128 and 256 px, except 1-2 px scratches (-0.09 dB at 51 dB); on the NVIDIA
  test masks +0.10 dB (BENCHMARKS.md).

Both equations get a coarse-to-fine first fill: the known pixels are averaged down a pyramid
to a few pixels, the coarsest level is relaxed to convergence, and each finer level starts
from the upsampled coarser fill and takes a few damped Jacobi sweeps. The harmonic fill then
runs a multigrid V-cycle on the remaining error, which brings it to the discrete equation's
solution (a linear ramp across a hole comes back within 1e-3). The biharmonic fill (Jacobi
smoothing does not carry its V-cycles) takes 20 conjugate-gradient iterations from the first
fill instead: enough to bring thin strokes and small holes close to the exact solution, too
few to move the middle of a large hole far from the smooth first fill, which on photographs
scores better there than the exact solve (whose thin plate overshoots across wide holes).
On real photographs this truncated solve gives a higher PSNR and a lower hole L1 than
scikit-image's exact one (BENCHMARKS.md).
Known pixels are never changed, image borders reflect, and every computation runs in fp32
with autocast off.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlab.errors import ConfigError
from inpaintlab.ops.growth import neighbourhood_max
from inpaintlab.ops.precision import full_precision

PREFILL_KINDS = ("none", "mean", "harmonic", "biharmonic", "blended")
NO_KNOWN_PIXEL_VALUE = 0.5  # mid-grey where an image has no known pixel to fill from
COARSEST_SIDE = 4
COARSEST_SWEEPS = 64
TINY = 1e-30  # keeps CG's ratios finite where an image has no hole (both sides are 0)
BLEND_DEPTH = 6  # px inside a hole where the blended fill reaches its harmonic share
BLEND_SHARE = 0.5  # of the harmonic fill from BLEND_DEPTH px inwards
SLICED_LAPLACIAN_PIXELS = 4096  # from this image area the Laplacian skips the padded copy


class Solver(NamedTuple):
    """How one equation, L^power u = 0 with L the 5-point Laplacian, is solved.

    A damped Jacobi sweep moves each hole pixel by damping * (-1)^(power+1) L^power u / centre,
    where centre is the stencil's centre weight (4 for L, 20 for L L, the 13-point
    biharmonic stencil). The damping keeps the biharmonic sweep stable: its iteration matrix
    reaches 1 - 64 damping / 20, which must stay above -1.
    """

    power: int  # of the Laplacian
    centre: float  # centre weight of L^power's stencil
    damping: float
    sweeps: int  # Jacobi sweeps per level, before and after each coarse correction
    cycles: int  # V-cycles after the coarse-to-fine first fill
    cg_iterations: int  # conjugate-gradient iterations after the V-cycles


SOLVERS = {
    "harmonic": Solver(power=1, centre=4.0, damping=0.8, sweeps=4, cycles=1, cg_iterations=0),
    # damped Jacobi is a poor smoother for the biharmonic operator and V-cycles built on it
    # do not converge: a truncated conjugate-gradient solve refines the first fill instead
    # (on 120 BSDS500 training photos with photo_damage masks: +0.09 dB PSNR over the
    # first fill alone, and within 0.01 dB of 30 iterations)
    "biharmonic": Solver(power=2, centre=20.0, damping=0.5, sweeps=10, cycles=0, cg_iterations=20),
}


def _known_mean(image: Tensor, known: Tensor) -> Tensor:
    """Each image's mean colour over its known pixels, B x C x 1 x 1 (mid-grey with none)."""
    area = known.sum((2, 3), keepdim=True)
    total = (image * known).sum((2, 3), keepdim=True)
    return torch.where(area > 0, total / area.clamp_min(1), NO_KNOWN_PIXEL_VALUE)


@full_precision
def mean_fill(image: Tensor, mask: Tensor) -> Tensor:
    """`image` with its holes (mask 1) set to the image's mean known colour.

    Example:
        >>> image = torch.tensor([[[[0.2, 0.4, 9.0]]]])
        >>> mean_fill(image, torch.tensor([[[[0.0, 0.0, 1.0]]]]))
        tensor([[[[0.2000, 0.4000, 0.3000]]]])
    """
    known = 1 - mask
    return torch.where(mask.bool(), _known_mean(image, known), image)


def _laplacian(u: Tensor) -> Tensor:
    """The 5-point Laplacian (sum of the 4 neighbours minus 4 u), reflecting at the borders.

    Each neighbour is added from a shifted slice of `u`, its reflected row or column at the
    border, in the order up, down, left, right: the sums of a padded copy, without the copy.
    """
    height, width = u.shape[-2:]
    # below a few thousand pixels the copy is cheaper than the extra border operations
    if min(height, width) < 2 or height * width < SLICED_LAPLACIAN_PIXELS:
        p = _pad_reflect(u, 1)
        out = p[..., :-2, 1:-1] + p[..., 2:, 1:-1]
        out += p[..., 1:-1, :-2]
        out += p[..., 1:-1, 2:]
        return out.sub_(u, alpha=4.0)
    out = torch.empty_like(u)
    out[..., 1:, :] = u[..., :-1, :]
    out[..., 0, :] = u[..., 1, :]
    out[..., :-1, :] += u[..., 1:, :]
    out[..., -1, :] += u[..., -2, :]
    out[..., 1:] += u[..., :-1]
    out[..., 0] += u[..., 1]
    out[..., :-1] += u[..., 1:]
    out[..., -1] += u[..., -2]
    return out.sub_(u, alpha=4.0)


def _operator(u: Tensor, power: int) -> Tensor:
    """L^power u: the Laplacian (power 1) or the biharmonic operator (power 2)."""
    for _ in range(power):
        u = _laplacian(u)
    return u


def _relax(u: Tensor, rhs: Tensor | None, hole: Tensor, kind: str, sweeps: int) -> Tensor:
    """`sweeps` damped Jacobi sweeps of L^p u = rhs (0 when None) on the hole pixels of `u`
    (`hole` a 0/1 float mask); the other pixels are left exactly as they are."""
    solver = SOLVERS[kind]
    step = solver.damping / solver.centre * (1 if solver.power % 2 else -1)
    hole = hole.expand_as(u)
    u = u.clone()
    for _ in range(sweeps):
        residual = _operator(u, solver.power)
        if rhs is not None:
            residual -= rhs
        u.addcmul_(hole, residual, value=step)  # known pixels move by exactly 0
    return u


def _pad_reflect(x: Tensor, radius: int) -> Tensor:
    """Pad by `radius` on every side, reflecting where the image is large enough."""
    mode = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    return F.pad(x, (radius,) * 4, mode=mode)


def _halved(x: Tensor) -> Tensor:
    """`x` at half size: the mean of each (up to 2 x 2) block of pixels."""
    height, width = x.shape[-2:]
    x = F.pad(x, (0, width % 2, 0, height % 2), mode="replicate")
    return F.avg_pool2d(x, 2)


def _doubled(x: Tensor, height: int, width: int) -> Tensor:
    """Bilinear upsampling by 2, cropped to `height` x `width` (exact for linear functions)."""
    upsampled = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    return upsampled[..., :height, :width]


def _initial_guess(values: Tensor, known: Tensor, kind: str) -> Tensor:
    """A first fill, coarse to fine: each coarse pixel is known when any of its fine pixels
    is (their mean value); each level relaxes the upsampled coarser fill."""
    height, width = values.shape[-2:]
    hole = 1 - known
    if min(height, width) <= COARSEST_SIDE:
        guess = torch.where(hole.bool(), _known_mean(values, known), values)
        return _relax(guess, None, hole, kind, COARSEST_SWEEPS)
    known_share = _halved(known)
    coarse_values = _halved(values * known) / known_share.clamp_min(1e-6)
    coarse = _initial_guess(coarse_values, (known_share > 0).to(values.dtype), kind)
    guess = torch.where(hole.bool(), _doubled(coarse, height, width), values)
    return _relax(guess, None, hole, kind, SOLVERS[kind].sweeps)


def _correction(rhs: Tensor, hole: Tensor, kind: str) -> Tensor:
    """One multigrid V-cycle for e with L^p e = rhs on the holes and e = 0 elsewhere: smooth,
    solve for the remaining error on the half-size grid, add it, smooth again."""
    power, sweeps = SOLVERS[kind].power, SOLVERS[kind].sweeps
    height, width = rhs.shape[-2:]
    if min(height, width) <= COARSEST_SIDE:
        return _relax(torch.zeros_like(rhs), rhs, hole, kind, COARSEST_SWEEPS)
    e = _relax(torch.zeros_like(rhs), rhs, hole, kind, sweeps)
    remaining = (rhs - _operator(e, power)) * hole
    # L^p on a grid twice as coarse is 4^p times the fine one, in grid units
    coarse_rhs = _halved(remaining) * 4**power
    # a coarse pixel is free only where all its fine pixels are: known ones pin e to 0 (and
    # keep the coarse problem from losing every boundary condition)
    coarse = _correction(coarse_rhs, (_halved(hole) == 1).to(hole.dtype), kind)
    e = e + _doubled(coarse, height, width) * hole
    return _relax(e, rhs, hole, kind, sweeps)


def _conjugate_gradient(u: Tensor, hole: Tensor, power: int, iterations: int) -> Tensor:
    """`iterations` conjugate-gradient steps on L^p u = 0 for the hole pixels of `u`, the
    others fixed. (-L)^p restricted to the hole pixels is symmetric positive definite, so each
    image and channel runs its own CG on it; search directions are zero outside the holes."""
    if iterations == 0:
        return u
    hole = hole.expand_as(u)

    sign = -1.0 if power % 2 else 1.0

    def apply(direction: Tensor) -> Tensor:
        return _operator(direction, power).mul_(hole).mul_(sign)

    residual = apply(u).neg_()
    direction = residual.clone()
    residual_norm = _channel_dot(residual, residual)
    u = u.clone()
    for _ in range(iterations):  # in place: each pass over the batch costs as much as L^p
        image_of_direction = apply(direction)
        step = residual_norm / _channel_dot(direction, image_of_direction).clamp_min(TINY)
        u.addcmul_(step, direction)
        residual.addcmul_(step, image_of_direction, value=-1.0)
        new_norm = _channel_dot(residual, residual)
        direction.mul_(new_norm / residual_norm.clamp_min(TINY)).add_(residual)
        residual_norm = new_norm
    return u


def _channel_dot(a: Tensor, b: Tensor) -> Tensor:
    """The dot product of `a` and `b` over each image and channel, B x C x 1 x 1."""
    return (a * b).sum((2, 3), keepdim=True)


def _solve(values: Tensor, known: Tensor, kind: str) -> Tensor:
    """The `kind` fill of the holes of `values` (known where `known` is 1): a coarse-to-fine
    first fill, then V-cycles and conjugate-gradient steps on the equation."""
    solver = SOLVERS[kind]
    hole = 1 - known
    u = _initial_guess(values, known, kind)
    for _ in range(solver.cycles):
        rhs = -_operator(u, solver.power) * hole
        u = u + _correction(rhs, hole, kind)
    return _conjugate_gradient(u, hole, solver.power, solver.cg_iterations)


@full_precision
def equation_fill(image: Tensor, mask: Tensor, kind: str = "harmonic") -> Tensor:
    """`image` (B x C x H x W) with its holes (mask B x 1 x H x W, 1 = hole) filled by the
    harmonic or biharmonic equation; known pixels are returned bit for bit, and filled ones
    stay within each channel's range of known values.

    Example:
        >>> ramp = torch.linspace(0, 1, 16).expand(1, 1, 16, 16)
        >>> mask = torch.zeros(1, 1, 16, 16)
        >>> mask[..., 4:12, 4:12] = 1
        >>> bool((equation_fill(ramp, mask) - ramp).abs().max() < 1e-3)
        True
    """
    if kind not in SOLVERS:
        raise ConfigError(f"unknown equation fill {kind!r}: use one of {', '.join(SOLVERS)}")
    known = (mask < 0.5).to(image.dtype)
    filled = _within_known_range(_solve(image * known, known, kind), image, known)
    return torch.where(known.bool(), image, filled)


def hole_depth(mask: Tensor, limit: int) -> Tensor:
    """Each hole pixel's distance from the nearest known pixel (mask 0), counted in 8-connected
    steps: 1 on the hole's border, capped at `limit`; 0 at known pixels. The image's edge is
    not a known pixel."""
    depth = torch.zeros_like(mask)
    inside = mask
    for _ in range(limit):
        depth += inside
        inside = -neighbourhood_max(-inside)  # erode the hole by 1 px
    return depth


@full_precision
def blended_fill(image: Tensor, mask: Tensor) -> Tensor:
    """The biharmonic fill of the holes, blended towards the harmonic one with depth: a pixel
    d px inside a hole takes BLEND_SHARE * min(d, BLEND_DEPTH) / BLEND_DEPTH of the harmonic.

    Known pixels are returned bit for bit (both fills keep them, and their weight is 0).
    """
    mask = (mask >= 0.5).to(torch.float32)  # the holes equation_fill sees
    plate = equation_fill(image, mask, "biharmonic")
    membrane = equation_fill(image, mask, "harmonic")
    weight = hole_depth(mask, BLEND_DEPTH).mul_(BLEND_SHARE / BLEND_DEPTH)
    return torch.lerp(plate, membrane, weight)


def _within_known_range(filled: Tensor, image: Tensor, known: Tensor) -> Tensor:
    """`filled` clamped to each image and channel's range of known values: the biharmonic
    solution, unlike the harmonic one, can overshoot it near sharp borders."""
    is_known = known.bool()
    low = torch.where(is_known, image, torch.inf).amin((2, 3), keepdim=True)
    high = torch.where(is_known, image, -torch.inf).amax((2, 3), keepdim=True)
    has_known = is_known.any(3, keepdim=True).any(2, keepdim=True)
    low = torch.where(has_known, low, NO_KNOWN_PIXEL_VALUE)
    high = torch.where(has_known, high, NO_KNOWN_PIXEL_VALUE)
    return torch.minimum(torch.maximum(filled, low), high)


def check_residual(prefill: str, residual: bool) -> None:
    """A residual generator corrects a fill, so it needs one: raise a ConfigError otherwise."""
    if residual and prefill == "none":
        raise ConfigError(
            "model.residual=true corrects a classical fill of the holes: set model.prefill to "
            "mean, harmonic or biharmonic"
        )


def corrected(filled: Tensor, correction: Tensor, mask: Tensor) -> Tensor:
    """A residual generator's output: the fill plus the correction, inside the holes only.

    Known pixels stay exactly the input's, so no loss term on them pulls at the correction
    (an L1 term there, whose gradient keeps its size however small the error, would hold a
    zero-initialised correction at zero).
    """
    return filled + mask * correction


def zero_init_(layer: nn.Module) -> nn.Module:
    """Zero the weight and bias of `layer` (a residual head then outputs 0 at step 0)."""
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class Prefill(nn.Module):
    """A classical fill of the holes as a module: `Prefill(kind)(image, mask)`.

    `kind` is one of PREFILL_KINDS; "none" returns the image unchanged (the generator then
    handles the holes the way its paper does). No parameters, no state.

    Example:
        >>> image, mask = torch.rand(2, 3, 20, 30), torch.zeros(2, 1, 20, 30)
        >>> mask[..., 5:15, 5:25] = 1
        >>> Prefill("biharmonic")(image, mask).shape
        torch.Size([2, 3, 20, 30])
    """

    def __init__(self, kind: str = "none") -> None:
        super().__init__()
        if kind not in PREFILL_KINDS:
            raise ConfigError(f"prefill={kind!r} is not one of {', '.join(PREFILL_KINDS)}")
        self.kind = kind

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        if self.kind == "none":
            return image
        if self.kind == "mean":
            return mean_fill(image, mask).to(image.dtype)
        if self.kind == "blended":
            return blended_fill(image, mask).to(image.dtype)
        return equation_fill(image, mask, self.kind).to(image.dtype)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"
